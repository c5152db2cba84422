-- A pushed authorization request (RFC 9126) and the browser's /authorize with its request_uri, for a
-- user already signed in, consent on record: POST the request (201 with a request_uri), then GET
-- /oauth2/authorize?client_id=…&request_uri=… with the browser's cookie; a flow is complete when
-- that answers a redirect with a code (302; oidc-provider: 303). The code is not redeemed (sso.lua
-- measures that part).
--   push=<form body, url-encoded> auth=<Basic ...> client_id=<urlencoded> cookie=<Cookie header>
--   [push_path=/oauth2/par] [authorize_path=/oauth2/authorize]
dofile("common.lua")

local pending, push, cookie, authorize_path = {}, nil, nil, "/oauth2/authorize"

function init(args)
  parse_args(args)
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = ARGS.auth }
  push = wrk.format("POST", ARGS.push_path or "/oauth2/par", headers, ARGS.push)
  cookie = { ["Cookie"] = ARGS.cookie }
  authorize_path = ARGS.authorize_path or authorize_path
end

local function escape(text)
  return (text:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function request()
  local request_uri = table.remove(pending)
  if request_uri == nil then return push end
  return wrk.format("GET", authorize_path .. "?client_id=" .. ARGS.client_id .. "&request_uri=" ..
    escape(request_uri), cookie)
end

function response(status, headers, body)
  if status == 201 then
    local request_uri = body:match('"request_uri":%s*"([^"]+)"')
    if request_uri then
      table.insert(pending, request_uri)
      track(status)
    else
      track("201-without-request_uri")
    end
    return
  end
  if status == 302 or status == 303 then
    if track_redirect(status, headers, nil) then flows = flows + 1 end
    return
  end
  track(status)
end
