/*
 * tether.js — Tether's browser helper for host apps. No build step: load it with
 *   <script src="https://tether.example/static/tether.js"></script>
 * and use window.Tether: listIntegrations, getIntegrationStatus, beginIntegrationConnect,
 * beginIntegrationUpgrade, disconnectIntegration, submitCredential, runOperation, errorText (plus
 * validate/reconnect/runs/deliveries for the page).
 *
 * It only calls Tether's JSON API (/v1/...) and returns status, or redirects the browser into the provider's
 * consent. It never sees a provider token: no endpoint it calls returns one to a user principal.
 *
 * Authentication: by default the browser's session cookie (Tether's development login), with the header
 * X-Tether-CSRF: 1 that state-changing cookie requests need. A host app configures instead
 *   Tether.configure({ baseUrl: "https://tether.example", principal: async () => signedHeaderFromMyServer() })
 * where principal() returns a short-lived X-Tether-Principal value minted by the host app's server.
 */
(function (root) {
  "use strict";

  var config = { baseUrl: "", principal: null, credentials: "same-origin" };

  function configure(options) {
    Object.keys(options || {}).forEach(function (k) { config[k] = options[k]; });
    config.baseUrl = (config.baseUrl || "").replace(/\/+$/, "");
    return config;
  }

  function TetherError(status, code, message, body) {
    var error = new Error(message || code || ("HTTP " + status));
    error.name = "TetherError";
    error.status = status;
    error.code = code || "http_" + status;
    // credential_invalid: [{field, message}] to show beside each field; a failed inline run: the run record.
    error.fields = (body && body.error && body.error.fields) || [];
    error.run = (body && body.run) || null;
    return error;
  }

  /*
   * The stable error codes (docs/errors.md) a person meets on this page, in words a person understands. Show the
   * sentence, and the code beside it in small text (support and the docs search by code).
   */
  var ERROR_TEXT = {
    unauthorized: "The provider refused the stored credential. Reconnect, or enter a new credential.",
    reconnect_required: "The provider no longer accepts this connection. Reconnect to restore it.",
    rate_limited: "The provider asked Tether to slow down. Try again in a few minutes.",
    provider_error: "The provider answered with an error. Try again later; if it keeps failing, check the " +
      "integration's settings at the provider.",
    provider_unavailable: "The provider could not be reached or is having trouble. Try again later.",
    network_error: "The provider could not be reached (network problem). Try again later.",
    egress_refused: "Tether refused to call this address: only public HTTPS addresses are allowed.",
    response_too_large: "The provider sent more data in one answer than Tether accepts.",
    time_limit_exceeded: "The run took longer than its time limit and was stopped.",
    worker_lost: "The worker running this stopped unexpectedly. It is retried if retries remain.",
    no_progress: "The run made no progress for too long and was stopped. It is retried if retries remain.",
    operation_error: "Something unexpected went wrong in the integration's code. The server log has details.",
    operation_unknown: "This operation no longer exists in the integration's definition.",
    run_cancelled: "The run was cancelled.",
    enqueue_failed: "The run could not be queued. Try again in a moment.",
    integration_not_connected: "This integration is not connected. Connect it first.",
    integration_disconnected: "The integration was disconnected before this was processed.",
    handler_error: "Processing this webhook event failed in the integration's code. The server log has details.",
    too_many_attempts: "Processing this webhook event kept failing, so Tether gave up after 5 attempts.",
    webhook_unknown: "The integration no longer handles this kind of webhook event.",
    upgrade_required: "This needs write access. Use Upgrade access first.",
    operation_not_allowed: "Only the host app's server may start this operation.",
    pagination_loop: "The provider's paging went in a loop, so the run stopped.",
    pagination_limit: "The provider returned more pages than Tether reads in one run.",
    pagination_short: "The provider listed fewer records than it said it has, so the run stopped instead of " +
      "taking the listing as complete.",
    governor_unavailable: "Tether could not check the provider's rate budget, so the run will be tried again.",
    invalid_integration_filter: "The integration's filter expression is not valid.",
    credential_invalid: "Some fields are missing or not in the expected format.",
    credential_rejected: "The provider refused this credential. Check it and try again.",
    account_mismatch: "This credential belongs to a different account than the connected one. Disconnect first " +
      "to switch accounts.",
    provider_not_enabled: "This integration is not enabled on this server.",
    connection_required: "This integration cannot be connected this way.",
    return_url_refused: "This page's address is not allowed as a return address. Ask the operator.",
    unknown_product: "This connection has no such product to add.",
    setup_failed: "Setting up the connection failed; nothing was changed.",
    oauth_failed: "The provider did not grant access (consent denied or cancelled).",
    missing_flow_state: "This browser did not start the connection, or it took too long. Start it again.",
    session_mismatch: "The connection was started in another browser session. Start it again.",
    invalid_state: "This link was already used or has expired. Start the connection again.",
    invalid_grant: "The provider refused the sign-in grant. Start the connection again.",
    revocation_failed: "The provider did not confirm the disconnect; nothing was deleted. Try again.",
    invalid_transition: "This change is not possible in the integration's current state.",
    decrypt_failed: "The stored credential could not be read. Connect again.",
    admin_email_missing: "The service account has no administrator to act for. Add an admin email.",
    customer_id_missing: "Neither a customer ID nor a domain is set for this integration.",
    not_enabled: "The service is not enabled in this account and region.",
    tenant_mismatch: "The consent came from another directory than the one the app is for.",
    unauthenticated: "You are not signed in, or your session expired. Sign in again.",
    forbidden: "You are not allowed to do this.",
    not_found: "This no longer exists. Refresh the page.",
    invalid_input: "Some input is not valid.",
    internal_error: "Something went wrong on the server. Try again; the server log has details.",
  };

  /** The sentence for a stable error code; ``fallback`` (or a generic one) for a code the table does not know. */
  function errorText(code, fallback) {
    return ERROR_TEXT[code] || fallback || "Something went wrong.";
  }

  async function request(method, path, body) {
    var headers = { "Accept": "application/json", "X-Tether-CSRF": "1" };
    if (config.principal) headers["X-Tether-Principal"] = await config.principal();
    var init = { method: method, headers: headers, credentials: config.credentials };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    var response;
    try {
      response = await fetch(config.baseUrl + path, init);
    } catch (e) {
      throw TetherError(0, "network_error", "Tether could not be reached");
    }
    if (response.status === 204) return null;
    var data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      var err = (data && data.error) || {};
      throw TetherError(response.status, err.code, err.message, data);
    }
    return data;
  }

  function enc(value) { return encodeURIComponent(value); }

  /** What the status badge says: Valid / Invalid / Unknown / Reconnect required, or null when not connected. */
  function statusLabel(integration) {
    if (!integration || !integration.connection) return null;
    if (integration.status === "reconnect_required") return "Reconnect required";
    if (integration.status === "disconnected" || integration.status === "pending") return null;
    var health = integration.health || "unknown";
    return health.charAt(0).toUpperCase() + health.slice(1);
  }

  function summarize(definition, integration) {
    var label = statusLabel(integration);
    return {
      definition: definition,
      definitionId: definition.id,
      integration: integration || null,
      integrationId: integration ? integration.id : null,
      connected: label !== null,
      status: integration ? integration.status : "not_configured",
      health: integration ? integration.health : null,
      label: label,
      account: integration ? integration.account || {} : {},
    };
  }

  /**
   * Every enabled definition, each with the caller's integration of it (or null). With {includeDisabled: true}
   * disabled ones too (their ``definition.missing_config`` names the variables that enable them), and with
   * {details: true} each enabled one's catalog detail as ``detail`` (its connections and operations).
   */
  async function listIntegrations(options) {
    options = options || {};
    var results = await Promise.all([request("GET", "/v1/definitions"), request("GET", "/v1/integrations")]);
    var byDefinition = {};
    results[1].forEach(function (row) { byDefinition[row.definition_id] = row; });
    var items = results[0].filter(function (d) { return d.enabled || options.includeDisabled; }).map(function (d) {
      return summarize(d, byDefinition[d.id]);
    });
    if (options.details) {
      await Promise.all(items.map(async function (item) {
        item.detail = item.definition.enabled ? await getDefinition(item.definitionId) : null;
      }));
    }
    return items;
  }

  function getDefinition(definitionId) {
    return request("GET", "/v1/definitions/" + enc(definitionId));
  }

  async function getIntegrationStatus(definitionId) {
    var list = await listIntegrations();
    var found = list.filter(function (item) { return item.definitionId === definitionId; })[0];
    if (!found) throw TetherError(404, "not_found", "no enabled definition " + definitionId);
    return found;
  }

  function defaultReturnUrl(definitionId) {
    var base = config.baseUrl || root.location.origin;
    return base + "/integrations/" + enc(definitionId) + "/callback";
  }

  /** The connection with a browser flow to use when the integration has none yet (definitions may have several). */
  async function flowConnection(definitionId) {
    var detail = await request("GET", "/v1/definitions/" + enc(definitionId));
    var flows = (detail.connection_details || []).filter(function (c) {
      return c.auth === "oauth2" || c.auth === "app_install";
    });
    return flows.length ? flows[0].id : null;
  }

  async function ensureIntegration(definitionId) {
    return request("POST", "/v1/integrations", { definition_id: definitionId });
  }

  async function begin(action, definitionId, options) {
    options = options || {};
    var integration = await ensureIntegration(definitionId);
    var connection = options.connection || integration.connection || (await flowConnection(definitionId));
    var body = { return_url: options.returnUrl || defaultReturnUrl(definitionId) };
    if (connection) body.connection = connection;
    var result = await request("POST", "/v1/integrations/" + enc(integration.id) + "/" + action, body);
    if (options.redirect !== false) root.location.assign(result.redirect_url);
    return result.redirect_url;
  }

  /** Start the provider's consent (creates the integration when needed); redirects unless {redirect: false}. */
  function beginIntegrationConnect(definitionId, options) { return begin("connect", definitionId, options); }
  /** Ask for the connection's upgrade scopes (read → write access). */
  function beginIntegrationUpgrade(definitionId, options) { return begin("upgrade", definitionId, options); }
  /** Run the active connection's flow again (after "reconnect required"). */
  function beginIntegrationReconnect(definitionId, options) { return begin("reconnect", definitionId, options); }

  async function integrationOf(definitionId) {
    var status = await getIntegrationStatus(definitionId);
    if (!status.integrationId) throw TetherError(404, "not_found", definitionId + " is not configured");
    return status.integrationId;
  }

  /** Disconnect (revoking at the provider when it allows); the record and its history stay. */
  async function disconnectIntegration(definitionId) {
    var id = await integrationOf(definitionId);
    var result = await request("POST", "/v1/integrations/" + enc(id) + "/disconnect");
    return { integration: result.integration, note: result.note };
  }

  async function validateIntegration(definitionId) {
    var id = await integrationOf(definitionId);
    var result = await request("POST", "/v1/integrations/" + enc(id) + "/validate");
    return { isValid: result.is_valid, integration: result.integration, label: statusLabel(result.integration) };
  }

  /**
   * Connect with a typed-in credential: ``values`` are the fields of the slot's ``manual_slot_schema``. A 422
   * ``credential_invalid`` error carries ``fields`` ([{field, message}]) to show beside each field.
   */
  async function submitCredential(definitionId, slot, values) {
    var integration = await ensureIntegration(definitionId);
    return request("POST", "/v1/integrations/" + enc(integration.id) + "/credentials/" + enc(slot), values);
  }

  var FINISHED = { succeeded: true, failed: true, cancelled: true, stalled: true };

  /**
   * Start an operation; resolves with the finished run (an inline run at once, a queued one polled until it ends
   * or ``options.waitMs`` passes, then as it stands). A run that failed resolves too: look at ``run.status``.
   */
  async function runOperation(integrationId, operation, config, options) {
    options = options || {};
    var path = "/v1/integrations/" + enc(integrationId) + "/operations/" + enc(operation);
    var started;
    try {
      started = await request("POST", path, { config: config || {} });
    } catch (e) {
      if (e.run) return e.run;  // an inline run that failed: its record says how
      throw e;
    }
    if (started.run) return started.run;
    var deadline = Date.now() + (options.waitMs || 60000);
    for (;;) {
      var run = await request("GET", "/v1/runs/" + enc(started.run_id));
      if (FINISHED[run.status] || Date.now() > deadline) return run;
      await new Promise(function (resolve) { setTimeout(resolve, options.pollMs || 1000); });
    }
  }

  function listRuns(integrationId, limit) {
    return request("GET", "/v1/integrations/" + enc(integrationId) + "/runs?limit=" + (limit || 5));
  }
  function listDeliveries(integrationId, limit) {
    return request("GET", "/v1/integrations/" + enc(integrationId) + "/deliveries?limit=" + (limit || 5));
  }
  function getIntegration(integrationId) {
    return request("GET", "/v1/integrations/" + enc(integrationId));
  }
  /** Rows stored per schema the definition emits, for this integration: {counts: [{schema_name, count}]}. */
  function getStoredRecords(integrationId) {
    return request("GET", "/web/integrations/" + enc(integrationId) + "/records");
  }
  function getAccess(integrationId) {
    return request("GET", "/web/integrations/" + enc(integrationId) + "/access");
  }

  root.Tether = {
    configure: configure,
    listIntegrations: listIntegrations,
    getIntegrationStatus: getIntegrationStatus,
    beginIntegrationConnect: beginIntegrationConnect,
    beginIntegrationUpgrade: beginIntegrationUpgrade,
    beginIntegrationReconnect: beginIntegrationReconnect,
    disconnectIntegration: disconnectIntegration,
    validateIntegration: validateIntegration,
    listRuns: listRuns,
    listDeliveries: listDeliveries,
    getIntegration: getIntegration,
    getAccess: getAccess,
    getStoredRecords: getStoredRecords,
    getDefinition: getDefinition,
    submitCredential: submitCredential,
    runOperation: runOperation,
    errorText: errorText,
    statusLabel: statusLabel,
  };
})(window);
