-- POST /tasks with a realistic JSON body, as the first user of the pool.
-- BENCH_IDEMPOTENCY_KEY=1: each request with an Idempotency-Key of its own.
local c = dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local headers, n = nil, 0
local priorities = { "low", "medium", "high", "urgent" }
local keyed = os.getenv("BENCH_IDEMPOTENCY_KEY") == "1"
local run = 0

setup, response, done = c.setup, c.response, c.done

function init(args)
  c.init()
  run = math.random(1000000000)
  headers = c.headers(c.pool[1], { ["Content-Type"] = "application/json" })
end

function request()
  n = n + 1
  if keyed then
    headers["Idempotency-Key"] = string.format("post-%d-%d-%d", run, thread_no or 0, n)
  end
  local body = string.format(
    '{"title": "Benchmark task %d-%d", "description": "Written by bench/wrk/post.lua ' ..
    'to measure POST /tasks.", "priority": "%s", "due_at": "2030-01-01T12:00:00Z", ' ..
    '"tags": ["bench", "load"]}', thread_no or 0, n, c.pick(priorities))
  return wrk.format("POST", "/tasks", headers, body)
end
