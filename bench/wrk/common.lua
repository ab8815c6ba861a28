-- Shared by every scenario: the pool of users, the status counters and the JSON summary.
--
-- BENCH_POOL names a file of lines "<access token><TAB><task id>,<task id>,..." (one user a
-- line, written by bench/run.py). request()/response() run in each wrk thread's own Lua
-- state; setup()/done() run in the main one, which collects the threads' counters.

local M = {}
local threads = {}
local counter = 0

M.pool = {}
non2xx, s4xx, s5xx = 0, 0, 0

function M.load_pool()
  local path = os.getenv("BENCH_POOL")
  if not path then return end
  for line in io.lines(path) do
    local token, ids = line:match("^([^\t]+)\t?(.*)$")
    if token then
      local list = {}
      for id in ids:gmatch("%d+") do list[#list + 1] = id end
      M.pool[#M.pool + 1] = { token = token, ids = list }
    end
  end
end

function M.headers(user, extra)
  local headers = { ["Authorization"] = "Bearer " .. user.token }
  for k, v in pairs(extra or {}) do headers[k] = v end
  return headers
end

function M.pick(list)
  return list[math.random(#list)]
end

function M.setup(thread)
  counter = counter + 1
  thread:set("thread_no", counter)
  table.insert(threads, thread)
end

function M.init()
  math.randomseed(os.time() * 1000 + (thread_no or 0) * 7919)
  M.load_pool()
end

function M.response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if status >= 500 then s5xx = s5xx + 1 elseif status >= 400 then s4xx = s4xx + 1 end
  end
end

function M.done(summary, latency, requests)
  local n, c4, c5 = 0, 0, 0
  for _, thread in ipairs(threads) do
    n = n + (thread:get("non2xx") or 0)
    c4 = c4 + (thread:get("s4xx") or 0)
    c5 = c5 + (thread:get("s5xx") or 0)
  end
  local e = summary.errors
  local seconds = summary.duration / 1e6
  local function ms(us) return string.format("%.3f", us / 1000) end
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "seconds": %.3f, "rps": %.2f, "non2xx": %d, ' ..
    '"status_4xx": %d, "status_5xx": %d, "socket_errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "timeout": %d}, "latency_ms": {"mean": %s, "p50": %s, "p90": %s, ' ..
    '"p99": %s, "max": %s}}\n',
    summary.requests, seconds, summary.requests / seconds, n, c4, c5,
    e.connect, e.read, e.write, e.timeout,
    ms(latency.mean), ms(latency:percentile(50)), ms(latency:percentile(90)),
    ms(latency:percentile(99)), ms(latency.max)))
end

return M
