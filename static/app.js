// Parley's console script. Everything works without it; it adds the CSRF
// token to HTMX requests and the keyboard shortcuts:
//   /        search
//   j / k    next / previous conversation in a list (Enter opens it)
//   g then a letter   go to a section (each link's title names its letter)
//   r        the reply box (the workspace's pane, a contact's page)
//   ?        the workspace's shortcut list (a dialog; Esc closes it)
//   Esc      leaves a box, closes an open confirmation
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
    if (at < 0) {
      var open = document.querySelector('[data-keynav] a[aria-current="true"]');
      if (open) at = links.indexOf(open);
    }
    var next = at < 0 ? (step > 0 ? 0 : links.length - 1) : Math.min(links.length - 1, Math.max(0, at + step));
    links[next].focus();
    links[next].scrollIntoView({ block: "nearest" });
  }

  // The workspace: the open conversation's row stays marked, and the row
  // that had the keyboard keeps it, when the list is fetched again (a
  // live change or a search); the list keeps its scroll, and the
  // conversation's messages stay at their end as new ones come.
  function markOpen() {
    var pane = document.querySelector('#work-pane [data-testid="pane"]');
    var open = pane ? pane.dataset.contactId : "";
    var rows = document.querySelectorAll("[data-worklist] a[data-contact-id]");
    Array.prototype.forEach.call(rows, function (a) {
      if (a.dataset.contactId === open) a.setAttribute("aria-current", "true");
      else a.removeAttribute("aria-current");
    });
  }
  function stickToEnd(box) {
    if (box) box.scrollTop = box.scrollHeight;
  }
  var kept = null; // what the list had before a swap
  function scrollerOf(el) {
    return el.closest("[data-stick-bottom]") || document.scrollingElement;
  }
  function atEnd(box) {
    return box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  }
  document.addEventListener("htmx:beforeSwap", function (e) {
    var target = e.detail.target;
    if (!target) return;
    if (target.id === "work-rows") {
      var scroll = document.getElementById("work-scroll");
      var focused = document.activeElement;
      kept = {
        scroll: scroll ? scroll.scrollTop : 0,
        focus: focused && focused.dataset && target.contains(focused) ? focused.dataset.contactId : ""
      };
    }
  });
  // A live timeline its reader left at its end stays at its end as its
  // messages come: its box in the workspace (also when a part loading below
  // shrinks it), the page itself on a contact's page. Where the reader left
  // it is noted as they scroll (and as it is kept at its end), on the
  // element that stays: the list inside it is swapped out.
  function noteEnds(box) {
    document.querySelectorAll("[data-follow]").forEach(function (el) {
      var s = scrollerOf(el);
      if (!box || s === box) el.dataset.atEnd = atEnd(s) ? "1" : "";
    });
  }
  document.addEventListener("scroll", function (e) {
    noteEnds(e.target === document ? document.scrollingElement : e.target);
  }, true);
  // Marked as soon as the new list is in, before the page is painted, so
  // the open row never flickers unmarked; again once settled.
  document.addEventListener("htmx:afterSwap", markOpen);
  document.addEventListener("htmx:afterSettle", function (e) {
    markOpen();
    var target = e.detail.target;
    if (kept && document.getElementById("work-rows")) {
      var scroll = document.getElementById("work-scroll");
      if (scroll) scroll.scrollTop = kept.scroll;
      if (kept.focus) {
        var row = document.querySelector('[data-worklist] a[data-contact-id="' + kept.focus + '"]');
        if (row) row.focus({ preventScroll: true });
      }
      kept = null;
    }
    if (target && target.id === "work-pane") {
      stickToEnd(target.querySelector("[data-stick-bottom]"));
      noteEnds(null);
    }
    // The page itself is scrolled only for the timeline's own news: a part
    // loading elsewhere must not move what the reader is about to click.
    var asked = e.detail.requestConfig && e.detail.requestConfig.elt;
    document.querySelectorAll("[data-follow]").forEach(function (el) {
      var box = scrollerOf(el);
      if (el.dataset.atEnd && (asked === el || box !== document.scrollingElement)) stickToEnd(box);
    });
  });
  // A confirmed command answered: its question closes, so that a refusal
  // shown under it can be read in full (a success leaves the page).
  document.addEventListener("htmx:afterRequest", function (e) {
    var form = e.detail.elt;
    if (form && form.querySelectorAll) {
      Array.prototype.forEach.call(form.querySelectorAll("details[open]"), function (d) { d.open = false; });
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    markOpen();
    stickToEnd(document.querySelector("#work-pane [data-stick-bottom]"));
    noteEnds(null);
  });

  function replyBox() {
    return document.querySelector('#work-pane [data-testid="reply-form"] textarea') ||
      document.querySelector('[data-testid="reply-form"] textarea');
  }

  // A key that moved the focus into a box must not be typed there too:
  // its keydown is cancelled, and a keypress that comes all the same (some
  // input methods and automation send the character on its own) is
  // dropped.
  var swallow = "";
  document.addEventListener("keypress", function (e) {
    if (swallow && e.key === swallow) e.preventDefault();
    swallow = "";
  }, true);
  document.addEventListener("keyup", function () { swallow = ""; }, true);

  var pendingG = false;
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) {
      if (e.key === "Escape" && typing(e.target)) e.target.blur();
      return;
    }
    if (document.querySelector("dialog[open]")) return; // the dialog has the keys (Esc closes it)
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
          swallow = "/";
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
      case "r":
        var box = replyBox();
        if (box) {
          e.preventDefault();
          swallow = "r";
          box.focus();
        }
        break;
      case "?":
        var help = document.getElementById("shortcut-help");
        if (help && help.showModal) {
          e.preventDefault();
          help.showModal(); // modal: the page behind is inert, focus stays inside; Esc closes
        }
        break;
      case "Escape":
        Array.prototype.forEach.call(document.querySelectorAll("details[open]"), function (d) { d.open = false; });
        break;
    }
  });
})();
