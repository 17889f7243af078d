// panva oidc-provider on 127.0.0.1 for Tether's OAuth tests: a real, OpenID-certified authorization server.
//
// Usage: node panva.mjs [PORT]   (or env PANVA_PORT; 0 or unset picks a free port)
// Env:   PANVA_CLIENTS           JSON array of oidc-provider client metadata (client_id, client_secret,
//                                redirect_uris, grant_types, scope, token_endpoint_auth_method, ...)
//        PANVA_ACCESS_TOKEN_TTL  seconds an access token lives (default 60)
//        PANVA_EXTRA_SCOPES      space-separated scopes to support besides the defaults (a provider's own
//                                scope names, such as Google's https://www.googleapis.com/auth/... URLs)
// Prints "ready http://127.0.0.1:PORT" on stdout once it accepts connections, then one line
// "event grant.success|grant.error GRANT_TYPE" per token request, and "event access_token.destroyed|
// refresh_token.destroyed ACCOUNT" per revoked token. Dev interactions (any login,
// any password) and dev signing keys: for tests only, never a real deployment.
import http from 'node:http';

import Provider from 'oidc-provider';

const port = Number(process.argv[2] ?? process.env.PANVA_PORT ?? 0);
const accessTtl = Number(process.env.PANVA_ACCESS_TOKEN_TTL ?? 60);
const clients = JSON.parse(process.env.PANVA_CLIENTS ?? '[]');
const extraScopes = (process.env.PANVA_EXTRA_SCOPES ?? '').split(' ').filter(Boolean);

const configuration = {
  clients,
  cookies: { keys: ['tether-test-cookie-key'] },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    clientCredentials: { enabled: true },
  },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'api:read', 'api:write', ...extraScopes],
  issueRefreshToken: async () => true,
  rotateRefreshToken: true,
  ttl: {
    AccessToken: accessTtl,
    ClientCredentials: accessTtl,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
    RefreshToken: 3600,
  },
};

const server = http.createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration);
  // One stdout line per token-endpoint outcome, so tests can count the requests that reached the server.
  provider.on('grant.success', (ctx) => console.log(`event grant.success ${ctx.oidc.params.grant_type}`));
  provider.on('grant.error', (ctx) => console.log(`event grant.error ${ctx.oidc.params?.grant_type ?? '-'}`));
  // And one per token destroyed (revoked), naming whose it was, so tests can prove a grant was revoked.
  for (const kind of ['access_token', 'refresh_token']) {
    provider.on(`${kind}.destroyed`, (token) => console.log(`event ${kind}.destroyed ${token.accountId ?? '-'}`));
  }
  server.on('request', provider.callback());
  console.log(`ready ${issuer}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
