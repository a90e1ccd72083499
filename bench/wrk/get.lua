-- get.lua: GET /v1/kv/key-<n>, n in [0, KEYS) (uniform, or DISTRIBUTION=zipf).
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
-- DISTRIBUTION=zipf draws n from YCSB's zipfian (key-0 hottest, ZIPF_THETA,
-- default 0.99), as `ringkv bench --distribution zipf` does; the default is
-- uniform.
local distribution = os.getenv("DISTRIBUTION") or "uniform"
local theta = tonumber(os.getenv("ZIPF_THETA") or "") or 0.99
local zetan, zalpha, zeta_eta, zhalf
if distribution == "zipf" then
   local function zeta(n)
      local s = 0
      for i = 1, n do s = s + 1 / i ^ theta end
      return s
   end
   zetan = zeta(keys)
   zalpha = 1 / (1 - theta)
   zeta_eta = (1 - (2 / keys) ^ (1 - theta)) / (1 - zeta(2) / zetan)
   zhalf = 1 + 0.5 ^ theta
elseif distribution ~= "uniform" then
   error("DISTRIBUTION must be uniform or zipf, not " .. distribution)
end

local function next_key()
   if not zetan then return math.random(0, keys - 1) end
   local u = math.random()
   local uz = u * zetan
   if uz < 1 or keys == 1 then return 0 end
   if uz < zhalf then return 1 end
   return math.min(keys - 1, math.floor(keys * (zeta_eta * u - zeta_eta + 1) ^ zalpha))
end

local next_id = 0
function setup(thread)
   next_id = next_id + 1
   thread:set("id", next_id)
end

function init(args)
   math.randomseed(os.time() * 1000 + (id or 0) * 7919)
end

function request()
   return wrk.format("GET", "/v1/kv/key-" .. next_key() .. query)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d rps=%.2f p50_us=%d p99_us=%d errors=%d non2xx=%d\n",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99),
      e.connect + e.read + e.write + e.timeout, e.status))
end
