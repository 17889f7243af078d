/* The callback page: connecting → connected (toast, back to the list after ~800 ms) or failed (a way back). */
(function () {
  "use strict";
  var root = document.getElementById("callback");
  var params = new URLSearchParams(window.location.search);

  function phase(name) {
    root.setAttribute("data-phase", name);
    root.querySelectorAll("[data-phase-panel]").forEach(function (panel) {
      panel.hidden = panel.getAttribute("data-phase-panel") !== name;
    });
  }

  function fail(code) {
    root.querySelector("[data-error-code]").textContent = code || "unknown";
    var text = root.querySelector("[data-error-text]");
    text.textContent = window.Tether.errorText(code, text.textContent);
    phase("failed");
  }

  function connected() {
    phase("connected");
    var box = document.getElementById("toast");
    box.textContent = "Integration connected";
    box.className = "toast ok";
    box.hidden = false;
    setTimeout(function () { window.location.assign("/integrations?connected=" + root.dataset.definition); }, 800);
  }

  var result = params.get("tether_result");
  if (result === "failed") { fail(params.get("tether_error")); return; }
  if (params.get("error")) { fail(params.get("error")); return; }
  if (result !== "connected") { fail("no_result"); return; }
  // Confirm with the API that the integration is connected; without a session (401) the page can only show what
  // the flow said (it changes nothing either way).
  window.Tether.getIntegration(params.get("tether_integration") || "")
    .then(function (row) { if (row.status === "connected") connected(); else fail(row.status); })
    .catch(function (e) { if (e.status === 401) connected(); else fail(e.code); });
})();
