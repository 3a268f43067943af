// The campaign report's chart: sends per minute by outcome (Chart.js, vendored), refreshed while the campaign runs.
(function () {
  "use strict";
  var canvas = document.getElementById("sends-chart");
  if (!canvas || !window.Chart) return;
  var chart = null;
  function draw(rows) {
    var labels = rows.map(function (r) { return r.minute.slice(11, 16); });
    var series = [["delivered", "#198754"], ["deferred", "#ffc107"], ["bounced", "#dc3545"]];
    var datasets = series.map(function (s) {
      return { label: s[0], data: rows.map(function (r) { return r[s[0]]; }), backgroundColor: s[1], stack: "sends" };
    });
    document.getElementById("chart-empty").hidden = rows.length > 0;
    if (chart) {
      chart.data.labels = labels;
      chart.data.datasets.forEach(function (d, i) { d.data = datasets[i].data; });
      chart.update("none");
      return;
    }
    chart = new window.Chart(canvas, {
      type: "bar",
      data: { labels: labels, datasets: datasets },
      options: { animation: false, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true,
        title: { display: true, text: "messages / minute" } } }, plugins: { legend: { position: "bottom" } } }
    });
  }
  function load() {
    fetch(canvas.getAttribute("data-url"), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (body) { draw(body.per_minute); });
  }
  load();
  if (canvas.getAttribute("data-live") === "1") {
    setInterval(function () {
      var progress = document.getElementById("campaign-progress");
      if (progress && progress.hasAttribute("hx-get")) load();
    }, 5000);
  }
})();
