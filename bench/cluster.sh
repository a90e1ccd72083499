#!/usr/bin/env bash
# cluster.sh: a 3-node ringkv cluster (N=3, W=2, R=2) against one node, on
# this machine, with wrk.
#
# Builds ringkv and bench/cmd/preload, then runs ROUNDS rounds; each round
# runs both setups (the order alternates from round to round):
#
#   single:  one `ringkv serve` on a fresh data dir
#   cluster: three `ringkv serve` on fresh data dirs, joined by gossip,
#            --replicas 3; wrk sends to node 1, which coordinates
#
# For each: preload KEYS keys, wrk GET (quorum: 2 replicas read), wrk PUT
# (quorum: 2 replicas fsync before the answer). It records requests/s,
# latency, and the servers' CPU time per request (utime+stime of every
# ringkv process from /proc/PID/stat, summed), and prints medians and the
# cluster/single ratios; results go to $OUT/cluster-<date>.{md,json}.
#
# Environment (defaults): DURATION=10s ROUNDS=3 KEYS=100000 VALUE_SIZE=100
#   CONNS=64 THREADS=1 OUT=bench/results BASE_PORT=19100 KEEP=0
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
KEYS=${KEYS:-100000}
VALUE_SIZE=${VALUE_SIZE:-100}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
OUT=${OUT:-bench/results}
BASE_PORT=${BASE_PORT:-19100}
KEEP=${KEEP:-0}
export KEYS VALUE_SIZE

die() { echo "cluster.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }
[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || die "ROUNDS must be 1..99"
command -v wrk >/dev/null || { log "installing wrk"; (apt-get install -y wrk >/dev/null 2>&1 || sudo apt-get install -y wrk >/dev/null 2>&1) || die "wrk is missing and could not be installed"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ringkv-cluster.XXXXXX")
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	[[ $KEEP == 1 ]] && log "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
log "building into $WORK"
go build -o "$WORK/ringkv" ./cmd/ringkv
go build -o "$WORK/preload" ./bench/cmd/preload

http_of() { echo "127.0.0.1:$((BASE_PORT + $1))"; }
gossip_of() { echo "127.0.0.1:$((BASE_PORT + 50 + $1))"; }

# start NODE_INDEX [--join ...]: one node, logs in $WORK.
start() {
	local i=$1
	shift
	"$WORK/ringkv" serve --data-dir "$WORK/data-$i" --http-addr "$(http_of "$i")" \
		--gossip-addr "$(gossip_of "$i")" --replicas 3 --log-level warn "$@" >"$WORK/node-$i.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 1 300); do
		curl -sf "http://$(http_of "$i")/healthz" >/dev/null && return 0
		sleep 0.1
	done
	die "node $i did not start; see $WORK/node-$i.log"
}

stop_all() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null || true
	done
	PIDS=()
	rm -rf "$WORK"/data-*
}

cpu_ticks() {
	local total=0 s f
	for p in "${PIDS[@]}"; do
		s=$(<"/proc/$p/stat")
		read -r -a f <<<"${s##*) }"
		total=$((total + f[11] + f[12]))
	done
	echo "$total"
}

declare -A RESULTS
# run SETUP OP: wrk against node 0, appends "rps cpu_us p99" to RESULTS.
run() {
	local setup=$1 op=$2 before after out rps reqs p99 cpu
	before=$(cpu_ticks)
	out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "bench/wrk/$op.lua" "http://$(http_of 0)" 2>&1)
	after=$(cpu_ticks)
	echo "$out" >>"$WORK/wrk-$setup-$op.txt"
	rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
	reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	p99=$(awk '$1=="99%" {print $2}' <<<"$out")
	if grep -q "Non-2xx" <<<"$out"; then
		die "$setup $op: non-2xx answers: $(grep Non-2xx <<<"$out")"
	fi
	cpu=$(awk -v t=$((after - before)) -v r="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz * 1e6 / r}')
	log "$setup $op: $rps req/s, p99 $p99, server CPU $cpu us/req"
	RESULTS[$setup,$op]+="$rps $cpu $p99;"
}

round() {
	local setup=$1
	if [[ $setup == single ]]; then
		start 0
	else
		start 0
		start 1 --join "$(gossip_of 0)"
		start 2 --join "$(gossip_of 0)"
		for _ in $(seq 1 100); do
			n=$(curl -s "http://$(http_of 0)/v1/cluster" | grep -o '"state":"alive"' | wc -l)
			((n == 3)) && break
			sleep 0.1
		done
		((n == 3)) || die "the cluster did not form"
	fi
	"$WORK/preload" --addr "$(http_of 0)" --keys "$KEYS" --value-size "$VALUE_SIZE" --concurrency 64 >/dev/null
	run "$setup" get
	run "$setup" put
	stop_all
}

for r in $(seq 1 "$ROUNDS"); do
	if ((r % 2)); then order="single cluster"; else order="cluster single"; fi
	for s in $order; do
		log "round $r: $s"
		round "$s"
	done
done

median() { tr ';' '\n' <<<"$1" | awk 'NF' | awk -v c="$2" '{print $c}' | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
mkdir -p "$OUT"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
md="$OUT/cluster-$stamp.md"
json="$OUT/cluster-$stamp.json"
{
	echo "# 3-node cluster vs one node ($stamp)"
	echo
	echo "\`DURATION=$DURATION ROUNDS=$ROUNDS KEYS=$KEYS VALUE_SIZE=$VALUE_SIZE CONNS=$CONNS THREADS=$THREADS bench/cluster.sh\`, $(nproc) CPUs, medians of $ROUNDS. Cluster: 3 nodes on this machine, --replicas 3, quorum reads and writes (R=W=2), fsync on; wrk sends to node 1."
	echo
	echo "| op | single req/s | cluster req/s | ratio | single CPU µs/req | cluster CPU µs/req (3 nodes) |"
	echo "|---|---|---|---|---|---|"
} >"$md"
echo "{" >"$json"
sep=""
for op in get put; do
	s=$(median "${RESULTS[single,$op]}" 1)
	c=$(median "${RESULTS[cluster,$op]}" 1)
	sc=$(median "${RESULTS[single,$op]}" 2)
	cc=$(median "${RESULTS[cluster,$op]}" 2)
	ratio=$(awk -v a="$c" -v b="$s" 'BEGIN {printf "%.3f", a / b}')
	echo "| $op | $s | $c | **$ratio** | $sc | $cc |" >>"$md"
	printf '%s  "%s": {"single_rps": %s, "cluster_rps": %s, "ratio": %s, "single_cpu_us": %s, "cluster_cpu_us": %s, "raw_single": "%s", "raw_cluster": "%s"}' \
		"$sep" "$op" "$s" "$c" "$ratio" "$sc" "$cc" "${RESULTS[single,$op]}" "${RESULTS[cluster,$op]}" >>"$json"
	sep=$',\n'
done
printf '\n}\n' >>"$json"
cat "$md"
