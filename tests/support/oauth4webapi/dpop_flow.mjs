// A public client using panva/oauth4webapi's DPoP (RFC 9449) against Tessera and the Photo Warehouse,
// driven by tests/integration/test_rfc9449_client_library.py:
//
//   node dpop_flow.mjs ISSUER CLIENT_ID REDIRECT_URI WAREHOUSE_URL
//
// It prints one JSON object per line: first {"authorize": {...}}, the parameters of the authorization
// request (with PKCE and dpop_jkt); it then reads one line, the URL the browser was redirected to,
// and goes on with the library doing everything else: the code exchange with a DPoP proof (retried
// with the server's nonce when asked, as the library does), a call to the warehouse with the bound
// token, a refresh, a refresh attempt with another key, and the same token sent as a bearer token.
// The last line is {"results": {...}}; any failure is {"error": "..."} and exit code 1.
import * as oauth from 'oauth4webapi'
import { createInterface } from 'node:readline'

const [issuerUrl, clientId, redirectUri, warehouseUrl] = process.argv.slice(2)
const insecure = { [oauth.allowInsecureRequests]: true } // the tests' servers listen on plain http on loopback
const say = (value) => process.stdout.write(JSON.stringify(value) + '\n')
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()

let nonceRetries = 0
async function withNonce(request) {
  try {
    return await request()
  } catch (err) {
    if (!oauth.isDPoPNonceError(err)) throw err
    nonceRetries += 1 // the DPoP handle has kept the nonce the server sent: the retry carries it
    return await request()
  }
}

async function refusal(request) {
  try {
    await withNonce(request)
    return null
  } catch (err) {
    return { error: err.error ?? err.code, description: err.error_description ?? err.message }
  }
}

try {
  const issuer = new URL(issuerUrl)
  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
  )
  const client = { client_id: clientId }
  const auth = oauth.None()
  const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256'))
  const verifier = oauth.generateRandomCodeVerifier()
  const state = oauth.generateRandomState()
  say({
    authorize: {
      response_type: 'code',
      client_id: clientId,
      redirect_uri: redirectUri,
      scope: 'photos:read',
      state,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      dpop_jkt: await DPoP.calculateThumbprint(),
    },
  })
  const callback = new URL((await lines.next()).value)
  const params = oauth.validateAuthResponse(as, client, callback, state)

  const tokens = await withNonce(async () =>
    oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(as, client, auth, params, redirectUri, verifier, {
        DPoP,
        ...insecure,
      }),
    ),
  )
  const photos = await oauth.protectedResourceRequest(
    tokens.access_token,
    'GET',
    new URL(`${warehouseUrl}/api/photos`),
    undefined,
    undefined,
    { DPoP, ...insecure },
  )
  const refreshed = await withNonce(async () =>
    oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token, { DPoP, ...insecure }),
    ),
  )
  const thief = oauth.DPoP(client, await oauth.generateKeyPair('ES256'))
  const stolen = await refusal(async () =>
    oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, auth, refreshed.refresh_token, {
        DPoP: thief,
        ...insecure,
      }),
    ),
  )
  const again = await withNonce(async () =>
    oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, auth, refreshed.refresh_token, { DPoP, ...insecure }),
    ),
  )
  let bearer = null
  try {
    await oauth.protectedResourceRequest(
      refreshed.access_token,
      'GET',
      new URL(`${warehouseUrl}/api/photos`),
      undefined,
      undefined,
      insecure,
    )
  } catch (err) {
    bearer = { status: err.status, challenges: err.cause }
  }
  say({
    results: {
      algs: as.dpop_signing_alg_values_supported,
      token_type: tokens.token_type,
      jkt: await DPoP.calculateThumbprint(),
      access_token: tokens.access_token,
      photos_status: photos.status,
      refreshed_token_type: refreshed.token_type,
      refreshed_access_token: refreshed.access_token,
      stolen,
      again_token_type: again.token_type,
      bearer,
      nonce_retries: nonceRetries,
    },
  })
  process.exit(0)
} catch (err) {
  say({ error: `${err.name}: ${err.message} ${JSON.stringify(err.cause ?? null)}` })
  process.exit(1)
}
