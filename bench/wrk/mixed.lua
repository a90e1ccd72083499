-- mixed.lua: READ_PCT% GET (default 90) and the rest PUT of /v1/kv/key-<n>,
-- n in [0, KEYS) (uniform, or DISTRIBUTION=zipf; see common.lua for every
-- variable and the RESULT line), PUT values of VALUE_SIZE bytes (default 100).
--
--   READ_PCT=90 KEYS=100000 VALUE_SIZE=100 wrk -t1 -c64 -d10s -s bench/wrk/mixed.lua http://127.0.0.1:8080

dofile((debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "") .. "common.lua")

local value = string.rep("x", tonumber(os.getenv("VALUE_SIZE") or "") or 100)
local read_pct = tonumber(os.getenv("READ_PCT") or "") or 90

function request()
   local p = path()
   if math.random() * 100 < read_pct then
      return wrk.format("GET", p)
   end
   return wrk.format("PUT", p, nil, value)
end
