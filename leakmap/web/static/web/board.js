// Kanban drag and drop. A drop POSTs the move through htmx; the server answers with the whole
// board re-rendered, so the counts, amounts and card positions always come from the database,
// and the card just moved is shown in its column with an undo. A move that needs something
// first (fields the stage requires, the lost reason, the confirmation of a won close) asks for
// it in the modal (stage_move.js) and moves only once answered. Won and lost are also drop
// zones pinned to the bottom of the screen, so closing never needs the board scrolled.
(function () {
  "use strict";

  function url(template, id) {
    return template.replace(/\/0\//, "/" + id + "/");
  }

  function withQuery(base, params, query) {
    var parts = [];
    Object.keys(params).forEach(function (k) {
      parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(params[k]));
    });
    if (query) parts.push(query);
    return base + (parts.length ? "?" + parts.join("&") : "");
  }

  function onDrop(wrap, evt) {
    if (evt.from === evt.to) return;
    var dealId = evt.item.dataset.deal;
    var target = evt.to;
    var kind = target.dataset.kind;
    var query = wrap.dataset.query;
    var back = function () {
      evt.from.insertBefore(evt.item, evt.from.children[evt.oldIndex] || null);
    };
    if (kind === "lost") {
      back();
      window.leakmap.openModal(withQuery(url(wrap.dataset.lostUrl, dealId), { on_board: "1" }, query));
      return;
    }
    if (kind === "won") {
      back();
      window.leakmap.openModal(
        withQuery(url(wrap.dataset.moveUrl, dealId), { stage: target.dataset.stage, on_board: "1" }, query)
      );
      return;
    }
    htmx.ajax("POST", withQuery(url(wrap.dataset.moveUrl, dealId), {}, query), {
      target: "#board",
      swap: "outerHTML",
      values: { stage: target.dataset.stage, on_board: "1" },
    });
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
        onEnd: function (evt) { onDrop(wrap, evt); },
      });
    });
    // The drop zones take a card and never keep one: the drop opens the confirmation or the
    // lost form, and the card goes back until the server says otherwise.
    wrap.querySelectorAll(".dropzone").forEach(function (zone) {
      Sortable.create(zone, { group: { name: "deals", pull: false }, sort: false, draggable: ".deal-card" });
    });
    var moved = wrap.querySelector(".deal-card.just-moved");
    if (moved) moved.scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  document.addEventListener("DOMContentLoaded", init);
  // A move answers with a new #board (outerHTML swap): bind the new columns.
  document.addEventListener("htmx:load", init);
})();
