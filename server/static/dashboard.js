// Live dashboard: polls /dashboard/state.json every 2 s and updates the cards in place.
(function () {
  "use strict";
  var list = document.getElementById("machines");
  if (!list) { return; }
  var url = list.getAttribute("data-state-url");
  var busy = (list.getAttribute("data-busy-states") || "").split(" ");
  var usedBy = (document.getElementById("used-by") || {}).innerHTML || "{name}";
  function card(m) {
    var li = list.querySelector('[data-machine="' + m.id + '"]');
    if (!li) { return; }
    li.className = "card state-" + m.state;
    li.querySelector(".badge").textContent = m.label;
    var why = li.querySelector(".lock-reason");
    if (why) { why.textContent = m.lock_reason ? " \u2014 " + m.lock_reason : ""; }
    var who = li.querySelector(".who");
    who.textContent = "";
    if (m.member) {
      var span = document.createElement("span");
      span.textContent = usedBy.replace("{name}", m.member).replace(/&#39;|&amp;|&lt;|&gt;|&#34;/g, function (s) {
        return { "&#39;": "'", "&amp;": "&", "&lt;": "<", "&gt;": ">", "&#34;": '"' }[s];
      });
      who.appendChild(span);
      var t = document.createElement("time");
      t.setAttribute("datetime", m.since);
      t.textContent = m.since;
      who.appendChild(t);
      window.fabpassLocalTime(t);
    }
    var plug = li.querySelector(".plug");
    if (plug) { plug.textContent = m.plug || ""; }
    var watch = li.querySelector(".watch");  // "tell me when it is free" while busy
    if (watch) { watch.hidden = busy.indexOf(m.state) < 0; }
    var maint = li.querySelector(".maint");
    if (maint) {
      maint.textContent = "";
      (m.maintenance || []).forEach(function (task) {
        var item = document.createElement("li");
        item.className = "maint-" + task.state;
        item.textContent = task.label;
        maint.appendChild(item);
      });
    }
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        var known = list.querySelectorAll("[data-machine]").length;
        if (data.machines.length !== known) { window.location.reload(); return; }
        data.machines.forEach(card);
        list.setAttribute("data-updated", data.now);
      })
      .catch(function () { /* next poll retries */ })
      .finally(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 2000);
})();
