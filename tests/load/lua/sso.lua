-- The SSO flow of a user already signed in, consent on record: GET /oauth2/authorize answers 302
-- (oidc-provider: 303) with a code; the code is redeemed at the token endpoint with the PKCE
-- verifier. A flow is complete when the token response is 200. Any connection redeems any code of
-- its thread.
--   authorize=<path and query> cookie=<Cookie header> redirect_uri=<urlencoded> verifier=<PKCE>
--   auth=<Basic ...> [token_path=/oauth2/token]
dofile("common.lua")

local codes, authorize, token_headers, token_path = {}, nil, {}, "/oauth2/token"

function init(args)
  parse_args(args)
  authorize = wrk.format("GET", ARGS.authorize, { ["Cookie"] = ARGS.cookie })
  token_headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = ARGS.auth }
  token_path = ARGS.token_path or token_path
end

function request()
  local code = table.remove(codes)
  if code == nil then return authorize end
  return wrk.format("POST", token_path, token_headers,
    "grant_type=authorization_code&code=" .. code .. "&redirect_uri=" .. ARGS.redirect_uri ..
    "&code_verifier=" .. ARGS.verifier)
end

function response(status, headers, body)
  if status == 302 or status == 303 then
    track_redirect(status, headers, codes)
    return
  end
  track(status)
  if status == 200 then flows = flows + 1 end
end
