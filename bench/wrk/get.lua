-- GET /tasks/{id}, the id drawn at random from the first user's pool of ids.
local c = dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local user, headers

setup, response, done = c.setup, c.response, c.done

function init(args)
  c.init()
  user = c.pool[1]
  headers = c.headers(user)
end

function request()
  return wrk.format("GET", "/tasks/" .. c.pick(user.ids), headers)
end
