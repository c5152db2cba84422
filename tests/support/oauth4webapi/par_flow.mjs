// The code flow with a pushed authorization request (RFC 9126) and PKCE, as panva/oauth4webapi runs
// it, against the authorization server at ISSUER (tests/integration/test_par.py drives it):
//
//   node par_flow.mjs ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI SCOPE
//
// 1. discovery, then the push: prints {"authorization_url", "request_uri", "expires_in"} on one line;
// 2. reads the URL the browser was sent back to (one line on stdin), then redeems the code:
//    prints the token response on one line.
// Any error: its message on stderr, exit status 1.
import * as readline from 'node:readline'
import * as oauth from 'oauth4webapi'

const [issuer, clientId, clientSecret, redirectUri, scope] = process.argv.slice(2)
const insecure = { [oauth.allowInsecureRequests]: true } // the tests' issuer is http://127.0.0.1

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]()
const say = (value) => process.stdout.write(JSON.stringify(value) + '\n')

try {
  const issuerUrl = new URL(issuer)
  const as = await oauth.processDiscoveryResponse(issuerUrl, await oauth.discoveryRequest(issuerUrl, insecure))
  const client = { client_id: clientId }
  const clientAuth = oauth.ClientSecretBasic(clientSecret)

  const verifier = oauth.generateRandomCodeVerifier()
  const state = oauth.generateRandomState()
  const parameters = {
    redirect_uri: redirectUri,
    response_type: 'code',
    scope,
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  }
  const pushed = await oauth.processPushedAuthorizationResponse(
    as,
    client,
    await oauth.pushedAuthorizationRequest(as, client, clientAuth, parameters, insecure),
  )
  const authorizationUrl = new URL(as.authorization_endpoint)
  authorizationUrl.searchParams.set('client_id', clientId)
  authorizationUrl.searchParams.set('request_uri', pushed.request_uri)
  say({ authorization_url: authorizationUrl.href, request_uri: pushed.request_uri, expires_in: pushed.expires_in })

  const { value: callback } = await lines.next()
  const answer = oauth.validateAuthResponse(as, client, new URL(callback.trim()), state)
  const tokens = await oauth.processAuthorizationCodeResponse(
    as,
    client,
    await oauth.authorizationCodeGrantRequest(as, client, clientAuth, answer, redirectUri, verifier, insecure),
  )
  say(tokens)
  process.exit(0)
} catch (error) {
  process.stderr.write(`${error?.name}: ${error?.message}${error?.cause ? ` (${JSON.stringify(error.cause)})` : ''}\n`)
  process.exit(1)
}
