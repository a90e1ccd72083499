#!/usr/bin/env bash
# move.sh: how long a node that joins takes to pull its ranges, and what
# the move does to clients' latency.
#
# Loads node 1 alone (--replicas 2) with KEYS keys of VALUE_SIZE bytes
# (loaded with --sync=false, then restarted with default flags), measures
# a steady client load (`ringkv bench`, workload b, RATE requests a second,
# uniform keys) for BEFORE, then starts node 2 with --join under the same
# load: with N=2 on two nodes, node 2 owns every range and pulls all of
# them from node 1, at most TRANSFER_RATE bytes a second. It records the
# time from node 2's start until it reports itself settled, the bytes it
# pulled (ringkv_transfer_bytes_total), and the client p50/p99 before and
# during the move. Results go to $OUT/move-<date>.{md,json}.
#
# Environment (defaults): KEYS=1000000 VALUE_SIZE=1000 RATE=1000
#   BEFORE=20s TRANSFER_RATE=32MiB OUT=bench/results BASE_PORT=19600 KEEP=0
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

KEYS=${KEYS:-1000000}
VALUE_SIZE=${VALUE_SIZE:-1000}
RATE=${RATE:-1000}
BEFORE=${BEFORE:-20s}
TRANSFER_RATE=${TRANSFER_RATE:-32MiB}
OUT=${OUT:-bench/results}
BASE_PORT=${BASE_PORT:-19600}
KEEP=${KEEP:-0}

die() { echo "move.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ringkv-move.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ $KEEP == 1 ]] || rm -rf "$WORK"
}
trap cleanup EXIT

log "building into $WORK/bin"
go build -o "$WORK/bin/" ./cmd/ringkv ./bench/cmd/preload
RK=$WORK/bin/ringkv
H1=127.0.0.1:$BASE_PORT G1=127.0.0.1:$((BASE_PORT + 1))
H2=127.0.0.1:$((BASE_PORT + 2)) G2=127.0.0.1:$((BASE_PORT + 3))

start1() {
  "$RK" serve --node-id n1 --http-addr "$H1" --gossip-addr "$G1" --data-dir "$WORK/n1" \
    --replicas 2 --transfer-rate "$TRANSFER_RATE" "$@" >>"$WORK/n1.log" 2>&1 &
  N1=$!
  PIDS+=("$N1")
  for _ in $(seq 300); do curl -fsS "http://$H1/healthz" >/dev/null 2>&1 && return; sleep 0.1; done
  die "node 1 did not start (see $WORK/n1.log)"
}

log "loading $KEYS keys of $VALUE_SIZE bytes into node 1"
start1 --sync=false
t0=$(date +%s.%N)
"$WORK/bin/preload" --addr "$H1" --keys "$KEYS" --value-size "$VALUE_SIZE" --shuffle
log "loaded in $(python3 -c "import time; print(round(time.time() - $t0))")s"
kill -TERM "$N1"; wait "$N1" || true
start1
DATA_BYTES=$(du -sb "$WORK/n1" | cut -f1)

bench() { # name duration
  "$RK" bench --addr "$H1" --workload b --rate "$RATE" --duration "$2" --keys "$KEYS" \
    --value-size "$VALUE_SIZE" --distribution uniform --preload never --out "$WORK/$1" >"$WORK/$1.out" 2>"$WORK/$1.err"
}

log "client load before the move: $RATE req/s for $BEFORE"
bench before "$BEFORE"

log "node 2 joins; the same load runs until it holds every range"
# Not through bench(): a background subshell would ignore the signal.
"$RK" bench --addr "$H1" --workload b --rate "$RATE" --duration 30m --keys "$KEYS" \
  --value-size "$VALUE_SIZE" --distribution uniform --preload never --out "$WORK/during" >"$WORK/during.out" 2>"$WORK/during.err" &
BP=$!
PIDS+=("$BP")
sleep 2
t0=$(date +%s.%N)
"$RK" serve --node-id n2 --http-addr "$H2" --gossip-addr "$G2" --data-dir "$WORK/n2" \
  --replicas 2 --join "$G1" >>"$WORK/n2.log" 2>&1 &
N2=$!
PIDS+=("$N2")
settled=0
for _ in $(seq 36000); do
  if curl -fsS "http://$H2/v1/cluster" 2>/dev/null | python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if s["settled"] and len(s["members"])==2 else 1)' 2>/dev/null; then
    settled=1; break
  fi
  sleep 0.1
done
MOVE_S=$(python3 -c "import time; print(round(time.time() - $t0, 2))")
[[ $settled == 1 ]] || die "node 2 did not settle within an hour"
kill -TERM "$BP"; wait "$BP" || true
MOVED=$(curl -fsS "http://$H2/metrics" | awk '/^ringkv_transfer_bytes_total /{print $2}')
MOVED=$(python3 -c "print(int(float('$MOVED')))")
MBPS=$(python3 -c "print(round($MOVED/1048576/$MOVE_S, 1))")

DATE=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
python3 - "$WORK" "$OUT/move-$DATE" <<EOF
import json, sys
work, out = sys.argv[1], sys.argv[2]
def rep(n): return json.load(open(f"{work}/{n}/report.json"))["summary"]
b, d = rep("before"), rep("during")
res = {"keys": $KEYS, "value_size": $VALUE_SIZE, "rate": $RATE, "transfer_rate": "$TRANSFER_RATE",
       "data_dir_bytes": $DATA_BYTES, "moved_bytes": $MOVED, "move_seconds": round($MOVE_S, 2),
       "moved_mib_per_second": $MBPS, "commit": "$COMMIT",
       "before": {k: b[k] for k in ("requests", "requests_per_second", "errors", "misses", "latency")},
       "during": {k: d[k] for k in ("requests", "requests_per_second", "errors", "misses", "latency")}}
json.dump(res, open(out + ".json", "w"), indent=2)
md = f"""# Moving ranges to a joining node ($DATE)

\`KEYS=$KEYS VALUE_SIZE=$VALUE_SIZE RATE=$RATE BEFORE=$BEFORE TRANSFER_RATE=$TRANSFER_RATE bench/move.sh\`, commit $COMMIT, 2 CPUs: node 1 alone
(N=2) holds the keys ({res['data_dir_bytes']/2**20:.0f}MiB data directory); node 2 joins and pulls every range from it.

| moved | time | throughput |
| ---: | ---: | ---: |
| {res['moved_bytes']/2**20:.0f}MiB | {res['move_seconds']}s | {res['moved_mib_per_second']}MiB/s |

Client load (\`ringkv bench --workload b --rate $RATE\`, uniform keys, sent to node 1):

| phase | requests | req/s | errors | 404s | p50 ms | p99 ms | max ms |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
"""
for name, s in (("before the move", b), ("during the move", d)):
    l = s["latency"]
    md += f"| {name} | {s['requests']} | {s['requests_per_second']:.0f} | {s['errors']} | {s['misses']} | {l['p50_ms']:.2f} | {l['p99_ms']:.2f} | {l['max_ms']:.1f} |\n"
open(out + ".md", "w").write(md)
print(md)
EOF
log "results: $OUT/move-$DATE.md"
