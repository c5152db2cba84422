-- A form POST with a different token each time, taken in turn from a file (introspection of
-- distinct tokens: more of them than any cache holds).
--   path=/oauth2/introspect tokens=<file> field=token auth=<Basic ...> threads=<wrk -t>
--   [body=<more form fields, url-encoded, sent before the token's>]
dofile("common.lua")

function init(args)
  parse_args(args)
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = ARGS.auth }
  for _, token in ipairs(share(read_lines(ARGS.tokens), tonumber(ARGS.threads))) do
    local body = ARGS.field .. "=" .. token
    if ARGS.body then body = ARGS.body .. "&" .. body end
    table.insert(prepared, wrk.format("POST", ARGS.path, headers, body))
  end
end

request = next_in_turn
