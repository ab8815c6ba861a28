-- POST /auth/login (OAuth2 password form) as seed_<n>, n drawn from 1..BENCH_LOGIN_USERS.
local c = dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local users = tonumber(os.getenv("BENCH_LOGIN_USERS") or "50")
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }

setup, response, done = c.setup, c.response, c.done

function init(args)
  c.init()
end

function request()
  local body = "username=seed_" .. math.random(users) .. "&password=seed+password"
  return wrk.format("POST", "/auth/login", headers, body)
end
