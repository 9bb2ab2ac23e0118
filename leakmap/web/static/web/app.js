// Small behaviours shared by every page. Server-rendered pages work without it; this only adds
// the modal dialog used by htmx forms and the competitor hint on the lost form.
(function () {
  "use strict";
  function modal() { return document.getElementById("modal"); }

  window.leakmap = window.leakmap || {};
  window.leakmap.openModal = function (url, onClose) {
    var dialog = modal();
    dialog.onclose = function () {
      document.getElementById("modal-body").innerHTML = "";
      if (onClose) onClose();
    };
    return htmx.ajax("GET", url, { target: "#modal-body", swap: "innerHTML" }).then(function () {
      if (!dialog.open) dialog.showModal();
    });
  };

  document.addEventListener("click", function (event) {
    // Inline onclick= handlers are refused by the Content-Security-Policy: buttons say what
    // they do with a data attribute and this file does it.
    if (event.target.closest("[data-print]")) {
      event.preventDefault();
      window.print();
      return;
    }
    var closer = event.target.closest("[data-close-modal]");
    if (closer && modal().open) {
      event.preventDefault();
      modal().close();
    }
  });

  // On the lost form, mark the competitor field required when the chosen reason needs one.
  function syncCompetitor(form) {
    var ids = (form.dataset.needsCompetitor || "").split(",").filter(Boolean);
    var reason = form.querySelector("[name=lost_reason]");
    var field = form.querySelector("[name=competitor]");
    if (!reason || !field) return;
    var wrap = field.closest(".field");
    var needed = ids.indexOf(reason.value) >= 0;
    if (wrap) wrap.classList.toggle("is-required", needed);
  }
  document.addEventListener("change", function (event) {
    var form = event.target.closest("form.lost-form");
    if (form) syncCompetitor(form);
  });
  document.addEventListener("htmx:afterSwap", function () {
    document.querySelectorAll("form.lost-form").forEach(syncCompetitor);
  });
})();
