// The record lists: tick every row of the page, show the bulk bar's fields for the chosen
// action, count the ticked rows, and confirm before a bulk delete or deleting a saved view.
// Without it the lists still work: every field shows and the forms post as they are.
(function () {
  "use strict";

  function rows() { return document.querySelectorAll("[data-row-select]"); }

  function sync() {
    var boxes = rows();
    var ticked = Array.prototype.filter.call(boxes, function (b) { return b.checked; }).length;
    var all = document.querySelector("[data-select-all]");
    if (all) {
      all.checked = boxes.length > 0 && ticked === boxes.length;
      all.indeterminate = ticked > 0 && ticked < boxes.length;
    }
    var bar = document.getElementById("bulk-form");
    if (bar) bar.classList.toggle("is-idle", ticked === 0);
    var count = document.querySelector("[data-bulk-count]");
    if (count) {
      count.textContent = ticked ? count.dataset.some.replace("{n}", ticked) : count.dataset.none;
    }
  }

  function showActionFields(form) {
    var action = form.querySelector("[name=action]");
    if (!action) return;
    form.querySelectorAll("[data-bulk-for]").forEach(function (label) {
      label.hidden = label.dataset.bulkFor !== action.value;
    });
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches("[data-select-all]")) {
      rows().forEach(function (b) { b.checked = target.checked; });
      sync();
    } else if (target.matches("[data-row-select]")) {
      sync();
    } else if (target.closest("#bulk-form") && target.name === "action") {
      showActionFields(target.form);
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.id === "bulk-form") {
      var action = form.querySelector("[name=action]");
      if (action && action.value === "delete" && !window.confirm(form.dataset.confirmDelete)) {
        event.preventDefault();
      }
    } else if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  function init() {
    var form = document.getElementById("bulk-form");
    if (form) showActionFields(form);
    sync();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
  document.addEventListener("htmx:afterSwap", sync);
})();
