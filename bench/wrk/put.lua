-- put.lua: PUT /v1/kv/key-<n> with a VALUE_SIZE-byte value (default 100),
-- n in [0, KEYS) (uniform, or DISTRIBUTION=zipf; see common.lua for every
-- variable and the RESULT line).
--
--   KEYS=100000 VALUE_SIZE=100 wrk -t1 -c64 -d10s -s bench/wrk/put.lua http://127.0.0.1:8080

dofile((debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "") .. "common.lua")

local value = string.rep("x", tonumber(os.getenv("VALUE_SIZE") or "") or 100)

function request()
   return wrk.format("PUT", path(), nil, value)
end
