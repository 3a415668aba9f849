/* The portal's only script (no inline scripts: the Content-Security-Policy allows our own files
   only). It reports the browser's time zone, draws charts from data the page already holds
   (json_script), and copies a new API key. */
(function () {
  "use strict";

  // Dates are shown in the person's time zone: the server reads this cookie.
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone) {
      document.cookie = "portal_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; SameSite=Lax";
    }
  } catch (e) { /* an old browser: UTC */ }

  var PALETTE = ["#1f6feb", "#d4722b", "#2f9e44", "#9c36b5", "#c92a2a", "#0b7285", "#e8590c", "#5c940d", "#495057"];

  function drawCharts() {
    if (typeof window.Chart === "undefined") { return; }
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var source = document.getElementById(canvas.getAttribute("data-chart"));
      if (!source) { return; }
      var data = JSON.parse(source.textContent);
      var line = data.type === "line";  // a running figure: lines, not stacked
      var chart = new window.Chart(canvas, {
        type: line ? "line" : "bar",
        data: {
          labels: data.labels,
          datasets: data.series.map(function (series, n) {
            return {
              label: series.label,
              data: series.data.map(Number),
              backgroundColor: PALETTE[n % PALETTE.length],
              borderColor: PALETTE[n % PALETTE.length]
            };
          })
        },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: false,
          scales: {
            x: { stacked: !line },
            y: { stacked: !line, beginAtZero: true, title: { display: true, text: data.unit } }
          },
          plugins: { legend: { position: "bottom" } }
        }
      });
      canvas.setAttribute("data-chart-ready", String(chart.data.datasets.length));
    });
  }

  function wireCopyButtons() {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var field = document.getElementById(button.getAttribute("data-copy"));
        var status = button.parentNode.querySelector(".copy-status");
        function done(text) { if (status) { status.textContent = text; } }
        field.select();
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(field.value).then(
            function () { done("Copied."); },
            function () { done("Press Ctrl+C to copy."); }
          );
        } else {
          done(document.execCommand("copy") ? "Copied." : "Press Ctrl+C to copy.");
        }
      });
    });
  }

  // The transfer dialog: a native <dialog> (focus kept inside, Escape closes it). Without this
  // script its form still works from a page opened with the dialog open.
  function wireDialogs() {
    document.querySelectorAll("button[data-dialog]").forEach(function (button) {
      var dialog = document.getElementById(button.getAttribute("data-dialog"));
      if (!dialog || typeof dialog.showModal !== "function") { return; }
      button.addEventListener("click", function () { dialog.showModal(); });
    });
    document.querySelectorAll("[data-close-dialog]").forEach(function (button) {
      button.addEventListener("click", function () { button.closest("dialog").close(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    wireCopyButtons();
    wireDialogs();
  });
})();
