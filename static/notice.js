// Noticing hand-offs, on every console page of a member who works them:
// the page's title and the nav's Hand-offs show how many conversations
// wait for a person, kept live by the server's event stream (one count per
// instance, however many tabs; one stream per browser: follow). A browser notification when the count
// grows is the member's choice: off until they press the toggle, which is
// the only place the browser's permission is asked. The notification
// says that someone waits and nothing else (no name, number or words), as
// it may show on a locked screen.
(function () {
  "use strict";

  var prefKey = "parley-notify-handoffs";
  var baseTitle = document.title;
  var known = null; // the last count heard; null: none yet

  function pref(value) {
    try {
      if (value === undefined) return window.localStorage.getItem(prefKey) === "on";
      if (value) window.localStorage.setItem(prefKey, "on");
      else window.localStorage.removeItem(prefKey);
    } catch (err) {
      // storage off: the choice lasts this page
    }
    return !!value;
  }

  function canNotify() {
    return "Notification" in window;
  }

  function showToggle(toggle) {
    if (!toggle) return;
    var on = pref() && canNotify() && Notification.permission === "granted";
    toggle.setAttribute("aria-pressed", on ? "true" : "false");
    toggle.title = on ? "On: press to stop them" : "Off: press to be notified";
  }

  function show(n) {
    document.title = n > 0 ? "(" + n + ") " + baseTitle : baseTitle;
    Array.prototype.forEach.call(document.querySelectorAll("[data-handoff-count]"), function (badge) {
      badge.textContent = String(n);
      badge.title = n === 1 ? "1 conversation waiting for a person" : n + " conversations waiting for a person";
      badge.hidden = n === 0;
    });
  }

  function notify() {
    if (!pref() || !canNotify() || Notification.permission !== "granted") return;
    try {
      // One tag: several open tabs show one notification, not one each.
      new Notification("Parley", { body: "A conversation is waiting for a person", tag: "parley-handoff" });
    } catch (err) {
      // A browser that notifies only from a service worker: the title and
      // the nav still say it.
    }
  }

  function heard(n) {
    if (isNaN(n) || n < 0) return;
    if (known !== null && n > known) notify();
    known = n;
    show(n);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var nav = document.querySelector("[data-waiting-events]");
    var toggle = document.querySelector("[data-notify-toggle]");
    if (toggle && canNotify()) {
      toggle.hidden = false;
      showToggle(toggle);
      toggle.addEventListener("click", function () {
        if (toggle.getAttribute("aria-pressed") === "true") {
          pref(false);
          showToggle(toggle);
          return;
        }
        pref(true);
        if (Notification.permission === "granted") {
          showToggle(toggle);
          return;
        }
        Notification.requestPermission().then(function () {
          if (Notification.permission !== "granted") pref(false);
          showToggle(toggle);
        });
      });
    }
    if (!nav || !window.EventSource) return;
    follow(nav.getAttribute("data-waiting-events"));
  });

  // follow hears the count. A browser opens at most six connections to one
  // server (HTTP/1.1), and a stream holds one: so one tab of the browser
  // (the holder of a Web Lock) listens to the stream and tells the others
  // through a BroadcastChannel; when it closes, the lock passes to another
  // tab, which opens the stream in its turn. A tab that opens asks for
  // the last count at once. Without these APIs each tab listens itself.
  function follow(url) {
    if (!window.BroadcastChannel || !navigator.locks) {
      listen(url, heard);
      return;
    }
    var channel = new BroadcastChannel("parley-handoffs");
    var last = null; // the count this tab announced last, when it listens
    channel.onmessage = function (e) {
      if (e.data === "ask") {
        if (last !== null) channel.postMessage(last);
        return;
      }
      heard(e.data);
    };
    channel.postMessage("ask");
    navigator.locks.request("parley-handoffs", function () {
      listen(url, function (n) {
        last = n;
        channel.postMessage(n);
        heard(n);
      });
      return new Promise(function () {}); // held while this page lives
    });
  }

  function listen(url, then) {
    var events = new EventSource(url);
    events.addEventListener("waiting", function (e) {
      then(parseInt(e.data, 10));
    });
  }
})();
