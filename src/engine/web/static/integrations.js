/* The /integrations page: cards rendered from the JSON API through tether.js (DOM APIs only, no innerHTML). */
(function () {
  "use strict";
  var T = window.Tether;
  var cards = document.getElementById("cards");
  var loading = document.getElementById("loading");
  var loadError = document.getElementById("load-error");
  var dialog = document.getElementById("confirm-disconnect");

  var MODES = { required: "Required", optional: "Optional", manual: "Manual" };
  var HINTS = {
    after_auth: "Suggested right after you sign in.",
    combined: "Connected as part of signing up.",
    settings: "Connect it here whenever you need it.",
  };

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "className") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  function toast(message, kind) {
    var box = document.getElementById("toast");
    box.textContent = message;
    box.className = "toast " + (kind || "");
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { box.hidden = true; }, 4000);
  }

  function when(value) {
    if (!value) return "";
    var d = new Date(value.endsWith("Z") || value.indexOf("+") > 0 ? value : value + "Z");
    return isNaN(d) ? value : d.toLocaleString();
  }

  function accountText(account) {
    if (!account) return "";
    return account.account_email || account.account_name || account.account_id || account.workspace || "";
  }

  function badge(label) {
    var kind = { "Valid": "ok", "Invalid": "bad", "Unknown": "unknown", "Reconnect required": "warn" }[label];
    return el("span", { className: "badge " + (kind || ""), "data-testid": "badge", text: label });
  }

  function button(label, action, kind) {
    return el("button", { type: "button", className: kind || "secondary", "data-action": action, text: label });
  }

  function actions(item, access) {
    var box = el("div", { className: "actions" });
    var connected = item.connected;
    if (!connected) {
      box.appendChild(button("Connect", "connect", "primary"));
      return box;
    }
    if (item.status === "reconnect_required") box.appendChild(button("Reconnect", "reconnect", "primary"));
    box.appendChild(button("Validate", "validate"));
    if (item.status !== "reconnect_required") box.appendChild(button("Reconnect", "reconnect"));
    if (access && access.upgrade_available) box.appendChild(button("Upgrade access", "upgrade"));
    box.appendChild(button("Disconnect", "disconnect", "danger"));
    return box;
  }

  function runsSection(integrationId) {
    var section = el("details", { className: "history", "data-testid": "runs", open: "" }, [
      el("summary", { text: "Recent runs" }),
    ]);
    var body = el("div", { className: "muted", text: "Loading…" });
    section.appendChild(body);
    T.listRuns(integrationId, 5).then(function (data) {
      var runs = data.runs || [];
      if (!runs.length) { body.textContent = "No runs yet."; return; }
      var table = el("table", {}, [el("tr", {}, ["Operation", "Status", "Counts", "Error", "Queued"].map(function (h) {
        return el("th", { text: h });
      }))]);
      runs.forEach(function (r) {
        var counts = r.records_ingested + " ingested · " + r.records_filtered + " filtered · " +
          r.records_rejected + " rejected";
        var error = r.error_code ? r.error_code + (r.error_message ? ": " + r.error_message : "") : "";
        table.appendChild(el("tr", {}, [
          el("td", { text: r.operation }),
          el("td", {}, [el("span", { className: "pill " + r.status, text: r.status })]),
          el("td", { text: counts }),
          el("td", { className: "err", text: error }),
          el("td", { text: when(r.queued_at) }),
        ]));
      });
      body.replaceWith(table);
    }).catch(function (e) { body.textContent = "Could not load runs (" + e.code + ")."; });
    return section;
  }

  function deliveriesSection(integrationId) {
    var section = el("details", { className: "history", "data-testid": "deliveries", open: "" }, [
      el("summary", { text: "Recent webhook deliveries" }),
    ]);
    var body = el("div", { className: "muted", text: "Loading…" });
    section.appendChild(body);
    T.listDeliveries(integrationId, 5).then(function (data) {
      var rows = data.deliveries || [];
      if (!rows.length) { body.textContent = "No webhook deliveries yet."; return; }
      var counts = Object.keys(data.counts || {}).map(function (k) { return k + ": " + data.counts[k]; }).join(" · ");
      var table = el("table", {}, [el("tr", {}, ["Event", "Status", "Attempts", "Error", "Received"].map(function (h) {
        return el("th", { text: h });
      }))]);
      rows.forEach(function (d) {
        table.appendChild(el("tr", {}, [
          el("td", { text: d.event_type || d.delivery_id }),
          el("td", {}, [el("span", { className: "pill " + d.status, text: d.status })]),
          el("td", { text: String(d.attempts) }),
          el("td", { className: "err", text: d.error_code ? d.error_code + ": " + d.error_message : "" }),
          el("td", { text: when(d.received_at) }),
        ]));
      });
      body.replaceWith(el("div", {}, [el("p", { className: "muted", text: counts }), table]));
    }).catch(function (e) { body.textContent = "Could not load deliveries (" + e.code + ")."; });
    return section;
  }

  function card(item, access) {
    var d = item.definition;
    var head = el("div", { className: "card-head" }, [
      el("h2", { text: d.name }),
      item.label ? badge(item.label) : el("span", { className: "badge off", "data-testid": "badge", text: "Not connected" }),
    ]);
    var meta = el("p", { className: "meta" }, [
      el("span", { className: "chip", text: MODES[d.mode] || d.mode }),
      el("span", { className: "muted", text: " " + (HINTS[d.onboarding] || "") }),
    ]);
    var node = el("article", { className: "card", "data-definition": d.id, "data-testid": "card-" + d.id }, [
      head,
      el("p", { className: "description", text: d.description }),
      meta,
    ]);
    if (item.connected) {
      var account = accountText(item.account);
      var facts = el("dl", { className: "facts" }, [
        el("dt", { text: "Account" }),
        el("dd", { "data-testid": "account", text: account || "—" }),
        el("dt", { text: "Access" }),
        el("dd", { "data-testid": "access", text: access && access.tier ? access.tier : "—" }),
        el("dt", { text: "Connected" }),
        el("dd", { text: when(item.integration.connected_at) }),
      ]);
      node.appendChild(facts);
      if (item.integration.status_reason) {
        node.appendChild(el("p", { className: "reason", text: item.integration.status_reason }));
      }
    }
    node.appendChild(actions(item, access));
    if (item.integrationId) {
      node.appendChild(runsSection(item.integrationId));
      node.appendChild(deliveriesSection(item.integrationId));
    }
    return node;
  }

  async function load() {
    loadError.hidden = true;
    loading.hidden = false;
    try {
      var items = await T.listIntegrations();
      var accesses = await Promise.all(items.map(function (item) {
        return item.connected ? T.getAccess(item.integrationId).catch(function () { return null; }) : null;
      }));
      cards.replaceChildren.apply(cards, items.map(function (item, i) { return card(item, accesses[i]); }));
      if (!items.length) cards.appendChild(el("p", { className: "muted", text: "No integrations are enabled." }));
    } catch (e) {
      document.getElementById("load-error-detail").textContent = e.message + " (" + e.code + ")";
      loadError.hidden = false;
      cards.replaceChildren();
    } finally {
      loading.hidden = true;
    }
  }

  function confirmDisconnect(name, note) {
    return new Promise(function (resolve) {
      dialog.querySelector("[data-name]").textContent = name;
      dialog.querySelector("[data-note]").textContent = note || "";
      dialog.returnValue = "";
      dialog.addEventListener("close", function onClose() {
        dialog.removeEventListener("close", onClose);
        resolve(dialog.returnValue === "confirm");
      });
      dialog.showModal();
    });
  }

  cards.addEventListener("click", async function (event) {
    var target = event.target.closest("button[data-action]");
    if (!target) return;
    var node = target.closest(".card");
    var id = node.getAttribute("data-definition");
    var name = node.querySelector("h2").textContent;
    var action = target.getAttribute("data-action");
    var returnUrl = cards.getAttribute("data-return-base") + "/integrations/" + encodeURIComponent(id) + "/callback";
    target.disabled = true;
    try {
      if (action === "connect") await T.beginIntegrationConnect(id, { returnUrl: returnUrl });
      else if (action === "reconnect") await T.beginIntegrationReconnect(id, { returnUrl: returnUrl });
      else if (action === "upgrade") await T.beginIntegrationUpgrade(id, { returnUrl: returnUrl });
      else if (action === "validate") {
        var result = await T.validateIntegration(id);
        toast(name + ": " + (result.isValid ? "the connection is valid." : (result.label || "not valid") + "."),
          result.isValid ? "ok" : "bad");
        await load();
      } else if (action === "disconnect") {
        if (!(await confirmDisconnect(name))) return;
        var done = await T.disconnectIntegration(id);
        toast(name + " disconnected." + (done.note ? " " + done.note : ""), "ok");
        await load();
      }
    } catch (e) {
      toast(name + ": " + e.message + " (" + e.code + ")", "bad");
    } finally {
      target.disabled = false;
    }
  });

  document.getElementById("refresh").addEventListener("click", load);
  document.getElementById("retry").addEventListener("click", load);
  load();
})();
