// Draws the operator dashboard's stacked chart from the data the page embeds
// with json_script (no inline script, no data in attributes).
(function () {
  "use strict";
  const source = document.getElementById("usage-by-day-data");
  const canvas = document.getElementById("usage-by-day");
  if (!source || !canvas || !window.Chart) return;
  const data = JSON.parse(source.textContent);
  const palette = ["#417690", "#e0a526", "#5b9a68", "#b5495b", "#7a5aa6", "#2f8fb0", "#8c7b5a"];
  const style = getComputedStyle(document.documentElement);
  window.Chart.defaults.color = style.getPropertyValue("--body-quiet-color").trim() || "#666";
  new window.Chart(canvas, {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: data.datasets.map((dataset, i) => ({
        ...dataset,
        backgroundColor: palette[i % palette.length],
      })),
    },
    options: {
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { stacked: true },
        y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } },
      },
    },
  });
})();
