-- common.lua: what get.lua, put.lua and mixed.lua share; each loads it with
-- dofile from its own directory. It reads the environment, defines
-- path() ("/v1/kv/key-<n>" plus QUERY) and wrk's setup, init and done.
--
--   KEYS          key space: key-0 .. key-(KEYS-1) (default 100000)
--   QUERY         appended to every path after a "?", e.g. "consistency=one"
--   DISTRIBUTION  uniform (default) or zipf: YCSB's zipfian, key-0 hottest,
--                 as `ringkv bench --distribution zipf` does
--   ZIPF_THETA    the zipfian's skew (default 0.99)
--   TOKEN         bearer token, for a node with --auth-file: sent as
--                 "Authorization: Bearer TOKEN" on every request
--   ADDRS         host:port,host:port,...: spread the threads over these
--                 nodes, thread i to node i mod N (run wrk with -t a multiple
--                 of N); unset, every thread goes to the URL's node
--
-- done() prints one machine-readable line:
--   RESULT requests=<n> duration_us=<n> rps=<f> p50_us=<n> p99_us=<n> errors=<n> non2xx=<n>
-- errors = connect + read + write + timeout errors; non2xx = responses with a
-- status of 400 or more (wrk's own count, which does not see 1xx/3xx).
-- With ADDRS, done() prints a second line, the requests each node was sent:
--   SPREAD <host:port>=<n> ...

local keys = tonumber(os.getenv("KEYS") or "") or 100000
local token = os.getenv("TOKEN") or ""
if token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
local query = os.getenv("QUERY") or ""
if query ~= "" then query = "?" .. query end
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

-- path returns the next request's path.
function path()
   return "/v1/kv/key-" .. next_key() .. query
end

local addrs = {}
for a in (os.getenv("ADDRS") or ""):gmatch("[^,]+") do addrs[#addrs + 1] = a end

-- setup runs in wrk's main state, once per thread before it connects:
-- thread.addr is where that thread's connections go.
local next_id = 0
local threads = {}
function setup(thread)
   next_id = next_id + 1
   thread:set("id", next_id)
   if #addrs > 0 then
      local a = addrs[(next_id - 1) % #addrs + 1]
      local host, port = a:match("^(.*):(%d+)$")
      if not host then error("ADDRS: want host:port, not " .. a) end
      thread.addr = wrk.lookup(host, port)[1]
      thread:set("node", a)
      threads[#threads + 1] = thread
   end
end

function init(args)
   math.randomseed(os.time() * 1000 + (id or 0) * 7919)
   if #addrs > 0 then
      -- Count what this thread sends, for done's SPREAD line; only when
      -- spreading, so the scripts' usual request path is untouched.
      local inner = request
      sent = 0
      request = function()
         sent = sent + 1
         return inner()
      end
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d rps=%.2f p50_us=%d p99_us=%d errors=%d non2xx=%d\n",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99),
      e.connect + e.read + e.write + e.timeout, e.status))
   if #threads > 0 then
      local by, order = {}, {}
      for _, t in ipairs(threads) do
         local node = t:get("node")
         if not by[node] then by[node] = 0; order[#order + 1] = node end
         by[node] = by[node] + (t:get("sent") or 0)
      end
      local parts = {}
      for _, node in ipairs(order) do parts[#parts + 1] = node .. "=" .. by[node] end
      io.write("SPREAD " .. table.concat(parts, " ") .. "\n")
   end
end
