// Keeping the keyboard's place. A reply sent through HTMX is answered by
// loading the conversation again (HX-Redirect), which would leave the
// focus at the top of the page, far from where the member was typing: a
// reply box that sent its words asks the next page, through this tab's
// sessionStorage, to put the focus back in the same box (found by its
// data-draft key; no words are kept). The skip link's target, <main>, takes
// the focus itself (tabindex="-1"), so Tab goes on from there.
(function () {
  "use strict";

  var key = "parley-refocus";

  function store(fn) {
    try {
      return fn(window.sessionStorage);
    } catch (err) {
      return null; // storage off: the focus starts at the top
    }
  }

  document.addEventListener("htmx:afterRequest", function (e) {
    var xhr = e.detail.xhr;
    var form = e.detail.elt;
    if (!xhr || xhr.status < 200 || xhr.status >= 300 || !form || !form.querySelector) return;
    var box = form.querySelector("textarea[data-draft]");
    if (box && form.contains(document.activeElement)) {
      store(function (s) { s.setItem(key, box.dataset.draft); });
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var draft = store(function (s) {
      var v = s.getItem(key);
      s.removeItem(key);
      return v;
    });
    if (!draft) return;
    var box = document.querySelector('textarea[data-draft="' + CSS.escape(draft) + '"]');
    if (box) box.focus();
  });
})();
