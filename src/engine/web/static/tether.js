/*
 * tether.js — Tether's browser helper for host apps. No build step: load it with
 *   <script src="https://tether.example/static/tether.js"></script>
 * and use window.Tether: listIntegrations, getIntegrationStatus, beginIntegrationConnect,
 * beginIntegrationUpgrade, disconnectIntegration (plus validate/reconnect/runs/deliveries for the page).
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

  function TetherError(status, code, message) {
    var error = new Error(message || code || ("HTTP " + status));
    error.name = "TetherError";
    error.status = status;
    error.code = code || "http_" + status;
    return error;
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
      throw TetherError(response.status, err.code, err.message);
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

  /** Every enabled definition, each with the caller's integration of it (or null). */
  async function listIntegrations() {
    var results = await Promise.all([request("GET", "/v1/definitions"), request("GET", "/v1/integrations")]);
    var byDefinition = {};
    results[1].forEach(function (row) { byDefinition[row.definition_id] = row; });
    return results[0].filter(function (d) { return d.enabled; }).map(function (d) {
      return summarize(d, byDefinition[d.id]);
    });
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

  function listRuns(integrationId, limit) {
    return request("GET", "/v1/integrations/" + enc(integrationId) + "/runs?limit=" + (limit || 5));
  }
  function listDeliveries(integrationId, limit) {
    return request("GET", "/v1/integrations/" + enc(integrationId) + "/deliveries?limit=" + (limit || 5));
  }
  function getIntegration(integrationId) {
    return request("GET", "/v1/integrations/" + enc(integrationId));
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
    statusLabel: statusLabel,
  };
})(window);
