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
  // A search box that narrows a long <select>: chosen options always stay visible.
  document.querySelectorAll("input[data-filter-for]").forEach(function (box) {
    var select = document.getElementById(box.getAttribute("data-filter-for"));
    if (!select) { return; }
    box.addEventListener("input", function () {
      var q = box.value.trim().toLowerCase();
      Array.prototype.forEach.call(select.options, function (opt) {
        opt.hidden = !!q && !opt.selected && opt.text.toLowerCase().indexOf(q) === -1;
      });
    });
  });
})();
