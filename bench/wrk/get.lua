-- get.lua: GET /v1/kv/key-<n>, n in [0, KEYS) (uniform, or DISTRIBUTION=zipf;
-- see common.lua for every variable and the RESULT line).
--
--   KEYS=100000 wrk -t1 -c64 -d10s -s bench/wrk/get.lua http://127.0.0.1:8080
--
-- Preload the keys first (go run ./bench/cmd/preload --addr ... --keys $KEYS)
-- so that GETs hit: a 404 counts in non2xx.

dofile((debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "") .. "common.lua")

function request()
   return wrk.format("GET", path())
end
