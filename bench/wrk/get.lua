-- get.lua: GET /v1/kv/key-<n>, n uniform in [0, KEYS).
--
--   KEYS=100000 wrk -t1 -c64 -d10s -s bench/wrk/get.lua http://127.0.0.1:8080
--
-- Preload the keys first (go run ./bench/cmd/preload --addr ... --keys $KEYS)
-- so that GETs hit: a 404 counts in non2xx below.
--
-- done() prints one machine-readable line:
--   RESULT requests=<n> duration_us=<n> rps=<f> p50_us=<n> p99_us=<n> errors=<n> non2xx=<n>
-- errors = connect + read + write + timeout errors; non2xx = responses with a
-- status of 400 or more (wrk's own count, which does not see 1xx/3xx).

local keys = tonumber(os.getenv("KEYS") or "") or 100000
-- QUERY, e.g. "consistency=one", is appended to every path after a "?".
local query = os.getenv("QUERY") or ""
if query ~= "" then query = "?" .. query end

local next_id = 0
function setup(thread)
   next_id = next_id + 1
   thread:set("id", next_id)
end

function init(args)
   math.randomseed(os.time() * 1000 + (id or 0) * 7919)
end

function request()
   return wrk.format("GET", "/v1/kv/key-" .. math.random(0, keys - 1) .. query)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d rps=%.2f p50_us=%d p99_us=%d errors=%d non2xx=%d\n",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99),
      e.connect + e.read + e.write + e.timeout, e.status))
end
