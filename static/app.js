// Parley's console script. Everything works without it; it adds the CSRF
// token to HTMX requests and the keyboard shortcuts:
//   /        search
//   j / k    next / previous conversation in a list (Enter opens it)
//   g then a letter   go to a section (each link's title names its letter)
(function () {
  "use strict";

  document.addEventListener("htmx:configRequest", function (e) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) {
      e.detail.headers["X-CSRF-Token"] = meta.content;
    }
  });

  // Drafts: a textarea with data-draft keeps what is typed in this tab's
  // sessionStorage under that key (nothing leaves the browser), so a reply
  // written when the session ended is there again after signing in. A
  // sent form clears its draft; signing out clears them all.
  var draftPrefix = "parley-draft:";
  function store(fn) {
    try {
      return fn(window.sessionStorage);
    } catch (err) {
      return null; // storage off: drafts are not kept
    }
  }
  function restoreDrafts(root) {
    var boxes = (root || document).querySelectorAll ? (root || document).querySelectorAll("textarea[data-draft]") : [];
    Array.prototype.forEach.call(boxes, function (box) {
      var saved = store(function (s) { return s.getItem(draftPrefix + box.dataset.draft); });
      if (saved && box.value === "") box.value = saved;
    });
  }
  document.addEventListener("input", function (e) {
    var box = e.target;
    if (box && box.tagName === "TEXTAREA" && box.dataset.draft) {
      store(function (s) { s.setItem(draftPrefix + box.dataset.draft, box.value); });
    }
  });
  document.addEventListener("htmx:afterRequest", function (e) {
    var xhr = e.detail.xhr;
    if (!xhr || xhr.status < 200 || xhr.status >= 300) return;
    var form = e.detail.elt;
    var box = form && form.querySelector ? form.querySelector("textarea[data-draft]") : null;
    if (box) store(function (s) { s.removeItem(draftPrefix + box.dataset.draft); });
  });
  document.addEventListener("submit", function (e) {
    if (e.target && e.target.querySelector && e.target.querySelector('[data-testid="sign-out"]')) {
      store(function (s) {
        for (var i = s.length - 1; i >= 0; i--) {
          var k = s.key(i);
          if (k && k.indexOf(draftPrefix) === 0) s.removeItem(k);
        }
      });
    }
  });
  document.addEventListener("DOMContentLoaded", function () { restoreDrafts(document); });
  document.addEventListener("htmx:load", function (e) { restoreDrafts(e.target); });

  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  function move(step) {
    var links = Array.prototype.slice.call(document.querySelectorAll("[data-keynav] a"));
    if (links.length === 0) return;
    var at = links.indexOf(document.activeElement);
    var next = at < 0 ? (step > 0 ? 0 : links.length - 1) : Math.min(links.length - 1, Math.max(0, at + step));
    links[next].focus();
    links[next].scrollIntoView({ block: "nearest" });
  }

  var pendingG = false;
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) {
      if (e.key === "Escape" && typing(e.target)) e.target.blur();
      return;
    }
    if (pendingG) {
      pendingG = false;
      var link = document.querySelector('a[data-nav-key="' + e.key + '"]');
      if (link) {
        e.preventDefault();
        link.click();
      }
      return;
    }
    switch (e.key) {
      case "/":
        var search = document.querySelector('input[type="search"]');
        if (search) {
          e.preventDefault();
          search.focus();
          search.select();
        }
        break;
      case "j":
        e.preventDefault();
        move(1);
        break;
      case "k":
        e.preventDefault();
        move(-1);
        break;
      case "g":
        pendingG = true;
        break;
    }
  });
})();
