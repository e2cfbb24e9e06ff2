// The customer dashboard: usage charts (Chart.js, vendored), copy buttons and
// confirmations. Data comes from json_script tags: no inline script.
(function () {
  "use strict";

  function drawChart(canvasId, dataId) {
    const canvas = document.getElementById(canvasId);
    const source = document.getElementById(dataId);
    if (!canvas || !source || !window.Chart) return;
    const data = JSON.parse(source.textContent);
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [
          { label: "Billed requests", data: data.used, backgroundColor: "#2f6fed", stack: "requests" },
          { label: "Refused (429)", data: data.refused, backgroundColor: "#e5484d", stack: "requests" },
        ],
      },
      options: {
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
        scales: {
          x: { stacked: true, grid: { display: false }, ticks: { autoSkipPadding: 8, maxRotation: 0 } },
          y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } },
        },
      },
    });
  }

  function copyFrom(selector, button) {
    const element = document.querySelector(selector);
    if (!element) return;
    const text = "value" in element ? element.value : element.textContent;
    const done = function () {
      const label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
    } else if (element.select) {
      // Plain http on another host has no Clipboard API: select for Ctrl+C.
      element.select();
      document.execCommand("copy");
      done();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawChart("chart-daily", "usage-daily");
    drawChart("chart-hourly", "usage-hourly");
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () { copyFrom(button.dataset.copy, button); });
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  });
})();
