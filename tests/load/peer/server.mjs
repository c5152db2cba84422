// A side-by-side peer for Tessera's token-endpoint load benchmark: panva's certified
// oidc-provider, configured to answer the same request the same way Tessera does
// (client_credentials, client_secret_basic, ES256-signed JWT access token, 600 s TTL).
//
//   node server.mjs PORT CLIENT_ID CLIENT_SECRET
//
// Listens on 127.0.0.1:PORT, issuer http://127.0.0.1:PORT, token endpoint /oauth2/token.
// Prints "ready" on stdout once listening; exits on SIGTERM / SIGINT.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

// Koa reads NODE_ENV when the app is constructed; in koa 3 / oidc-provider 9 it changes no
// code path on the token endpoint, but keep the peer honest about running "as production".
process.env.NODE_ENV ??= 'production';

const { default: Provider, errors } = await import('oidc-provider');

const [portArg, clientId, clientSecret] = process.argv.slice(2);
const port = Number.parseInt(portArg, 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535 || !clientId || !clientSecret) {
  process.stderr.write('usage: node server.mjs PORT CLIENT_ID CLIENT_SECRET\n');
  process.exit(2);
}

const issuer = `http://127.0.0.1:${port}`;
const audience = `${issuer}/api`;
const SCOPE = 'warehouse:stats';
const ACCESS_TOKEN_TTL = 600; // Tessera's default TESSERA_ACCESS_TOKEN_TTL

// A fresh EC P-256 signing key per start, like the baselines in tests/load/baselines.py.
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingJwk = {
  ...privateKey.export({ format: 'jwk' }),
  kid: 'peer-es256',
  alg: 'ES256',
  use: 'sig',
};

// Nothing on the benchmarked path is stateful: the client is static (held in memory by the
// provider) and JWT access tokens are not persisted. This adapter answers "not found" to
// look-ups and refuses writes, so a stray write would surface as a 5xx in the bench instead
// of silently growing an in-memory store. (It also replaces the development-only
// MemoryAdapter and its start-up warning.)
class StatelessAdapter {
  constructor(name) {
    this.name = name;
  }

  async find() { return undefined; }

  async findByUid() { return undefined; }

  async findByUserCode() { return undefined; }

  async upsert() { throw new Error(`peer stores nothing (tried to store a ${this.name})`); }

  async consume() { throw new Error(`peer stores nothing (tried to consume a ${this.name})`); }

  async destroy() {}

  async revokeByGrantId() {}
}

const resourceServerInfo = Object.freeze({
  scope: SCOPE,
  audience,
  accessTokenTTL: ACCESS_TOKEN_TTL,
  accessTokenFormat: 'jwt',
  jwt: { sign: { alg: 'ES256' } },
});

const provider = new Provider(issuer, {
  adapter: StatelessAdapter,
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: SCOPE,
    },
  ],
  clientDefaults: {
    // Only an EC key is in the keystore, so don't default anything to RS256.
    id_token_signed_response_alg: 'ES256',
  },
  jwks: { keys: [signingJwk] },
  // Not used by the token endpoint, but set so the provider doesn't fall back to defaults.
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: [SCOPE],
  routes: { token: '/oauth2/token' },
  ttl: {
    ClientCredentials: ACCESS_TOKEN_TTL,
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // No `resource` parameter on the request -> this resource server is used.
      defaultResource: async () => audience,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        if (resourceIndicator === audience) return resourceServerInfo;
        throw new errors.InvalidTarget();
      },
      useGrantedResource: async () => true,
    },
  },
});

const server = createServer(provider.callback());
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
