// The member page while "tap the badge now" waits: asks the server every 2 s (at most 3 min),
// then reloads the page once the badge arrived so the badges table shows it.
(function () {
  "use strict";
  var box = document.getElementById("tap-now");
  var out = document.getElementById("tap-state");
  if (!box || !out) { return; }
  var url = box.getAttribute("data-state-url");
  var tries = 0;
  function poll() {
    tries += 1;
    if (tries > 100) { return; }
    fetch(url, {credentials: "same-origin"}).then(function (r) { return r.json(); })
      .then(function (s) {
        if (s.state === "waiting") {
          out.textContent = out.getAttribute("data-waiting");
          setTimeout(poll, 2000);
        } else if (s.state === "done" && tries > 1) {
          out.textContent = out.getAttribute("data-done").replace("{uid}", s.uid);
          window.location.reload();
        }
      }).catch(function () { setTimeout(poll, 5000); });
  }
  poll();
})();
