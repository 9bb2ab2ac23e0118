// Report filters: typing a date switches the period to "custom dates"; choosing a named period
// clears the typed dates (the server works the days out and shows them). No date arithmetic
// here, so the page and the server never disagree about which days a period covers.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-report-filters]").forEach(function (form) {
      var preset = form.querySelector("[data-period-preset]");
      if (!preset) return;
      var dates = form.querySelectorAll("input[name=date_from], input[name=date_to]");
      dates.forEach(function (input) {
        input.addEventListener("change", function () { preset.value = "custom"; });
      });
      preset.addEventListener("change", function () {
        if (preset.value === "custom") return;
        dates.forEach(function (input) { input.value = ""; });
      });
    });
  });
})();
