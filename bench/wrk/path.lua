-- GET BENCH_PATH (default /tasks?limit=20) as the pool's first user: list pages, /auth/me.
local c = dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local path = os.getenv("BENCH_PATH") or "/tasks?limit=20"
local req

setup, response, done = c.setup, c.response, c.done

function init(args)
  c.init()
  req = wrk.format("GET", path, c.headers(c.pool[1]))
end

function request()
  return req
end
