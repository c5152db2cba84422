-- The SSO flow of a user already signed in, consent on record: GET /oauth2/authorize answers 302
-- with a code; the code is redeemed at /oauth2/token with the PKCE verifier. A flow is complete when
-- the token response is 200. Any connection redeems any code of its thread.
--   authorize=<path and query> cookie=<Cookie header> redirect_uri=<urlencoded> verifier=<PKCE>
--   auth=<Basic ...>
dofile("common.lua")

local codes, authorize, token_headers = {}, nil, {}

function init(args)
  parse_args(args)
  authorize = wrk.format("GET", ARGS.authorize, { ["Cookie"] = ARGS.cookie })
  token_headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = ARGS.auth }
end

function request()
  local code = table.remove(codes)
  if code == nil then return authorize end
  return wrk.format("POST", "/oauth2/token", token_headers,
    "grant_type=authorization_code&code=" .. code .. "&redirect_uri=" .. ARGS.redirect_uri ..
    "&code_verifier=" .. ARGS.verifier)
end

function response(status, headers, body)
  if status == 302 then
    local code = (headers["Location"] or headers["location"] or ""):match("[?&]code=([^&]+)")
    if code then
      table.insert(codes, code)
      track(status)
    else
      track("302-without-code")  -- to /login (session lost) or an error redirect: unexpected
    end
    return
  end
  track(status)
  if status == 200 then flows = flows + 1 end
end
