-- PATCH /tasks/{id} (no If-Match), an id drawn from the first user's pool.
-- BENCH_IDEMPOTENCY_KEY=1: each request with an Idempotency-Key of its own.
local c = dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local user, headers
local priorities = { "low", "medium", "high", "urgent" }
local keyed = os.getenv("BENCH_IDEMPOTENCY_KEY") == "1"
local run, n = 0, 0

setup, response, done = c.setup, c.response, c.done

function init(args)
  c.init()
  run = math.random(1000000000)
  user = c.pool[1]
  headers = c.headers(user, { ["Content-Type"] = "application/json" })
end

function request()
  n = n + 1
  if keyed then
    headers["Idempotency-Key"] = string.format("patch-%d-%d-%d", run, thread_no or 0, n)
  end
  local body = string.format('{"completed": %s, "priority": "%s"}',
    math.random(2) == 1 and "true" or "false", c.pick(priorities))
  return wrk.format("PATCH", "/tasks/" .. c.pick(user.ids), headers, body)
end
