/* The /integrations page: cards rendered from the JSON API through tether.js (DOM APIs only, no innerHTML).
 *
 * Everything a card offers comes from the catalog's description of its definition: a "Connect" button for each
 * auth flow (OAuth, app install) the operator config can serve, a form built from ``manual_slot_schema`` for each
 * typed-in credential, the variables that would enable what is missing, and a Run button for each operation a
 * user may start that ingests records. Nothing here knows a particular provider. */
(function () {
  "use strict";
  var T = window.Tether;
  var cards = document.getElementById("cards");
  var disabledSection = document.getElementById("disabled");
  var disabledCards = document.getElementById("disabled-cards");
  var loading = document.getElementById("loading");
  var loadError = document.getElementById("load-error");
  var dialog = document.getElementById("confirm-disconnect");

  var MODES = { required: "Required", optional: "Optional", manual: "Manual" };
  var HINTS = {
    after_auth: "Suggested right after you sign in.",
    combined: "Connected as part of signing up.",
    settings: "Connect it here whenever you need it.",
  };
  var FLOWS = { oauth2: true, app_install: true };
  var uid = 0;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "className") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      if (c) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function toast(message, kind) {
    var box = document.getElementById("toast");
    box.textContent = message;
    box.className = "toast " + (kind || "");
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { box.hidden = true; }, 5000);
  }

  /** A sentence for an error code, with the code itself in small text beside it. */
  function errorLine(code, attrs) {
    return el("span", attrs || {}, [
      el("span", { "data-testid": "error-text", text: T.errorText(code) + " " }),
      el("code", { className: "code", "data-testid": "error-code", text: code }),
    ]);
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

  /** How buttons name their card: "Demo CRM", or "Demo CRM (acme)" once connected to an account. */
  function cardName(item) {
    var account = item.connected ? accountText(item.account) : "";
    return item.definition.name + (account ? " (" + account + ")" : "");
  }

  function badge(label) {
    var kind = { "Valid": "ok", "Invalid": "bad", "Unknown": "unknown", "Reconnect required": "warn" }[label];
    return el("span", { className: "badge " + (kind || ""), "data-testid": "badge", text: label });
  }

  function button(label, action, kind, ariaLabel, data) {
    var attrs = { type: "button", className: kind || "secondary", "data-action": action, text: label };
    if (ariaLabel) attrs["aria-label"] = ariaLabel;
    Object.keys(data || {}).forEach(function (k) { attrs["data-" + k] = data[k]; });
    return el("button", attrs);
  }

  // -- what the catalog says about the card's connections ------------------------------------------------------

  function connectionsOf(item) {
    var all = (item.detail && item.detail.connection_details) || [];
    return {
      all: all,
      flows: all.filter(function (c) { return FLOWS[c.auth] && c.enabled; }),
      typed: all.filter(function (c) { return c.manual_slot_schema && c.enabled; }),
      unoffered: all.filter(function (c) { return !c.enabled; }),
    };
  }

  function canConnect(item) {
    var conns = connectionsOf(item);
    return item.connected || conns.flows.length > 0 || conns.typed.length > 0;
  }

  function activeConnection(item) {
    var id = item.integration && item.integration.connection;
    return connectionsOf(item).all.filter(function (c) { return c.id === id; })[0] || null;
  }

  /** Why a card offers no way to connect, in a sentence. */
  function noWayReason(conns) {
    if (!conns.all.length) return "This integration declares no connection a person can make: the host app's " +
      "server sets it up.";
    if (conns.unoffered.length === conns.all.length) return "None of its connections can start on this server yet.";
    return "Its connections cannot be made from this page (they need the host app's server).";
  }

  // -- the typed-in credential form, from the slot's JSON Schema ---------------------------------------------

  /** Slot and field descriptions are docstrings: drop reStructuredText's ``literal`` markers for a person. */
  function prose(text) {
    return String(text || "").replace(/``/g, "");
  }

  function fieldType(spec) {
    if (spec.anyOf) {
      var real = spec.anyOf.filter(function (s) { return s.type !== "null"; })[0] || {};
      return Object.assign({}, real, { title: spec.title, description: spec.description, default: spec.default });
    }
    return spec;
  }

  function field(name, rawSpec, required, formId) {
    var spec = fieldType(rawSpec);
    var id = formId + "-" + name;
    var secret = spec.writeOnly || spec.format === "password";
    var input;
    if (spec.enum) {
      input = el("select", { id: id, name: name }, spec.enum.map(function (v) {
        return el("option", { value: String(v), text: String(v) });
      }));
    } else if (spec.type === "boolean") {
      input = el("input", { id: id, name: name, type: "checkbox" });
      if (spec.default === true) input.checked = true;
    } else {
      input = el("input", {
        id: id,
        name: name,
        type: secret ? "password" : spec.type === "integer" || spec.type === "number" ? "number" : "text",
        autocomplete: secret ? "off" : "on",
        spellcheck: "false",
      });
      if (!secret && spec.default !== undefined && spec.default !== null) input.value = String(spec.default);
      if (spec.maxLength) input.setAttribute("maxlength", String(spec.maxLength));
    }
    input.setAttribute("data-type", spec.type || "string");
    var describedBy = [id + "-error"];
    if (required) { input.required = true; input.setAttribute("aria-required", "true"); }
    var label = el("label", { for: id }, [
      spec.title || name,
      required ? el("span", { className: "req", "aria-hidden": "true", text: " *" }) : null,
      secret ? el("span", { className: "muted small", "aria-hidden": "true", text: " (hidden as you type)" }) : null,
    ]);
    var hint = null;
    if (spec.description) {
      hint = el("p", { className: "hint muted", id: id + "-hint", text: prose(spec.description) });
      describedBy.unshift(id + "-hint");
    }
    input.setAttribute("aria-describedby", describedBy.join(" "));
    var error = el("p", { className: "field-error", id: id + "-error", "data-field-error": name, hidden: "" });
    return el("div", { className: "field", "data-field": name }, [label, input, hint, error]);
  }

  function credentialForm(item, connection) {
    var schema = connection.manual_slot_schema;
    var formId = "f" + (++uid);
    var required = schema.required || [];
    var props = schema.properties || {};
    var form = el("form", {
      className: "credential-form",
      novalidate: "",  // the API validates; its 422 errors are shown beside the fields
      "data-testid": "form-" + connection.id,
      "data-slot": connection.credential_slot,
      "aria-label": connection.title + " for " + item.definition.name,
    });
    if (schema.description) form.appendChild(el("p", { className: "muted small", text: prose(schema.description) }));
    Object.keys(props).forEach(function (name) {
      form.appendChild(field(name, props[name], required.indexOf(name) >= 0, formId));
    });
    if (required.length) {
      form.appendChild(el("p", { className: "muted small" }, [el("span", { className: "req", text: "*" }), " required"]));
    }
    form.appendChild(el("div", { className: "form-error", role: "alert", "data-testid": "form-error", hidden: "" }));
    form.appendChild(el("div", { className: "actions" }, [el("button", {
      type: "submit",
      className: "primary",
      text: item.connected ? "Save" : "Connect",
      "aria-label": (item.connected ? "Save " : "Connect ") + cardName(item) + ": " + connection.title,
    })]));
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      submitForm(item, connection, form);
    });
    return form;
  }

  function formValues(form) {
    var values = {};
    form.querySelectorAll("input, select").forEach(function (input) {
      var type = input.getAttribute("data-type");
      if (input.type === "checkbox") values[input.name] = input.checked;
      else if (input.value === "") return;  // absent: the schema's default or a "required" error
      else if (type === "integer" || type === "number") values[input.name] = Number(input.value);
      else values[input.name] = input.value;
    });
    return values;
  }

  function clearErrors(form) {
    form.querySelectorAll("[data-field-error]").forEach(function (p) { p.hidden = true; p.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach(function (i) { i.removeAttribute("aria-invalid"); });
    var box = form.querySelector(".form-error");
    box.hidden = true;
    box.replaceChildren();
  }

  function showErrors(form, error) {
    var unplaced = [];
    (error.fields || []).forEach(function (f) {
      var name = String(f.field).split(".")[0];
      var slot = form.querySelector('[data-field-error="' + CSS.escape(name) + '"]');
      if (!slot) { unplaced.push(f.field + ": " + f.message); return; }
      slot.textContent = f.message;
      slot.hidden = false;
      var input = form.querySelector('[name="' + CSS.escape(name) + '"]');
      if (input) input.setAttribute("aria-invalid", "true");
    });
    var box = form.querySelector(".form-error");
    box.appendChild(errorLine(error.code));
    if (unplaced.length) box.appendChild(el("p", { className: "small", text: unplaced.join("; ") }));
    box.hidden = false;
    var first = form.querySelector('[aria-invalid="true"]');
    if (first) first.focus();
  }

  async function submitForm(item, connection, form) {
    var submit = form.querySelector("button[type=submit]");
    clearErrors(form);
    submit.disabled = true;
    try {
      await T.submitCredential(item.definitionId, connection.credential_slot, formValues(form));
      toast(item.definition.name + " connected.", "ok");
      await load();
    } catch (e) {
      showErrors(form, e);
    } finally {
      submit.disabled = false;
    }
  }

  // -- the parts of a card -----------------------------------------------------------------------------------

  function connectArea(item) {
    var conns = connectionsOf(item);
    var area = el("div", { className: "connect", "data-testid": "connect-area" });
    var name = cardName(item);
    var buttons = el("div", { className: "actions" });
    conns.flows.forEach(function (c) {
      var several = conns.flows.length > 1;
      buttons.appendChild(button(several ? c.title : "Connect", "connect", "primary",
        "Connect " + name + (several ? ": " + c.title : ""), { connection: c.id }));
    });
    if (conns.flows.length) area.appendChild(buttons);
    conns.typed.forEach(function (c, i) {
      var open = !conns.flows.length && i === 0;
      var box = el("details", { className: "typed", "data-testid": "typed-" + c.id }, [
        el("summary", { text: (conns.flows.length ? "Or: " : "") + c.title }),
        credentialForm(item, c),
      ]);
      if (open) box.setAttribute("open", "");
      area.appendChild(box);
    });
    if (!conns.flows.length && !conns.typed.length) {
      area.appendChild(el("p", { className: "notice-inline", "data-testid": "no-connection", text: noWayReason(conns) }));
    }
    conns.unoffered.forEach(function (c) {
      area.appendChild(el("p", { className: "muted small", "data-testid": "unoffered-" + c.id }, [
        "“" + c.title + "” is not available here: the server needs ",
        varList(c.missing_config),
        ".",
      ]));
    });
    return area;
  }

  function varList(names) {
    var span = el("span", { className: "vars" });
    names.forEach(function (n, i) {
      if (i) span.appendChild(document.createTextNode(i === names.length - 1 ? " and " : ", "));
      span.appendChild(el("code", { text: n }));
    });
    return span;
  }

  function runnable(item) {
    var ops = (item.detail && item.detail.operation_details) || [];
    return ops.filter(function (o) { return o.user_may_run && o.emits.length; });
  }

  function connectedActions(item, access) {
    var box = el("div", { className: "actions" });
    var name = cardName(item);
    var active = activeConnection(item);
    var flow = active && FLOWS[active.auth];
    if (item.status !== "reconnect_required") {
      runnable(item).forEach(function (o) {
        box.appendChild(button("Run " + o.id, "run", "primary", "Run " + o.id + " on " + name, { operation: o.id }));
      });
    }
    if (item.status === "reconnect_required" && flow) {
      box.appendChild(button("Reconnect", "reconnect", "primary", "Reconnect " + name));
    }
    box.appendChild(button("Validate", "validate", "secondary", "Validate " + name));
    if (item.status !== "reconnect_required" && flow) {
      box.appendChild(button("Reconnect", "reconnect", "secondary", "Reconnect " + name));
    }
    if (access && access.upgrade_available) {
      box.appendChild(button("Upgrade access", "upgrade", "secondary", "Upgrade access of " + name));
    }
    box.appendChild(button("Disconnect", "disconnect", "danger", "Disconnect " + name));
    return box;
  }

  /** A typed-in connection is replaced by typing a new credential (there is no flow to run again). */
  function replaceForm(item) {
    var active = activeConnection(item);
    if (!active || !active.manual_slot_schema || !active.enabled) return null;
    var box = el("details", { className: "typed", "data-testid": "replace-" + active.id }, [
      el("summary", { text: "Replace: " + active.title }),
      credentialForm(item, active),
    ]);
    if (item.status === "reconnect_required") box.setAttribute("open", "");  // the only way back for a typed-in key
    return box;
  }

  function schemasOf(item, operation) {
    var ops = (item.detail && item.detail.operation_details) || [];
    var op = ops.filter(function (o) { return o.id === operation; })[0];
    return op ? op.emits.map(function (e) { return e.schema_name; }) : [];
  }

  /** What the last run did, from its record: the counts the run keeps (totals; no split per schema). */
  function lastRunLine(item, run) {
    var line = el("div", { className: "last-run", "data-testid": "last-run" });
    line.appendChild(el("strong", { text: "Last run: " }));
    line.appendChild(document.createTextNode(run.operation + " " + run.status + " · " + when(run.finished_at ||
      run.queued_at)));
    if (run.status === "failed" || run.status === "stalled") {  // a stalled run says why it stopped short, too
      line.appendChild(el("p", { className: "run-error" }, [errorLine(run.error_code, { title: run.error_message })]));
      return line;
    }
    if (run.status !== "succeeded") return line;
    var schemas = Array.from(new Set(schemasOf(item, run.operation)));
    var counts = el("p", { className: "counts", "data-testid": "last-run-counts" });
    if (schemas.length === 1) {
      counts.appendChild(el("span", { className: "count", "data-schema": schemas[0] }, [
        el("strong", { text: String(run.records_ingested) }), " " + schemas[0] + " records ingested",
      ]));
    } else {
      counts.appendChild(el("span", { className: "count" }, [
        el("strong", { text: String(run.records_ingested) }),
        " records ingested" + (schemas.length ? " into " + schemas.join(", ") : ""),
      ]));
    }
    counts.appendChild(document.createTextNode(" · " + run.records_filtered + " filtered · " +
      run.records_rejected + " rejected"));
    line.appendChild(counts);
    return line;
  }

  /** What is stored now for this integration, per schema (the run record keeps no per-schema split). */
  function recordsLine(item) {
    var line = el("p", { className: "records", "data-testid": "records" }, [el("strong", { text: "Records stored: " })]);
    var body = el("span", { className: "muted", text: "…" });
    line.appendChild(body);
    T.getStoredRecords(item.integrationId).then(function (data) {
      var counts = data.counts || [];
      if (!counts.length) { line.hidden = true; return; }
      body.replaceWith(el("span", {}, counts.map(function (c, i) {
        return el("span", { className: "count", "data-schema": c.schema_name }, [
          i ? " · " : "", c.schema_name + " ", el("strong", { text: String(c.count) }),
        ]);
      })));
    }).catch(function (e) { body.textContent = "could not load (" + e.code + ")"; });
    return line;
  }

  function runsSection(item) {
    var section = el("details", { className: "history", "data-testid": "runs" }, [
      el("summary", { text: "Recent runs" }),
    ]);
    var body = el("div", { className: "muted", text: "Loading…" });
    section.appendChild(body);
    var last = el("div", { "data-testid": "last-run-slot" });
    T.listRuns(item.integrationId, 5).then(function (data) {
      var runs = data.runs || [];
      if (!runs.length) { body.textContent = "No runs yet."; return; }
      last.appendChild(lastRunLine(item, runs[0]));
      var heads = ["Operation", "Status", "Counts", "Error", "Queued"];
      var table = el("table", {}, [el("tr", {}, heads.map(function (h) { return el("th", { text: h }); }))]);
      runs.forEach(function (r) {
        var counts = r.records_ingested + " ingested · " + r.records_filtered + " filtered · " +
          r.records_rejected + " rejected";
        var cells = [
          el("td", { text: r.operation }),
          el("td", {}, [el("span", { className: "pill " + r.status, text: r.status })]),
          el("td", { text: counts }),
          el("td", { className: "err" }, [r.error_code ? errorLine(r.error_code, { title: r.error_message }) : null]),
          el("td", { text: when(r.queued_at) }),
        ];
        cells.forEach(function (td, i) { td.setAttribute("data-label", heads[i]); });
        table.appendChild(el("tr", {}, cells));
      });
      body.replaceWith(table);
    }).catch(function (e) { body.textContent = "Could not load runs (" + e.code + ")."; });
    return [last, section];
  }

  function deliveriesSection(integrationId) {
    var section = el("details", { className: "history", "data-testid": "deliveries" }, [
      el("summary", { text: "Recent webhook deliveries" }),
    ]);
    var body = el("div", { className: "muted", text: "Loading…" });
    section.appendChild(body);
    T.listDeliveries(integrationId, 5).then(function (data) {
      var rows = data.deliveries || [];
      if (!rows.length) { body.textContent = "No webhook deliveries yet."; return; }
      var counts = Object.keys(data.counts || {}).map(function (k) { return k + ": " + data.counts[k]; }).join(" · ");
      var heads = ["Event", "Status", "Attempts", "Error", "Received"];
      var table = el("table", {}, [el("tr", {}, heads.map(function (h) { return el("th", { text: h }); }))]);
      rows.forEach(function (d) {
        var cells = [
          el("td", { text: d.event_type || d.delivery_id }),
          el("td", {}, [el("span", { className: "pill " + d.status, text: d.status })]),
          el("td", { text: String(d.attempts) }),
          el("td", { className: "err" }, [d.error_code ? errorLine(d.error_code, { title: d.error_message }) : null]),
          el("td", { text: when(d.received_at) }),
        ];
        cells.forEach(function (td, i) { td.setAttribute("data-label", heads[i]); });
        table.appendChild(el("tr", {}, cells));
      });
      body.replaceWith(el("div", {}, [el("p", { className: "muted", text: counts }), table]));
    }).catch(function (e) { body.textContent = "Could not load deliveries (" + e.code + ")."; });
    return section;
  }

  function cardHead(item) {
    var d = item.definition;
    return [
      el("div", { className: "card-head" }, [
        el("h2", { text: d.name }),
        item.label ? badge(item.label)
          : el("span", { className: "badge off", "data-testid": "badge", text: "Not connected" }),
      ]),
      el("p", { className: "description", text: d.description }),
      el("p", { className: "meta" }, [
        el("span", { className: "chip", text: MODES[d.mode] || d.mode }),
        canConnect(item) ? el("span", { className: "muted", text: " " + (HINTS[d.onboarding] || "") }) : null,
      ]),
    ];
  }

  function card(item, access) {
    var node = el("article", {
      className: "card",
      "data-definition": item.definitionId,
      "data-name": cardName(item),
      "data-testid": "card-" + item.definitionId,
    }, cardHead(item));
    if (item.integrationId) node.setAttribute("data-integration", item.integrationId);
    if (item.connected) {
      node.appendChild(el("dl", { className: "facts" }, [
        el("dt", { text: "Account" }),
        el("dd", { "data-testid": "account", text: accountText(item.account) || "—" }),
        el("dt", { text: "Access" }),
        el("dd", { "data-testid": "access", text: access && access.tier ? access.tier : "—" }),
        el("dt", { text: "Connected" }),
        el("dd", { text: when(item.integration.connected_at) }),
      ]));
      if (item.integration.status_reason) {
        node.appendChild(el("p", { className: "reason", text: item.integration.status_reason }));
      }
      node.appendChild(connectedActions(item, access));
      var replace = replaceForm(item);
      if (replace) node.appendChild(replace);
    } else {
      node.appendChild(connectArea(item));
    }
    if (item.integrationId) {
      node.appendChild(recordsLine(item));
      runsSection(item).forEach(function (part) { node.appendChild(part); });
      node.appendChild(deliveriesSection(item.integrationId));
    }
    return node;
  }

  function disabledCard(item) {
    var d = item.definition;
    var names = d.missing_config || [];
    return el("article", { className: "card disabled", "data-testid": "card-" + d.id, "data-definition": d.id }, [
      el("div", { className: "card-head" }, [
        el("h2", { text: d.name }),
        el("span", { className: "badge off", "data-testid": "badge", text: "Not enabled" }),
      ]),
      el("p", { className: "description", text: d.description }),
      el("p", { className: "enable-with", "data-testid": "enable-with" }, names.length
        ? ["To enable it, the server operator sets ", varList(names), " and restarts Tether."]
        : ["The server operator has not enabled it."]),
    ]);
  }

  async function load() {
    loadError.hidden = true;
    loading.hidden = false;
    try {
      var items = await T.listIntegrations({ includeDisabled: true, details: true });
      var enabled = items.filter(function (item) { return item.definition.enabled; });
      var disabled = items.filter(function (item) { return !item.definition.enabled; });
      var accesses = await Promise.all(enabled.map(function (item) {
        return item.connected ? T.getAccess(item.integrationId).catch(function () { return null; }) : null;
      }));
      cards.replaceChildren.apply(cards, enabled.map(function (item, i) { return card(item, accesses[i]); }));
      if (!enabled.length) cards.appendChild(el("p", { className: "muted", text: "No integrations are enabled." }));
      disabledCards.replaceChildren.apply(disabledCards, disabled.map(disabledCard));
      disabledSection.hidden = !disabled.length;
    } catch (e) {
      document.getElementById("load-error-detail").textContent = T.errorText(e.code, e.message) + " (" + e.code + ")";
      loadError.hidden = false;
      cards.replaceChildren();
      disabledSection.hidden = true;
    } finally {
      loading.hidden = true;
    }
  }

  function confirmDisconnect(name, note) {
    return new Promise(function (resolve) {
      dialog.querySelector("[data-name]").textContent = name;
      dialog.querySelector("[data-note]").textContent = note || "";
      dialog.querySelector("[data-testid=confirm-disconnect]").setAttribute("aria-label", "Confirm: disconnect " + name);
      dialog.returnValue = "";
      dialog.addEventListener("close", function onClose() {
        dialog.removeEventListener("close", onClose);
        resolve(dialog.returnValue === "confirm");
      });
      dialog.showModal();
    });
  }

  async function runFrom(node, target) {
    var operation = target.getAttribute("data-operation");
    var name = node.getAttribute("data-name");
    var integrationId = node.getAttribute("data-integration");
    toast(operation + " on " + name + " started…");
    var run = await T.runOperation(integrationId, operation, {});
    if (run.status === "succeeded") {
      toast(operation + " on " + name + ": " + run.records_ingested + " records ingested.", "ok");
    } else if (run.status === "failed" || run.status === "stalled") {
      toast(operation + " on " + name + " " + run.status + ": " + T.errorText(run.error_code) + " (" + run.error_code + ")", "bad");
    } else {
      toast(operation + " on " + name + " is " + run.status + ".");
    }
    await load();
  }

  cards.addEventListener("click", async function (event) {
    var target = event.target.closest("button[data-action]");
    if (!target) return;
    var node = target.closest(".card");
    var id = node.getAttribute("data-definition");
    var name = node.querySelector("h2").textContent;
    var action = target.getAttribute("data-action");
    var returnUrl = cards.getAttribute("data-return-base") + "/integrations/" + encodeURIComponent(id) + "/callback";
    var connection = target.getAttribute("data-connection") || undefined;
    target.disabled = true;
    try {
      if (action === "connect") {
        await T.beginIntegrationConnect(id, { returnUrl: returnUrl, connection: connection });
      } else if (action === "reconnect") await T.beginIntegrationReconnect(id, { returnUrl: returnUrl });
      else if (action === "upgrade") await T.beginIntegrationUpgrade(id, { returnUrl: returnUrl });
      else if (action === "run") await runFrom(node, target);
      else if (action === "validate") {
        var result = await T.validateIntegration(id);
        toast(name + ": " + (result.isValid ? "the connection is valid." : (result.label || "not valid") + "."),
          result.isValid ? "ok" : "bad");
        await load();
      } else if (action === "disconnect") {
        if (!(await confirmDisconnect(node.getAttribute("data-name") || name))) return;
        var done = await T.disconnectIntegration(id);
        toast(name + " disconnected." + (done.note ? " " + done.note : ""), "ok");
        await load();
      }
    } catch (e) {
      toast(name + ": " + T.errorText(e.code, e.message) + " (" + e.code + ")", "bad");
    } finally {
      target.disabled = false;
    }
  });

  document.getElementById("refresh").addEventListener("click", load);
  document.getElementById("retry").addEventListener("click", load);
  load();
})();
