// mcp-hub approvals: the live inbox and the countdowns. Served by the hub from /static/ (CSP script-src 'self');
// the pages carry no inline script.
"use strict";
(function () {
  function format(ms) {
    var total = Math.floor(ms / 1000), h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60);
    var s = total % 60;
    if (h) { return h + " h " + m + " min"; }
    if (m) { return m + " min " + s + " s"; }
    return s + " s";
  }
  function tick() {
    document.querySelectorAll("time[data-countdown]").forEach(function (el) {
      var ms = Date.parse(el.getAttribute("datetime")) - Date.now();
      el.textContent = ms > 0 ? format(ms) : "expired";
    });
  }
  tick();
  window.setInterval(tick, 1000);
  var live = document.getElementById("live");
  var status = document.getElementById("live-status");
  var action = document.getElementById("action");
  if (!window.EventSource || (!live && !action)) { return; }
  var loading = false, again = false;
  function refresh() {
    if (loading) { again = true; return; }
    loading = true;
    var focused = document.activeElement && live.contains(document.activeElement)
      ? document.activeElement.getAttribute("href") : null;
    live.setAttribute("aria-busy", "true");
    fetch(live.getAttribute("data-src"), { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        var count = response.headers.get("x-pending-count");
        return response.text().then(function (text) {
          live.innerHTML = text;
          tick();
          if (focused) {
            var target = live.querySelector('a[href="' + focused + '"]');
            if (target) { target.focus(); }
          }
          if (status && count !== null) { status.textContent = count + " waiting. This list updates by itself."; }
        });
      })
      .catch(function () { if (status) { status.textContent = "Could not refresh the list; reload the page."; } })
      .finally(function () {
        live.removeAttribute("aria-busy");
        loading = false;
        if (again) { again = false; refresh(); }
      });
  }
  var source = new EventSource("/approvals/events");
  // What changed between drawing this page and (re)connecting is in no event: fetch the list once then.
  source.addEventListener("open", function () { if (live) { refresh(); } });
  source.addEventListener("action", function (event) {
    var data = JSON.parse(event.data);
    if (live) { refresh(); }
    if (action && data.id === action.getAttribute("data-action-id") && data.status !== action.getAttribute("data-status")) {
      action.setAttribute("data-status", data.status);
      // Decided elsewhere: the form goes (a decision is final), and the live region says what changed.
      var decide = document.getElementById("decide");
      if (decide && data.status !== "pending") { decide.hidden = true; }
      if (status) {
        status.textContent = "This action is now " + data.status + ". ";
        var again = document.createElement("a");
        again.href = window.location.pathname;
        again.textContent = "Reload to see who decided and what happened.";
        status.appendChild(again);
      }
    }
  });
  source.addEventListener("signed-out", function () { source.close(); window.location.reload(); });
})();
