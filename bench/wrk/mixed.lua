-- A session mix of many users: 80% reads (40% list, 40% get), 20% writes (10% POST,
-- 10% PATCH), each request as a user drawn at random from the whole pool. BENCH_READ_PCT
-- changes the share of reads (100: reads only, 0: writes only), half list, half get.
local c = dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local json = { ["Content-Type"] = "application/json" }
local n = 0
local reads = tonumber(os.getenv("BENCH_READ_PCT") or "80")

setup, response, done = c.setup, c.response, c.done

function init(args)
  c.init()
end

function request()
  local user = c.pick(c.pool)
  local roll = math.random(100)
  if roll <= reads / 2 then
    return wrk.format("GET", "/tasks?limit=20", c.headers(user))
  elseif roll <= reads then
    return wrk.format("GET", "/tasks/" .. c.pick(user.ids), c.headers(user))
  elseif roll <= reads + (100 - reads) / 2 then
    n = n + 1
    local body = string.format(
      '{"title": "Mixed task %d-%d", "priority": "high", "tags": ["bench"]}', thread_no or 0, n)
    return wrk.format("POST", "/tasks", c.headers(user, json), body)
  else
    local body = string.format('{"completed": %s}', math.random(2) == 1 and "true" or "false")
    return wrk.format("PATCH", "/tasks/" .. c.pick(user.ids), c.headers(user, json), body)
  end
end
