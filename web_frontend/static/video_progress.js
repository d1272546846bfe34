// The Video page's progress without reloading the page: poll the job's status JSON (a route of
// this site) and move the bar and its text in place; once the job ended, reload the page, which
// then shows the result. Without JavaScript the page refreshes itself instead (<noscript> meta).
// The site's CSP allows scripts from 'self' only: nothing inline, no eval.
(function () {
  "use strict";
  var POLL_MS = 1000;
  var RETRY_MS = 5000; // the site or the API did not answer: try again, more slowly

  function start() {
    var card = document.getElementById("job-progress");
    if (!card || !window.fetch) {
      return;
    }
    var url = card.getAttribute("data-status-url");
    var bar = document.getElementById("progress");
    var text = document.getElementById("progress-text");
    var hint = document.getElementById("progress-hint");
    var status = document.querySelector("p.job-status");
    var word = status ? status.querySelector("strong") : null;
    if (hint) {
      hint.textContent = "This page follows the analysis as it goes.";
    }

    function show(job) {
      bar.value = job.fraction;
      bar.textContent = Math.round(100 * job.fraction) + "%";
      if (text && job.text) {
        text.textContent = job.text;
      }
      if (status) {
        status.setAttribute("data-status", job.status);
      }
      if (word) {
        word.textContent = job.status_word;
      }
    }

    function poll() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (response.status === 404) {
            window.location.reload(); // deleted meanwhile: the page says so
            return null;
          }
          if (!response.ok) {
            throw new Error("status " + response.status);
          }
          return response.json();
        })
        .then(function (job) {
          if (job === null) {
            return;
          }
          if (job.status !== "queued" && job.status !== "running") {
            window.location.reload(); // done, failed or cancelled: the page shows the outcome
            return;
          }
          show(job);
          window.setTimeout(poll, POLL_MS);
        })
        .catch(function () {
          window.setTimeout(poll, RETRY_MS);
        });
    }

    window.setTimeout(poll, POLL_MS);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
