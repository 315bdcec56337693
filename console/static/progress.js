// sios console: follows a log verification by polling its status. Nothing else
// runs on any console page; without this script the page offers a refresh link.
"use strict";
(function () {
  var box = document.getElementById("verification");
  if (!box) { return; }
  var url = box.getAttribute("data-status");
  var bar = document.getElementById("progress");
  var text = document.getElementById("progress-text");
  var outcome = document.getElementById("outcome");
  function show(s) {
    bar.max = s.total || 1;
    bar.value = s.done;
    text.textContent = s.done + " of " + s.total + " entries";
    if (!s.finished) { return false; }
    var r = s.result;
    if (s.ok) {
      outcome.className = "ok";
      outcome.textContent = "The log verifies: " + r.entries + " entries (" + r.records + " records, " + r.seals + " seals" +
        (r.pending ? ", " + r.pending + " awaiting their seal" : "") + ") (" + s.seconds.toFixed(1) + " s)";
    } else {
      outcome.className = "error";
      outcome.textContent = "The log does NOT verify: " + s.failure + " (" + s.seconds.toFixed(1) + " s)";
    }
    return true;
  }
  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (resp) { if (!resp.ok) { throw new Error(resp.status); } return resp.json(); })
      .then(function (s) { if (!show(s)) { setTimeout(poll, 400); } })
      .catch(function () { text.textContent += " (status unavailable; refresh the page)"; });
  }
  if (outcome.className === "") { poll(); }
})();
