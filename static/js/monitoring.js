// Monitoring pages: charts (Chart.js, vendored) drawn from the numbers the page embeds (#series-data,
// #reputation-data). HTMX refreshes #monitoring-live every 30 s and the range picker swaps the page in place; the
// charts are redrawn after each swap, and an open "Numbers" table stays open.
(function () {
  "use strict";
  var COLORS = { delivered: "#198754", deferred: "#ffc107", bounced: "#dc3545", complaint: "#6f42c1",
                 target: "#fd7e14", limit: "#dc3545", reputation: "#0d6efd" };

  function read(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  function percent(values) {
    return values.map(function (v) { return v === null ? null : Math.round(v * 100000) / 1000; });
  }

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (!canvas || !window.Chart) return;
    var chart = window.Chart.getChart(canvas);
    if (chart) {
      chart.data.labels = config.data.labels;
      chart.data.datasets.forEach(function (d, i) { d.data = config.data.datasets[i].data; });
      chart.update("none");
    } else {
      config.options = Object.assign({ animation: false, maintainAspectRatio: true, spanGaps: true,
        plugins: { legend: { position: "bottom" } } }, config.options || {});
      new window.Chart(canvas, config);
    }
    canvas.setAttribute("data-points", String(config.data.labels.length));
  }

  function line(label, data, color, dashed) {
    return { label: label, data: data, borderColor: color, backgroundColor: color, pointRadius: 0, borderWidth: 2,
             borderDash: dashed ? [6, 4] : [] };
  }

  function render() {
    var series = read("series-data");
    if (series) {
      var rows = series.rows;
      var pick = function (name) { return rows.map(function (r) { return r[name]; }); };
      draw("chart-sends", { type: "bar", data: { labels: series.labels, datasets: ["delivered", "deferred", "bounced"].map(
        function (name) { return { label: name, data: pick(name), backgroundColor: COLORS[name], stack: "s" }; }) },
        options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true,
          title: { display: true, text: "messages / " + series.step + " min" } } } } });
      draw("chart-rates", { type: "line", data: { labels: series.labels, datasets: [
        line("bounce rate %", percent(pick("bounce_rate")), COLORS.bounced),
        line("deferral rate %", percent(pick("deferral_rate")), COLORS.deferred)] },
        options: { scales: { y: { beginAtZero: true, title: { display: true, text: "% of attempts" } } } } });
      var target = series.thresholds.complaint_target * 100, limit = series.thresholds.complaint_limit * 100;
      draw("chart-complaints", { type: "line", data: { labels: series.labels, datasets: [
        line("complaint rate %", percent(pick("complaint_rate")), COLORS.complaint),
        line("0.1 % target", series.labels.map(function () { return target; }), COLORS.target, true),
        line("0.3 % limit", series.labels.map(function () { return limit; }), COLORS.limit, true)] },
        options: { scales: { y: { beginAtZero: true, title: { display: true, text: "% of delivered" } } } } });
    }
    var reputation = read("reputation-data");
    if (reputation) {
      draw("chart-reputation", { type: "line", data: { labels: reputation.labels, datasets: [
        line("reputation", reputation.scores, COLORS.reputation)] },
        options: { scales: { y: { min: 0, max: 100 } } } });
    }
  }

  var open = {};
  document.addEventListener("htmx:beforeSwap", function () {
    document.querySelectorAll("details[data-keep-open]").forEach(function (d) { open[d.id] = d.open; });
  });
  document.addEventListener("htmx:afterSettle", function () {
    Object.keys(open).forEach(function (id) { var d = document.getElementById(id); if (d) d.open = open[id]; });
    render();
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", render); else render();
})();
