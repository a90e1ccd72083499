#!/usr/bin/env bash
# scale.sh: ringkv GET throughput and memory as the store grows, with wrk.
#
# Builds ringkv and bench/cmd/preload, then for each key count in SIZES
# loads a node once: `ringkv serve --sync=false` on a fresh data dir,
# preload (key-0 .. key-N-1, VALUE_SIZE bytes), stop. Then ROUNDS rounds;
# each visits every size (the order alternates from round to round):
#
#   start `ringkv serve` (default flags plus RINGKV_ARGS) on that size's
#   data dir, wait for its row cache warm to end (GET /v1/lsm), wrk
#   get.lua for WARMUP (not measured), then for DURATION (measured),
#   record req/s, p99, the server's CPU time per request, its VmRSS and
#   VmHWM from /proc/PID/status, and block cache and memtable bytes from
#   GET /v1/lsm; stop the node.
#
# It prints medians per size and each size's GET req/s as a ratio of the
# first size's, and the RSS budget check: RSS at most block cache +
# memtables + 150MiB (the bytes /v1/lsm reports in use). Results go to
# $OUT/scale-<date>.md and .json.
#
# Environment (defaults): SIZES="100000 1000000 10000000" DURATION=20s
#   WARMUP=10s ROUNDS=3 VALUE_SIZE=100 CONNS=64 THREADS=1 OUT=bench/results
#   BASE_PORT=19400 DATA=<temp dir> (reuse DATA with KEEP=1 to skip loading)
#   KEEP=0 RINGKV_ARGS="" DISTRIBUTION=uniform (or zipf, read by get.lua)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SIZES=${SIZES:-100000 1000000 10000000}
DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-10s}
ROUNDS=${ROUNDS:-3}
VALUE_SIZE=${VALUE_SIZE:-100}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
OUT=${OUT:-bench/results}
BASE_PORT=${BASE_PORT:-19400}
KEEP=${KEEP:-0}
RINGKV_ARGS=${RINGKV_ARGS:-}
DISTRIBUTION=${DISTRIBUTION:-uniform}
export VALUE_SIZE DISTRIBUTION

die() { echo "scale.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }
[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || die "ROUNDS must be 1..99"
read -r -a SIZE_LIST <<<"$SIZES"
((${#SIZE_LIST[@]} > 0)) || die "SIZES is empty"
for n in "${SIZE_LIST[@]}"; do [[ $n =~ ^[1-9][0-9]*$ ]] || die "bad size '$n' in SIZES"; done
command -v wrk >/dev/null || { log "installing wrk"; (apt-get install -y wrk >/dev/null 2>&1 || sudo apt-get install -y wrk >/dev/null 2>&1) || die "wrk is missing and could not be installed"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ringkv-scale.XXXXXX")
DATA=${DATA:-$WORK/data}
mkdir -p "$DATA"
PID=
cleanup() {
	[[ -n $PID ]] && kill -9 "$PID" 2>/dev/null
	# A DATA given from outside is the caller's to delete.
	if [[ $KEEP == 1 ]]; then log "kept $WORK (data in $DATA)"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
log "building into $WORK"
go build -o "$WORK/ringkv" ./cmd/ringkv
go build -o "$WORK/preload" ./bench/cmd/preload
ADDR=127.0.0.1:$BASE_PORT
GOSSIP=127.0.0.1:$((BASE_PORT + 50))

# start DIR [flags]: one node on DIR, waits until it serves.
start() {
	local dir=$1
	shift
	# shellcheck disable=SC2086
	"$WORK/ringkv" serve --data-dir "$dir" --http-addr "$ADDR" --gossip-addr "$GOSSIP" --log-level warn $RINGKV_ARGS "$@" >>"$WORK/node.log" 2>&1 &
	PID=$!
	for _ in $(seq 1 600); do
		curl -sf "http://$ADDR/healthz" >/dev/null && return 0
		kill -0 "$PID" 2>/dev/null || die "the node exited; see $WORK/node.log"
		sleep 0.1
	done
	die "the node did not start; see $WORK/node.log"
}
stop() {
	kill "$PID" 2>/dev/null || true
	for _ in $(seq 1 600); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$PID" 2>/dev/null || true
	wait "$PID" 2>/dev/null || true
	PID=
}

for n in "${SIZE_LIST[@]}"; do
	dir=$DATA/keys-$n
	if [[ -f $dir/loaded ]]; then
		log "$n keys: already loaded in $dir"
		continue
	fi
	rm -rf "$dir"
	log "$n keys: loading (--sync=false)"
	t0=$(date +%s)
	start "$dir" --sync=false
	"$WORK/preload" --addr "$ADDR" --keys "$n" --value-size "$VALUE_SIZE" --concurrency 64 >/dev/null
	stop
	touch "$dir/loaded"
	log "$n keys: loaded in $(($(date +%s) - t0))s, $(du -sh "$dir" | cut -f1) on disk"
done

lsm_bytes() { # field of /v1/lsm, in bytes
	curl -s "http://$ADDR/v1/lsm" | grep -o "\"$1\":[0-9]*" | head -1 | cut -d: -f2
}
# wait_warm: waits until the node's row cache warm (--row-cache-warm) has
# ended, so every size is measured with its cache as full as it will get.
wait_warm() {
	local body end=$((SECONDS + 600))
	while ((SECONDS < end)); do
		if body=$(curl -sf -m 5 "http://$ADDR/v1/lsm"); then
			[[ $body == *'"warming":true'* ]] || return 0
		else
			kill -0 "$PID" 2>/dev/null || die "the node exited; see $WORK/node.log"
		fi
		sleep 0.2
	done
	die "the row cache warm did not end in 600s"
}
declare -A RESULTS
run() {
	local n=$1 before after out rps reqs p99 cpu rss hwm cache mem
	start "$DATA/keys-$n"
	wait_warm
	KEYS=$n wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s bench/wrk/get.lua "http://$ADDR" >/dev/null
	read -r -a f < <(cut -d' ' -f14,15 "/proc/$PID/stat")
	before=$((f[0] + f[1]))
	out=$(KEYS=$n wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s bench/wrk/get.lua "http://$ADDR" 2>&1)
	read -r -a f < <(cut -d' ' -f14,15 "/proc/$PID/stat")
	after=$((f[0] + f[1]))
	rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
	reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	# In ms, so that medians compare like with like (wrk prints us, ms or s).
	p99=$(awk '$1=="99%" {v = $2; u = v; sub(/[0-9.]+/, "", u); v += 0
		printf "%.2fms", (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v}' <<<"$out")
	grep -q "Non-2xx" <<<"$out" && die "$n keys: non-2xx answers: $(grep Non-2xx <<<"$out")"
	cpu=$(awk -v t=$((after - before)) -v r="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz * 1e6 / r}')
	rss=$(awk '/^VmRSS/ {printf "%.0f", $2 * 1024}' "/proc/$PID/status")
	hwm=$(awk '/^VmHWM/ {printf "%.0f", $2 * 1024}' "/proc/$PID/status")
	cache=$(lsm_bytes block_cache_bytes)
	mem=$(lsm_bytes memtable_bytes)
	stop
	log "$n keys: $rps req/s, p99 $p99, CPU $cpu us/req, RSS $((rss >> 20))MiB (peak $((hwm >> 20))MiB), block cache $((cache >> 20))MiB, memtables $((mem >> 20))MiB"
	RESULTS[$n]+="$rps $cpu $p99 $rss $hwm $cache $mem;"
}

for r in $(seq 1 "$ROUNDS"); do
	order=("${SIZE_LIST[@]}")
	if ((r % 2 == 0)); then
		order=()
		for ((i = ${#SIZE_LIST[@]} - 1; i >= 0; i--)); do order+=("${SIZE_LIST[i]}"); done
	fi
	for n in "${order[@]}"; do
		log "round $r: $n keys"
		run "$n"
	done
done

median() { tr ';' '\n' <<<"$1" | awk 'NF' | awk -v c="$2" '{print $c}' | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
maxcol() { tr ';' '\n' <<<"$1" | awk 'NF' | awk -v c="$2" '{print $c}' | sort -g | tail -1; }
mkdir -p "$OUT"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
md=$OUT/scale-$stamp.md
json=$OUT/scale-$stamp.json
first=${SIZE_LIST[0]}
base=$(median "${RESULTS[$first]}" 1)
{
	echo "# GET and memory by store size ($stamp)"
	echo
	echo "\`DISTRIBUTION=$DISTRIBUTION SIZES=\"$SIZES\" DURATION=$DURATION WARMUP=$WARMUP ROUNDS=$ROUNDS VALUE_SIZE=$VALUE_SIZE CONNS=$CONNS THREADS=$THREADS bench/scale.sh\`, $(nproc) CPUs, commit $(git rev-parse --short HEAD), medians of $ROUNDS; loaded with --sync=false, measured with default flags${RINGKV_ARGS:+ plus $RINGKV_ARGS}; wrk get.lua, keys $DISTRIBUTION."
	echo
	echo "| keys | GET req/s | vs $first | CPU µs/req | p99 | RSS MiB (max over rounds) | peak RSS MiB | block cache MiB | memtables MiB | budget MiB (cache + memtables + 150) | within |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
} >"$md"
echo "{\"sizes\": {" >"$json"
sep=""
for n in "${SIZE_LIST[@]}"; do
	rps=$(median "${RESULTS[$n]}" 1)
	cpu=$(median "${RESULTS[$n]}" 2)
	p99=$(median "${RESULTS[$n]}" 3)
	rss=$(maxcol "${RESULTS[$n]}" 4)
	hwm=$(maxcol "${RESULTS[$n]}" 5)
	cache=$(maxcol "${RESULTS[$n]}" 6)
	mem=$(maxcol "${RESULTS[$n]}" 7)
	ratio=$(awk -v a="$rps" -v b="$base" 'BEGIN {printf "%.3f", a / b}')
	budget=$((cache + mem + (150 << 20)))
	within=no
	((hwm <= budget)) && within=yes
	echo "| $n | $rps | **$ratio** | $cpu | $p99 | $((rss >> 20)) | $((hwm >> 20)) | $((cache >> 20)) | $((mem >> 20)) | $((budget >> 20)) | $within |" >>"$md"
	printf '%s  "%s": {"rps": %s, "ratio": %s, "cpu_us": %s, "p99": "%s", "rss_bytes": %s, "peak_rss_bytes": %s, "block_cache_bytes": %s, "memtable_bytes": %s, "budget_bytes": %s, "raw": "%s"}' \
		"$sep" "$n" "$rps" "$ratio" "$cpu" "$p99" "$rss" "$hwm" "$cache" "$mem" "$budget" "${RESULTS[$n]}" >>"$json"
	sep=$',\n'
done
printf '\n}}\n' >>"$json"
echo >>"$md"
echo "RSS is VmRSS after the measured run, peak RSS is VmHWM (the high-water mark since the node started); \"within\" compares the peak with the budget." >>"$md"
cat "$md"
