// gitfleet status page: live updates. Server-sent events from /api/events carry every
// section rendered on the server (escaped there); this script swaps in the sections that
// changed, keeps open <details> open, and ticks the "N s ago" times. When the stream fails it
// polls /api/sections and reopens the stream with backoff. No inline script, no eval.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var last = {};
  var opened = {};
  var source = null;
  var poller = null;
  var backoff = 1000;

  function age(iso) {
    var s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (isNaN(s)) return "";
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) return Math.floor(s / 3600) + " h";
    return Math.floor(s / 86400) + " d";
  }

  function ago(iso) {
    var text = age(iso);
    return text ? text + " ago" : "";
  }

  function until(iso) {
    var s = Math.round((Date.parse(iso) - Date.now()) / 1000);
    if (isNaN(s)) return "";
    if (s <= 0) return "due now";
    if (s < 60) return "in " + s + " s";
    if (s < 3600) return "in " + Math.floor(s / 60) + " min";
    return "in " + Math.floor(s / 3600) + " h";
  }

  function tick() {
    document.querySelectorAll("time[data-rel]").forEach(function (t) {
      var text = ago(t.getAttribute("datetime"));
      if (text && t.textContent !== text) t.textContent = text;
    });
    document.querySelectorAll("time[data-age]").forEach(function (t) {
      var text = age(t.getAttribute("datetime"));
      if (text && t.textContent !== text) t.textContent = text;
    });
    document.querySelectorAll("time[data-until]").forEach(function (t) {
      var text = until(t.getAttribute("datetime"));
      if (text && t.textContent !== text) t.textContent = text;
    });
  }

  function setLive(state) {
    live.setAttribute("data-live", state);
    var header = document.getElementById("s-header");
    var updated = header && header.getAttribute("data-updated");
    var when = updated ? ' · updated <time data-rel datetime="' + updated.replace(/[^0-9TZ:.+-]/g, "") + '"></time>' : "";
    var word = state === "live" ? "Live" : state === "polling" ? "Reconnecting (polling every 5 s)" : "Reconnecting";
    live.innerHTML = word + when;
    tick();
  }

  function swap(sections) {
    Object.keys(sections).forEach(function (id) {
      var html = sections[id];
      if (last[id] === html) return;
      var old = document.getElementById(id);
      if (!old) return;
      var holder = document.createElement("template");
      holder.innerHTML = html;
      var fresh = holder.content.firstElementChild;
      if (!fresh || fresh.id !== id) return;
      fresh.querySelectorAll("details[id]").forEach(function (d) {
        if (d.id in opened) d.open = opened[d.id];
      });
      old.replaceWith(fresh);
      last[id] = html;
    });
  }

  function poll() {
    fetch("/api/sections", { cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (body) { swap(body.sections); setLive(source && source.readyState === 1 ? "live" : "polling"); })
      .catch(function () { setLive("reconnecting"); });
  }

  function startPolling() {
    if (!poller) poller = setInterval(poll, 5000);
  }

  function connect() {
    if (!window.EventSource) { startPolling(); return; }
    source = new EventSource("/api/events");
    source.addEventListener("status", function (e) {
      backoff = 1000;
      if (poller) { clearInterval(poller); poller = null; }
      swap(JSON.parse(e.data).sections);
      setLive("live");
    });
    source.onerror = function () {
      setLive("reconnecting");
      startPolling();
      if (source.readyState === 2) {
        // Closed for good (the server answered with an error): reopen later ourselves.
        source = null;
        setTimeout(connect, backoff);
        backoff = Math.min(backoff * 2, 30000);
      }
    };
  }

  document.addEventListener("toggle", function (e) {
    if (e.target.id) opened[e.target.id] = e.target.open;
  }, true);
  setInterval(tick, 1000);
  connect();
})();
