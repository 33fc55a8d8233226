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
  // Phone: the menu folds behind one button (shown only where the CSS says the screen is
  // narrow); without JavaScript the menu simply stays open.
  var toggle = document.querySelector(".menu-toggle");
  if (toggle) {
    document.documentElement.classList.add("js");
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      var open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }
  // Wide tables: say when part of the table is off-screen (class drives a visible hint).
  function hint(wrap) {
    var more = wrap.scrollWidth - wrap.clientWidth - wrap.scrollLeft > 2;
    wrap.classList.toggle("more-right", more);
    wrap.classList.toggle("more-left", wrap.scrollLeft > 2);
    // a region that scrolls must be reachable with the keyboard (WCAG 2.1.1; axe
    // scrollable-region-focusable)
    if (wrap.scrollWidth > wrap.clientWidth) { wrap.setAttribute("tabindex", "0"); }
    else { wrap.removeAttribute("tabindex"); }
  }
  document.querySelectorAll(".table-wrap").forEach(function (wrap) {
    hint(wrap);
    wrap.addEventListener("scroll", function () { hint(wrap); }, { passive: true });
    window.addEventListener("resize", function () { hint(wrap); });
  });
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
