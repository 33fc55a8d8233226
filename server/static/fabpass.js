// fabpass: confirmations for destructive actions and local times. No framework, no CDN.
(function () {
  "use strict";
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var msg = form && form.getAttribute && form.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) { ev.preventDefault(); }
  });
  window.fabpassLocalTime = function (el) {
    var v = el.getAttribute("datetime");
    if (!v) { return; }
    var d = new Date(v);
    if (!isNaN(d.getTime())) {
      el.textContent = d.toLocaleString(document.documentElement.lang || undefined,
        { dateStyle: "short", timeStyle: "short" });
    }
  };
  document.querySelectorAll("time[datetime]").forEach(window.fabpassLocalTime);
})();
