-- Protected GETs with bearer tokens taken in turn from a file (one access token a line).
--   path=/api/me tokens=<file> threads=<wrk -t>
dofile("common.lua")

function init(args)
  parse_args(args)
  for _, token in ipairs(share(read_lines(ARGS.tokens), tonumber(ARGS.threads))) do
    table.insert(prepared, wrk.format("GET", ARGS.path, { ["Authorization"] = "Bearer " .. token }))
  end
end

request = next_in_turn
