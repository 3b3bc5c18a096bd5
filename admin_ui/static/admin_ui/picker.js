// The fhirUser picker: as staff type a name, offer the Patients, Practitioners and
// RelatedPersons whose name starts with it (GET /admin/fhir-user-picker/?q=..., the FHIR search engine).
"use strict";
(function () {
  function attach(input) {
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
        fetch(input.dataset.pickerUrl + "?q=" + encodeURIComponent(q), {credentials: "same-origin"})
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
