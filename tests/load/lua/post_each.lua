-- A form POST with a different token each time, taken in turn from a file (introspection of
-- distinct tokens: more of them than any cache holds).
--   path=/oauth2/introspect tokens=<file> field=token auth=<Basic ...> threads=<wrk -t>
dofile("common.lua")

local requests, next_one = {}, 1

function init(args)
  parse_args(args)
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = ARGS.auth }
  for _, token in ipairs(share(read_lines(ARGS.tokens), tonumber(ARGS.threads))) do
    table.insert(requests, wrk.format("POST", ARGS.path, headers, ARGS.field .. "=" .. token))
  end
end

function request()
  local req = requests[next_one]
  next_one = next_one % #requests + 1
  return req
end

function response(status, headers, body)
  track(status)
  if status == 200 then flows = flows + 1 end
end
