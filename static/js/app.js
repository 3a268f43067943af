// DeliveryHub: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";

  // <form data-confirm="Question?">: ask before a destructive POST.
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // <button data-copy="#selector">: copy an input's value to the clipboard.
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (!button) return;
    var input = document.querySelector(button.getAttribute("data-copy"));
    if (!input) return;
    input.select();
    var done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done);
    } else if (document.execCommand("copy")) {
      done();
    }
  });

  // [data-forget-post="/url/"]: a page that answers a POST (a key shown once) replaces its history entry,
  // so that reloading shows the list instead of submitting the form again.
  document.addEventListener("DOMContentLoaded", function () {
    var page = document.querySelector("[data-forget-post]");
    if (page && window.history.replaceState) {
      window.history.replaceState(null, "", page.getAttribute("data-forget-post"));
    }
  });
})();
