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
    var text = "value" in input ? input.value : input.textContent.trim();
    if (input.select) input.select();
    var done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
    } else if (input.select && document.execCommand("copy")) {
      done();
    }
  });

  // <button data-download="#selector" data-filename="name.txt">: save an element's text as a file.
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-download]") : null;
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-download"));
    if (!source) return;
    var text = "value" in source ? source.value : source.textContent.trim();
    var link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text + "\n"], { type: "text/plain" }));
    link.download = button.getAttribute("data-filename") || "download.txt";
    document.body.appendChild(link);
    link.click();
    link.remove();
  });

  // <select data-searchable>: a search box over long lists and multi-selects (Tom Select, vendored).
  function searchable(root) {
    if (!window.TomSelect) return;
    root.querySelectorAll("select[data-searchable]").forEach(function (select) {
      if (select.tomselect) return;
      new window.TomSelect(select, {
        plugins: select.multiple ? ["remove_button"] : [],
        maxOptions: null,
        allowEmptyOption: true,
        hidePlaceholder: false
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { searchable(document); });
  document.addEventListener("htmx:afterSwap", function (event) { searchable(event.target); });

  // [data-forget-post="/url/"]: a page that answers a POST (a key shown once) replaces its history entry,
  // so that reloading shows the list instead of submitting the form again.
  document.addEventListener("DOMContentLoaded", function () {
    var page = document.querySelector("[data-forget-post]");
    if (page && window.history.replaceState) {
      window.history.replaceState(null, "", page.getAttribute("data-forget-post"));
    }
  });
})();

// <button data-add-row="#template" data-rows="#tbody" data-total="#id_x-TOTAL_FORMS">: add a formset row.
document.addEventListener("click", function (event) {
  var button = event.target.closest ? event.target.closest("[data-add-row]") : null;
  if (!button) return;
  var total = document.querySelector(button.getAttribute("data-total"));
  var template = document.querySelector(button.getAttribute("data-add-row"));
  var rows = document.querySelector(button.getAttribute("data-rows"));
  if (!total || !template || !rows) return;
  var index = parseInt(total.value, 10);
  rows.insertAdjacentHTML("beforeend", template.innerHTML.replace(/__prefix__/g, index));
  total.value = index + 1;
});
