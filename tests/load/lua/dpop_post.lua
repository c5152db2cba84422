-- A form POST with a DPoP proof (RFC 9449) in its DPoP header, a new proof each time, taken in
-- turn from a file (one a line: each proof's jti is good once, so the file holds more proofs than a
-- run sends).
--   path=/oauth2/token body=<urlencoded> auth=<Basic ...> proofs=<file> threads=<wrk -t>
dofile("common.lua")

function init(args)
  parse_args(args)
  for _, proof in ipairs(share(read_lines(ARGS.proofs), tonumber(ARGS.threads))) do
    local headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["DPoP"] = proof }
    if ARGS.auth then headers["Authorization"] = ARGS.auth end
    table.insert(prepared, wrk.format("POST", ARGS.path, headers, ARGS.body))
  end
end

request = next_in_turn
