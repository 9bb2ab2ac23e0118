// Kanban drag and drop. A drop POSTs the move through htmx; the server answers with the whole
// board re-rendered, so the counts, amounts and card positions always come from the database.
// A refused move comes back (422) with the reason and the card in its old column. A drop on a
// "lost" column does not move anything yet: it opens the lost form, which requires a reason.
(function () {
  "use strict";

  function url(template, id) {
    return template.replace(/\/0\//, "/" + id + "/");
  }

  function init() {
    var wrap = document.getElementById("board");
    if (!wrap || wrap.dataset.ready || typeof Sortable === "undefined") return;
    wrap.dataset.ready = "1";
    wrap.querySelectorAll(".cards").forEach(function (list) {
      Sortable.create(list, {
        group: "deals",
        animation: 120,
        draggable: ".deal-card",
        ghostClass: "is-ghost",
        onEnd: function (evt) {
          if (evt.from === evt.to) return;
          var dealId = evt.item.dataset.deal;
          var column = evt.to.closest(".column");
          var back = function () {
            evt.from.insertBefore(evt.item, evt.from.children[evt.oldIndex] || null);
          };
          if (column.dataset.kind === "lost") {
            back();
            var next = window.location.pathname + window.location.search;
            window.leakmap.openModal(url(wrap.dataset.lostUrl, dealId) + "?next=" + encodeURIComponent(next));
            return;
          }
          var target = url(wrap.dataset.moveUrl, dealId) + (wrap.dataset.query ? "?" + wrap.dataset.query : "");
          htmx.ajax("POST", target, {
            target: "#board",
            swap: "outerHTML",
            values: { stage: column.dataset.stage },
          });
        },
      });
    });
  }

  document.addEventListener("DOMContentLoaded", init);
  // A move answers with a new #board (outerHTML swap): bind the new columns.
  document.addEventListener("htmx:afterSwap", init);
})();
