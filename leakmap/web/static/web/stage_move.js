// The modal a stage move talks through (board and deal page). The server decides what a move
// needs and answers with it: a form marked data-modal-open swapped into #modal-body (the
// missing fields, a won confirmation, the lost form) opens the modal; a board marked
// data-move-done (the move went through) closes it. No inline script: the page's
// Content-Security-Policy allows only files from this site.
(function () {
  "use strict";

  function modal() { return document.getElementById("modal"); }

  function focusFirst(dialog) {
    // The first field to fill (or the confirm button) takes the focus, so the keyboard can
    // answer at once; Escape closes the native dialog.
    var first = dialog.querySelector("[autofocus], input:not([type=hidden]), select, textarea, button");
    if (first) first.focus();
  }

  document.addEventListener("htmx:load", function (event) {
    var elt = event.detail.elt;
    var dialog = modal();
    if (!dialog || !(elt instanceof Element)) return;
    var asks = elt.matches("[data-modal-open]") || elt.querySelector("[data-modal-open]");
    if (asks && dialog.contains(elt)) {
      if (!dialog.open) dialog.showModal();
      focusFirst(dialog);
    }
    if (elt.matches("[data-move-done]") && dialog.open) dialog.close();
  });
})();
