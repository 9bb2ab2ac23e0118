// Charts for the report pages. Each chart is fed the report's JSON body exactly as the server
// computed it (CONTRACT §5); this file only maps fields to series and formats numbers. No metric
// is computed here.
(function () {
  "use strict";
  var PALETTE = ["#2f5bea", "#ff6b5e", "#1f8a4c", "#b7791f", "#7c5cd6", "#0e9aa7", "#8a94a6"];

  function json(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  function pct(v) { return v == null ? "–" : (v * 100).toFixed(1) + "%"; }
  function num(v) { return v == null ? "–" : Number(v).toLocaleString(); }
  function base(extra) {
    var option = {
      color: PALETTE,
      textStyle: { fontFamily: getComputedStyle(document.body).fontFamily },
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      legend: { top: 0 },
      grid: { left: 8, right: 16, top: 40, bottom: 8, containLabel: true },
    };
    for (var k in extra) option[k] = extra[k];
    return option;
  }
  function bars(categories, series, opts) {
    opts = opts || {};
    var horizontal = !!opts.horizontal;
    var cat = { type: "category", data: categories, axisLabel: { interval: 0, hideOverlap: true } };
    var val = { type: "value", minInterval: opts.integer ? 1 : 0, axisLabel: { formatter: opts.valueFormatter || num } };
    var yAxes = horizontal ? [cat] : [val];
    if (opts.rightAxis) yAxes.push({ type: "value", axisLabel: { formatter: opts.rightFormatter || num }, splitLine: { show: false } });
    if (horizontal) cat.inverse = true;
    return base({
      xAxis: horizontal ? val : cat,
      yAxis: yAxes.length === 1 ? yAxes[0] : yAxes,
      series: series,
    });
  }

  var builders = {
    funnel: function (body, L) {
      var rows = body.rows;
      return bars(rows.map(function (r) { return r.label; }), [
        {
          name: L.count, type: "bar", data: rows.map(function (r) { return r.count; }),
          label: {
            show: true, position: "right",
            formatter: function (p) {
              var c = rows[p.dataIndex].conversion_from_previous;
              return num(p.value) + (c == null ? "" : "  (" + pct(c) + ")");
            },
          },
        },
      ], { horizontal: true, integer: true });
    },
    owners: function (body, L) {
      var rows = body.rows;
      var names = rows.map(function (r) { return r.owner_name || r.owner; });
      return bars(names, [
        { name: L.won, type: "bar", stack: "d", data: rows.map(function (r) { return r.won; }) },
        { name: L.lost, type: "bar", stack: "d", data: rows.map(function (r) { return r.lost; }) },
        { name: L.open, type: "bar", stack: "d", data: rows.map(function (r) { return r.open; }) },
        { name: L.win_rate, type: "line", yAxisIndex: 1, data: rows.map(function (r) { return r.win_rate; }) },
      ], { rightAxis: true, rightFormatter: pct });
    },
    sources: function (body, L) {
      var rows = body.rows;
      return bars(rows.map(function (r) { return r.source || "–"; }), [
        { name: L.won_amount, type: "bar", data: rows.map(function (r) { return r.won_amount; }) },
        { name: L.spend, type: "bar", data: rows.map(function (r) { return r.spend; }) },
        { name: L.cost_per_won, type: "line", yAxisIndex: 1, data: rows.map(function (r) { return r.cost_per_won; }) },
      ], { rightAxis: true });
    },
    "lost-reasons": function (body, L) {
      var rows = body.rows;
      return bars(rows.map(function (r) { return r.reason || "–"; }), [
        { name: L.amount, type: "bar", data: rows.map(function (r) { return r.amount; }) },
        { name: L.share, type: "line", yAxisIndex: 1, data: rows.map(function (r) { return r.amount_share; }) },
      ], { rightAxis: true, rightFormatter: pct });
    },
    matrix: function (body, L) {
      var cells = body.matrix || [];
      var stages = [], reasons = [];
      cells.forEach(function (c) {
        if (stages.indexOf(c.stage) < 0) stages.push(c.stage);
        if (reasons.indexOf(c.reason) < 0) reasons.push(c.reason);
      });
      var max = 0;
      var data = cells.map(function (c) {
        max = Math.max(max, Number(c.amount));
        return [stages.indexOf(c.stage), reasons.indexOf(c.reason), c.amount];
      });
      return base({
        tooltip: { position: "top" },
        legend: { show: false },
        grid: { left: 8, right: 16, top: 16, bottom: 56, containLabel: true },
        xAxis: { type: "category", data: stages.map(function (s) { return (L.stages && L.stages[s]) || s || "–"; }), splitArea: { show: true } },
        yAxis: { type: "category", data: reasons.map(function (r) { return r || "–"; }), splitArea: { show: true } },
        visualMap: { min: 0, max: max || 1, calculable: true, orient: "horizontal", left: "center", bottom: 0,
                     inRange: { color: ["#fff5f4", "#ff6b5e", "#a3160f"] } },
        series: [{ name: L.amount, type: "heatmap", data: data, label: { show: true, formatter: function (p) { return num(p.value[2]); } } }],
      });
    },
    "stage-time": function (body, L) {
      var rows = body.rows;
      return bars(rows.map(function (r) { return r.label; }), [
        { name: L.median, type: "bar", data: rows.map(function (r) { return r.median_days; }) },
        { name: L.p90, type: "bar", data: rows.map(function (r) { return r.p90_days; }) },
        { name: L.sla, type: "scatter", symbol: "diamond", symbolSize: 14, data: rows.map(function (r) { return r.sla_days; }) },
      ]);
    },
    stuck: function (body, L) {
      var rows = body.rows.slice(0, 20);
      return bars(rows.map(function (r) { return r.deal; }), [
        { name: L.days_in_stage, type: "bar", data: rows.map(function (r) { return r.days_in_stage; }) },
      ], { horizontal: true });
    },
    cycle: function (body, L) {
      var rows = body.rows;
      var owners = L.owners || {};
      return bars(rows.map(function (r) { return owners[r.owner] || r.owner; }), [
        { name: L.mean, type: "bar", data: rows.map(function (r) { return r.mean_days; }) },
        { name: L.median, type: "bar", data: rows.map(function (r) { return r.median_days; }) },
        { name: L.p90, type: "bar", data: rows.map(function (r) { return r.p90_days; }) },
      ]);
    },
    forecast: function (body, L) {
      var rows = body.rows;
      return bars(rows.map(function (r) { return r.month || "–"; }), [
        { name: L.pipeline, type: "bar", data: rows.map(function (r) { return r.pipeline_amount; }) },
        { name: L.weighted, type: "bar", data: rows.map(function (r) { return r.weighted_amount; }) },
      ]);
    },
    weekly: function (body, L) {
      var rows = body.rows.filter(function (r) { return r.metric.indexOf("amount") < 0; });
      return bars(rows.map(function (r) { return r.label; }), [
        { name: L.last_week, type: "bar", data: rows.map(function (r) { return r.last_week; }) },
        { name: L.this_week, type: "bar", data: rows.map(function (r) { return r.this_week; }) },
      ]);
    },
  };

  function draw(el, option) {
    var chart = echarts.init(el, null, { renderer: "svg" });
    chart.setOption(option);
    window.addEventListener("resize", function () { chart.resize(); });
    el.dataset.ready = "1";
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (typeof echarts === "undefined") return;
    var body = json("report-data");
    var L = json("chart-labels") || {};
    if (!body) return;
    document.querySelectorAll("[data-report]").forEach(function (el) {
      var build = builders[el.dataset.report];
      if (build) draw(el, build(body, L));
    });
    document.querySelectorAll(".finding-chart").forEach(function (el) {
      var rate = el.dataset.rate === "1";
      draw(el, bars([L.value, L.benchmark], [{
        type: "bar", barWidth: "40%",
        data: [
          { value: Number(el.dataset.value), itemStyle: { color: "#ff6b5e" } },
          { value: Number(el.dataset.benchmark), itemStyle: { color: "#8a94a6" } },
        ],
        label: { show: true, position: "top", formatter: function (p) { return rate ? pct(p.value) : num(p.value); } },
      }], { valueFormatter: rate ? pct : num }));
    });
  });
})();
