-- One fixed form POST (client_credentials, password grant, introspection):
--   path=/oauth2/token body=<urlencoded> auth=<Basic ...>
dofile("common.lua")

local req

function init(args)
  parse_args(args)
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  if ARGS.auth then headers["Authorization"] = ARGS.auth end
  req = wrk.format("POST", ARGS.path, headers, ARGS.body)
end

function request()
  return req
end
