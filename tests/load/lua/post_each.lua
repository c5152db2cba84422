-- A form POST with a different token each time, taken in turn from a file (introspection of
-- distinct tokens: more of them than any cache holds).
--   path=/oauth2/introspect tokens=<file> field=token auth=<Basic ...> threads=<wrk -t>
dofile("common.lua")

function init(args)
  parse_args(args)
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = ARGS.auth }
  for _, token in ipairs(share(read_lines(ARGS.tokens), tonumber(ARGS.threads))) do
    table.insert(prepared, wrk.format("POST", ARGS.path, headers, ARGS.field .. "=" .. token))
  end
end

request = next_in_turn
