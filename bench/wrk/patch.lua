-- PATCH /tasks/{id} (no If-Match), an id drawn from the first user's pool.
local c = dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local user, headers
local priorities = { "low", "medium", "high", "urgent" }

setup, response, done = c.setup, c.response, c.done

function init(args)
  c.init()
  user = c.pool[1]
  headers = c.headers(user, { ["Content-Type"] = "application/json" })
end

function request()
  local body = string.format('{"completed": %s, "priority": "%s"}',
    math.random(2) == 1 and "true" or "false", c.pick(priorities))
  return wrk.format("PATCH", "/tasks/" .. c.pick(user.ids), headers, body)
end
