-- Device-grant polling (RFC 8628 §3.4): each request polls the token endpoint with the next device
-- code of a file, whose user has not answered yet; a poll is complete when it is answered 400
-- authorization_pending. Any other answer (slow_down: a code polled again too soon, because the
-- file was too short for the rate) is unexpected.
--   path=/oauth2/token codes=<file> client_id=<id> threads=<wrk -t> [grant_type=<urlencoded>]
dofile("common.lua")

function init(args)
  parse_args(args)
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  local grant = ARGS.grant_type or "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"
  for _, code in ipairs(share(read_lines(ARGS.codes), tonumber(ARGS.threads))) do
    table.insert(prepared, wrk.format("POST", ARGS.path, headers,
      "grant_type=" .. grant .. "&client_id=" .. ARGS.client_id .. "&device_code=" .. code))
  end
end

request = next_in_turn

function response(status, headers, body)
  if status == 400 and body:find('"authorization_pending"', 1, true) then
    track("400-pending")
    flows = flows + 1
    return
  end
  if status == 400 then
    track("400-" .. (body:match('"error":%s*"([^"]+)"') or "other"))
    return
  end
  track(status)
end
