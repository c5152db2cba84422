-- GETs with a DPoP-bound access token and a new proof each time (RFC 9449 §7): each line of the
-- file is "<access token> <proof>", the proof made for this request with the token's hash (ath).
--   path=/api/me pairs=<file> threads=<wrk -t>
dofile("common.lua")

function init(args)
  parse_args(args)
  for _, line in ipairs(share(read_lines(ARGS.pairs), tonumber(ARGS.threads))) do
    local token, proof = line:match("^(%S+) (%S+)$")
    table.insert(prepared, wrk.format("GET", ARGS.path, { ["Authorization"] = "DPoP " .. token, ["DPoP"] = proof }))
  end
end

request = next_in_turn
