// The side-by-side peer of Tessera's load benchmark: panva's certified oidc-provider, configured to
// answer the requests the bench sends Tessera the way Tessera does, for every scenario it can serve:
// client_credentials (with and without DPoP), the OpenID Connect code flow of a signed-in user with
// RS256 and ES256 ID tokens, PAR followed by /authorize, userinfo, device-grant polling and dynamic
// registration with an initial access token. Access tokens for the API are ES256 JWTs, 600 s.
//
//   node server.mjs PORT CONFIG_JSON
//
// CONFIG_JSON (written by tests/load/bench.py): {"partner": {"client_id", "client_secret"},
// "relying_parties": [{"client_id", "client_secret", "alg"}], "web": {"client_id", "client_secret"},
// "device": {"client_id"}, "redirect_uri", "initial_access_token", "account"}.
//
// Listens on 127.0.0.1:PORT, issuer http://127.0.0.1:PORT, with Tessera's paths (/oauth2/token,
// /oauth2/authorize, ...). /interaction/UID signs the configured account in and grants what the
// client asked for at once: the bench's browser signs in once per client, then replays its cookie,
// as it does with Tessera. Prints "ready" once listening; exits on SIGTERM / SIGINT.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

// Koa reads NODE_ENV when the app is constructed; keep the peer honest about running "as production".
process.env.NODE_ENV ??= 'production';

const { default: Provider, errors } = await import('oidc-provider');

const [portArg, configPath] = process.argv.slice(2);
const port = Number.parseInt(portArg, 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535 || !configPath) {
  process.stderr.write('usage: node server.mjs PORT CONFIG_JSON\n');
  process.exit(2);
}
const config = JSON.parse(readFileSync(configPath, 'utf8'));

const issuer = `http://127.0.0.1:${port}`;
const audience = `${issuer}/api`;
const API_SCOPES = 'warehouse:stats photos:read';
const ACCESS_TOKEN_TTL = 600; // Tessera's default TESSERA_ACCESS_TOKEN_TTL

// Fresh signing keys per start, like the baselines in tests/load/baselines.py: EC P-256 for the
// access tokens and ES256 ID tokens, RSA 2048 for RS256 ID tokens.
function signingKey(type, options, kid, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}
const keys = [
  signingKey('ec', { namedCurve: 'P-256' }, 'peer-es256', 'ES256'),
  signingKey('rsa', { modulusLength: 2048 }, 'peer-rs256', 'RS256'),
];

// Everything in memory, the fastest store there is (Tessera keeps the same state in Redis and
// PostgreSQL): sessions, grants, codes, PAR requests, device codes, registered clients, DPoP jti.
const stores = new Map(); // name -> Map(id -> { payload, expires }); "name:uid", ... -> Map(key -> id)
function storeOf(name) {
  if (!stores.has(name)) stores.set(name, new Map());
  return stores.get(name);
}

class MemoryAdapter {
  constructor(name) {
    this.name = name;
    this.store = storeOf(name);
  }

  async upsert(id, payload, expiresIn) {
    const expires = expiresIn ? Date.now() + expiresIn * 1000 : undefined;
    this.store.set(id, { payload, expires });
    if (payload.uid) storeOf(`${this.name}:uid`).set(payload.uid, id);
    if (payload.userCode) storeOf(`${this.name}:userCode`).set(payload.userCode, id);
    if (payload.grantId) {
      const byGrant = storeOf(`${this.name}:grant`);
      byGrant.set(payload.grantId, [...(byGrant.get(payload.grantId) ?? []), id]);
    }
  }

  async find(id) {
    const found = this.store.get(id);
    if (!found) return undefined;
    if (found.expires !== undefined && found.expires < Date.now()) {
      this.store.delete(id);
      return undefined;
    }
    return found.payload;
  }

  async findByUid(uid) {
    const id = storeOf(`${this.name}:uid`).get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = storeOf(`${this.name}:userCode`).get(userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const found = this.store.get(id);
    if (found) found.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    this.store.delete(id);
  }

  async revokeByGrantId(grantId) {
    for (const id of storeOf(`${this.name}:grant`).get(grantId) ?? []) this.store.delete(id);
  }
}

const resourceServerInfo = Object.freeze({
  scope: API_SCOPES,
  audience,
  accessTokenTTL: ACCESS_TOKEN_TTL,
  accessTokenFormat: 'jwt',
  jwt: { sign: { alg: 'ES256' } },
});
const apiScopes = new Set(API_SCOPES.split(' '));

const confidential = (client, extra) => ({
  client_id: client.client_id,
  client_secret: client.client_secret,
  token_endpoint_auth_method: 'client_secret_basic',
  ...extra,
});

const provider = new Provider(issuer, {
  adapter: MemoryAdapter,
  clients: [
    confidential(config.partner, {
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: API_SCOPES,
    }),
    ...config.relying_parties.map((rp) => confidential(rp, {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [config.redirect_uri],
      id_token_signed_response_alg: rp.alg,
      scope: `openid profile ${API_SCOPES}`,
    })),
    confidential(config.web, {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [config.redirect_uri],
      scope: API_SCOPES,
    }),
    {
      client_id: config.device.client_id,
      token_endpoint_auth_method: 'none',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code'],
      response_types: [],
      redirect_uris: [],
      scope: API_SCOPES,
    },
  ],
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  jwks: { keys },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'profile', 'offline_access', ...apiScopes],
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'] },
  findAccount: async (_ctx, accountId) => ({
    accountId,
    async claims() {
      return { sub: accountId, name: 'Bench User', preferred_username: 'bench' };
    },
  }),
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  routes: {
    authorization: '/oauth2/authorize',
    token: '/oauth2/token',
    userinfo: '/oauth2/userinfo',
    pushed_authorization_request: '/oauth2/par',
    device_authorization: '/oauth2/device_authorization',
    registration: '/oauth2/register',
    jwks: '/oauth2/jwks',
  },
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    ClientCredentials: ACCESS_TOKEN_TTL,
    DeviceCode: 600,
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    dPoP: { enabled: true },
    pushedAuthorizationRequests: { enabled: true },
    deviceFlow: { enabled: true },
    userinfo: { enabled: true },
    registration: { enabled: true, initialAccessToken: config.initial_access_token },
    resourceIndicators: {
      enabled: true,
      // no `resource` parameter: the API, when an API scope is asked for (an access token for the
      // API, a JWT, as Tessera issues); otherwise none (an opaque token for userinfo)
      defaultResource: async (ctx) => {
        const scope = String(ctx.oidc.params?.scope ?? '').split(' ');
        return scope.some((s) => apiScopes.has(s)) || ctx.oidc.params?.grant_type === 'client_credentials'
          ? audience
          : undefined;
      },
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        if (resourceIndicator === audience) return resourceServerInfo;
        throw new errors.InvalidTarget();
      },
      useGrantedResource: async () => true,
    },
  },
});

// The bench's signed-in user: every interaction signs her in and grants what was asked.
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { params } = details;
  const grant = new provider.Grant({ accountId: config.account, clientId: params.client_id });
  const missing = details.prompt.details;
  grant.addOIDCScope(['openid profile offline_access', ...(missing.missingOIDCScope ?? [])].join(' '));
  grant.addResourceScope(audience, API_SCOPES);
  for (const [resource, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(resource, scopes.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId: config.account }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
}

const callback = provider.callback();
const server = createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((error) => {
      res.statusCode = 500;
      res.end(String(error));
    });
    return;
  }
  callback(req, res);
});
server.keepAliveTimeout = 65_000;

function shutdown() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);

server.listen(port, '127.0.0.1', () => {
  process.stdout.write('ready\n');
});
