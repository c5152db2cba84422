-- A JSON POST, the same each time (dynamic client registration, RFC 7591): a 201 is one unit done.
--   path=/oauth2/register body_file=<file holding the JSON> [auth=<Authorization header value>]
dofile("common.lua")

local req

function init(args)
  parse_args(args)
  local file = assert(io.open(ARGS.body_file, "r"))
  local body = file:read("*a")
  file:close()
  local headers = { ["Content-Type"] = "application/json" }
  if ARGS.auth then headers["Authorization"] = ARGS.auth end
  req = wrk.format("POST", ARGS.path, headers, body)
end

function request()
  return req
end

function response(status, headers, body)
  track(status)
  if status == 201 then flows = flows + 1 end
end
