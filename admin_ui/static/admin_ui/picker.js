// The picker of people and organizations: as staff type a name, offer the resources whose name
// starts with it (GET /admin/fhir-user-picker/?q=...&types=..., the FHIR search engine). Each
// input has its own suggestion list (a page may hold several pickers).
"use strict";
(function () {
  var made = 0;
  function attach(input) {
    if (!input.getAttribute("list")) { input.setAttribute("list", "picker-choices-" + (++made)); }
    var list = document.getElementById(input.getAttribute("list"));
    if (!list) {
      list = document.createElement("datalist");
      list.id = input.getAttribute("list");
      input.parentNode.appendChild(list);
    }
    var timer = null;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      var q = input.value.trim();
      if (q.length < 2) { return; }
      timer = setTimeout(function () {
        var url = new URL(input.dataset.pickerUrl, window.location.href);
        url.searchParams.set("q", q);
        fetch(url.toString(), {credentials: "same-origin"})
          .then(function (r) { return r.ok ? r.json() : {results: []}; })
          .then(function (data) {
            list.replaceChildren();
            data.results.forEach(function (item) {
              var option = document.createElement("option");
              option.value = item.reference;
              option.label = item.label;
              option.textContent = item.label;
              list.appendChild(option);
            });
          });
      }, 250);
    });
  }
  function init() { document.querySelectorAll("input.fhir-user-picker").forEach(attach); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
