-- Refresh-token rotation chains: each thread holds its share of the seeded refresh tokens, sends
-- one, and puts back the new one from the answer (the old one is now spent).
--   tokens=<file, one refresh token a line> auth=<Basic ...> threads=<wrk -t>
dofile("common.lua")

local pool, headers = {}, {}

function init(args)
  parse_args(args)
  pool = share(read_lines(ARGS.tokens), tonumber(ARGS.threads))
  headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = ARGS.auth }
end

function request()
  local token = table.remove(pool)
  if token == nil then error("no refresh token left: seed at least as many as connections") end
  return wrk.format("POST", "/oauth2/token", headers, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
  track(status)
  if status == 200 then
    flows = flows + 1
    table.insert(pool, body:match('"refresh_token":%s*"([^"]+)"'))
  end
end
