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
