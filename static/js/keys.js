// The keys section: a retiring key's countdown, kept current without a
// reload. The server renders the same text first; this only refreshes it.
(function () {
  "use strict";

  function plural(count, word) {
    return count + "\u00a0" + word + (count === 1 ? "" : "s");
  }

  function timeLeft(ms) {
    const minutes = Math.floor(ms / 60000);
    const days = Math.floor(minutes / 1440);
    const hours = Math.floor((minutes % 1440) / 60);
    if (days) return plural(days, "day") + (hours ? ", " + plural(hours, "hour") : "");
    if (hours) return plural(hours, "hour") + (minutes % 60 ? ", " + plural(minutes % 60, "minute") : "");
    return plural(minutes, "minute");
  }

  function refresh() {
    document.querySelectorAll("[data-ends-at]").forEach(function (badge) {
      const left = Date.parse(badge.dataset.endsAt) - Date.now();
      badge.textContent = left > 0
        ? "Retiring: ends in " + timeLeft(left)
        : "Ended: this key no longer works";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    refresh();
    setInterval(refresh, 15000);
  });
})();
