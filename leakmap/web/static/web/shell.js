// On a phone the list filters fold behind a button, so the rows come first. Pages work
// without it (the filters then stay open); the button's text comes from the page, translated.
(function () {
  "use strict";

  function hasValue(form) {
    return Array.prototype.some.call(form.elements, function (el) {
      return el.name && el.type !== "submit" && el.type !== "hidden" && el.value;
    });
  }

  function fold(form) {
    if (form.dataset.foldable) return;
    form.dataset.foldable = "1";
    var button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-small filters-fold";
    button.textContent = document.body.dataset.filtersLabel || "Filters";
    var open = hasValue(form);  // filters in use stay in sight
    function show() {
      form.classList.toggle("is-folded", !open);
      button.setAttribute("aria-expanded", open ? "true" : "false");
    }
    button.addEventListener("click", function () {
      open = !open;
      show();
    });
    form.parentNode.insertBefore(button, form);
    show();
  }

  function setup() {
    document.querySelectorAll("form.filters").forEach(fold);
  }
  document.addEventListener("DOMContentLoaded", setup);
  document.addEventListener("htmx:afterSwap", setup);
})();
