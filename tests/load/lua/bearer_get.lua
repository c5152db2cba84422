-- Protected GETs with bearer tokens taken in turn from a file (one access token a line).
--   path=/api/me tokens=<file> threads=<wrk -t>
dofile("common.lua")

local requests, next_one = {}, 1

function init(args)
  parse_args(args)
  for _, token in ipairs(share(read_lines(ARGS.tokens), tonumber(ARGS.threads))) do
    table.insert(requests, wrk.format("GET", ARGS.path, { ["Authorization"] = "Bearer " .. token }))
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
