-- A plain GET (the hello-world baseline).   path=/api/hello
dofile("common.lua")

local req

function init(args)
  parse_args(args)
  req = wrk.format("GET", ARGS.path)
end

function request()
  return req
end

function response(status, headers, body)
  track(status)
  if status == 200 then flows = flows + 1 end
end
