-- POST /tasks with a realistic JSON body, as the first user of the pool.
local c = dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local headers, n = nil, 0
local priorities = { "low", "medium", "high", "urgent" }

setup, response, done = c.setup, c.response, c.done

function init(args)
  c.init()
  headers = c.headers(c.pool[1], { ["Content-Type"] = "application/json" })
end

function request()
  n = n + 1
  local body = string.format(
    '{"title": "Benchmark task %d-%d", "description": "Written by bench/wrk/post.lua ' ..
    'to measure POST /tasks.", "priority": "%s", "due_at": "2030-01-01T12:00:00Z", ' ..
    '"tags": ["bench", "load"]}', thread_no or 0, n, c.pick(priorities))
  return wrk.format("POST", "/tasks", headers, body)
end
