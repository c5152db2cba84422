-- Shared by every scenario (loaded with dofile, wrk runs with this folder as its working directory).
-- Arguments after `--` are key=value pairs, read into ARGS in each thread's init.
-- Each thread counts statuses and completed flows; done() prints one JSON line for the harness.

local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

ARGS = {}
statuses = {}
flows = 0

function parse_args(args)
  for _, arg in ipairs(args) do
    local key, value = arg:match("^([%w_]+)=(.*)$")
    if key then ARGS[key] = value end
  end
end

function track(status)
  statuses[status] = (statuses[status] or 0) + 1
end

function read_lines(path)
  local lines = {}
  for line in io.lines(path) do
    if #line > 0 then table.insert(lines, line) end
  end
  return lines
end

-- a thread's share of a list: thread i of n takes items i, i+n, i+2n, ...
function share(items, n)
  local mine = {}
  for i = id, #items, n do table.insert(mine, items[i]) end
  return mine
end

-- requests prepared in init, sent in turn (one per token of a file, say)
prepared, next_prepared = {}, 1

function next_in_turn()
  local req = prepared[next_prepared]
  next_prepared = next_prepared % #prepared + 1
  return req
end

-- a redirect back to the client: its code is kept in ``into`` (nil: only counted); one without a
-- code (to /login: the session was lost; an error sent back to the client) is unexpected
function track_redirect(status, headers, into)
  local location = headers["Location"] or headers["location"] or ""
  local code = location:match("[?&]code=([^&]+)")
  if code then
    if into then table.insert(into, code) end
    track(status)
  else
    track(tostring(status) .. "-without-code")
  end
  return code
end

-- the default: a 200 is one unit done (a token, an answer); refresh and sso count their own
function response(status, headers, body)
  track(status)
  if status == 200 then flows = flows + 1 end
end

function done(summary, latency, requests)
  local merged, completed = {}, 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      merged[tostring(status)] = (merged[tostring(status)] or 0) + count
    end
    completed = completed + thread:get("flows")
  end
  local parts = {}
  for status, count in pairs(merged) do
    table.insert(parts, string.format('"%s": %d', status, count))
  end
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "flows": %d, ' ..
    '"socket_errors": %d, "timeouts": %d, "statuses": {%s}, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, completed,
    errors.connect + errors.read + errors.write, errors.timeout, table.concat(parts, ", "),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
