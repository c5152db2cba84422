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
