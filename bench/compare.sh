#!/usr/bin/env bash
# compare.sh: ringkv against its yardsticks, with wrk.
#
# Builds ringkv (./cmd/ringkv), bench/baseline (fasthttp straight onto
# Pebble), bench/baseline/const (fasthttp answering a constant 100-byte body)
# and bench/cmd/preload into a temp dir, installs wrk if missing, then runs
# ROUNDS rounds; each round visits every target (the order rotates from
# round to round so that drift on a shared machine spreads over all targets):
#
#   start the server on a fresh data dir, preload KEYS keys,
#   wrk -t$THREADS -c$CONNS -d$DURATION -s bench/wrk/get.lua,
#   wrk ... -s bench/wrk/put.lua (fsync on: --sync=true),   (not for const)
#   stop the server.
#
# For every wrk run it records requests/s, p50, p99, and the server's CPU
# time per request (utime+stime from /proc/PID/stat before and after the
# run). It prints medians and the ratios ringkv/baseline and ringkv/const,
# and writes them to $OUT/compare-<date>.json and $OUT/compare-<date>.md.
#
# Environment (defaults):
#   DURATION=10s ROUNDS=3 KEYS=100000 VALUE_SIZE=100 CONNS=64 THREADS=1
#   TARGETS="ringkv baseline const"   any subset, e.g. "baseline const"
#   PIN=auto      auto: pin only with 4+ CPUs (server on the first half,
#                 wrk and preload on the second); 1: always pin, server on
#                 SERVER_CPUS and wrk on WRK_CPUS (default 0 and 1); 0: never.
#                 On 2 CPUs, pinning leaves wrk one core, and one wrk thread
#                 tops out (~40k req/s here) below what the yardsticks serve,
#                 so the req/s ratios would measure wrk, not the servers.
#   OUT=bench/results
#   RINGKV_ADDR=127.0.0.1:18080 BASELINE_ADDR=127.0.0.1:18090 CONST_ADDR=127.0.0.1:18091
#   RINGKV_GOSSIP_ADDR=127.0.0.1:17946 (passed to ringkv as the environment variable)
#   RINGKV_ARGS=""  extra flags for `ringkv serve`
#   KEEP=0        1 keeps the temp dir (binaries, server logs, raw wrk output)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
KEYS=${KEYS:-100000}
VALUE_SIZE=${VALUE_SIZE:-100}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
TARGETS=${TARGETS:-ringkv baseline const}
PIN=${PIN:-auto}
OUT=${OUT:-bench/results}
RINGKV_ADDR=${RINGKV_ADDR:-127.0.0.1:18080}
BASELINE_ADDR=${BASELINE_ADDR:-127.0.0.1:18090}
CONST_ADDR=${CONST_ADDR:-127.0.0.1:18091}
RINGKV_GOSSIP_ADDR=${RINGKV_GOSSIP_ADDR:-127.0.0.1:17946}
RINGKV_ARGS=${RINGKV_ARGS:-}
KEEP=${KEEP:-0}
SHUFFLE=${SHUFFLE:-0}
export KEYS VALUE_SIZE SHUFFLE # read by the wrk scripts and preload

die() {
	echo "compare.sh: $*" >&2
	exit 1
}
log() { echo "== $*" >&2; }

[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || die "ROUNDS must be 1..99, got '$ROUNDS'"
[[ $KEYS =~ ^[1-9][0-9]*$ ]] || die "KEYS must be a positive integer, got '$KEYS'"
case $DURATION in
[0-9]*s) DUR_S=${DURATION%s} ;;
[0-9]*m) DUR_S=$((${DURATION%m} * 60)) ;;
*) DUR_S=$DURATION ;;
esac
[[ $DUR_S =~ ^[1-9][0-9]*$ ]] || die "DURATION must be like 10s or 1m, got '$DURATION'"
[[ $PIN == auto || $PIN == 0 || $PIN == 1 ]] || die "PIN must be auto, 0 or 1, got '$PIN'"
read -r -a TARGET_LIST <<<"$TARGETS"
for t in "${TARGET_LIST[@]}"; do
	case $t in ringkv | baseline | const) ;; *) die "unknown target '$t' in TARGETS" ;; esac
done
((${#TARGET_LIST[@]} > 0)) || die "TARGETS is empty"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ringkv-compare.XXXXXX")
BIN=$WORK/bin
SERVER_PID=

# alive PID: the process exists and is not a zombie.
alive() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	[[ ${s:0:1} != Z ]]
}

stop_server() {
	[[ -n $SERVER_PID ]] || return 0
	kill -TERM "$SERVER_PID" 2>/dev/null || true
	local i
	for ((i = 0; i < 150; i++)); do
		alive "$SERVER_PID" || break
		sleep 0.1
	done
	if alive "$SERVER_PID"; then
		echo "compare.sh: server $SERVER_PID ignored SIGTERM for 15s, killing it" >&2
		kill -KILL "$SERVER_PID" 2>/dev/null || true
	fi
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
}

cleanup() {
	stop_server
	if [[ $KEEP == 1 ]]; then
		echo "compare.sh: kept $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build -------------------------------------------------------------------
pkgs=(./bench/baseline ./bench/baseline/const ./bench/cmd/preload)
[[ " $TARGETS " == *" ringkv "* ]] && pkgs+=(./cmd/ringkv)
log "building ${pkgs[*]}"
mkdir -p "$BIN"
go build -o "$BIN/" "${pkgs[@]}" ||
	die "build failed (to compare the yardsticks only: TARGETS=\"baseline const\")"

if ! command -v wrk >/dev/null; then
	log "installing wrk"
	sudo=()
	[[ $(id -u) == 0 ]] || sudo=(sudo)
	"${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y wrk
fi
command -v wrk >/dev/null || die "wrk not found"

# --- pinning -----------------------------------------------------------------
NCPU=$(nproc)
SERVER_PIN=()
WRK_PIN=()
if [[ $PIN == 1 || ($PIN == auto && $NCPU -ge 4) ]]; then
	command -v taskset >/dev/null || die "PIN=$PIN needs taskset (util-linux)"
	if ((NCPU >= 4)); then
		SERVER_CPUS=${SERVER_CPUS:-0-$((NCPU / 2 - 1))}
		WRK_CPUS=${WRK_CPUS:-$((NCPU / 2))-$((NCPU - 1))}
	else
		SERVER_CPUS=${SERVER_CPUS:-0}
		WRK_CPUS=${WRK_CPUS:-1}
	fi
	SERVER_PIN=(taskset -c "$SERVER_CPUS")
	WRK_PIN=(taskset -c "$WRK_CPUS")
	PINNING="server on CPUs $SERVER_CPUS (Go sizes GOMAXPROCS to them), wrk and preload on CPUs $WRK_CPUS"
else
	PINNING="none (PIN=$PIN, $NCPU CPUs): server, wrk and preload share all CPUs"
fi
CLK_TCK=$(getconf CLK_TCK)

# --- servers -----------------------------------------------------------------
addr_of() {
	case $1 in
	ringkv) echo "$RINGKV_ADDR" ;;
	baseline) echo "$BASELINE_ADDR" ;;
	const) echo "$CONST_ADDR" ;;
	esac
}

# listening ADDR: something accepts TCP connections on ADDR.
listening() {
	(exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null
}

# start_server TARGET ROUND: starts TARGET on a fresh data dir, sets SERVER_PID.
start_server() {
	local t=$1 r=$2 addr dir logf i cmd
	addr=$(addr_of "$t")
	dir=$WORK/data-$t-$r
	logf=$WORK/server-$t-$r.log
	listening "$addr" && die "something is already listening on $addr (set ${t^^}_ADDR)"
	case $t in
	ringkv)
		# shellcheck disable=SC2206 # RINGKV_ARGS is split on purpose
		cmd=("$BIN/ringkv" serve --http-addr "$addr" --data-dir "$dir" --sync=true $RINGKV_ARGS)
		;;
	baseline) cmd=("$BIN/baseline" --addr "$addr" --data-dir "$dir" --sync=true) ;;
	const) cmd=("$BIN/const" --addr "$addr") ;;
	esac
	# Run from the temp dir (no stray .env), without NODE_ADDRESS.
	(
		cd "$WORK"
		unset NODE_ADDRESS
		export RINGKV_GOSSIP_ADDR
		exec ${SERVER_PIN[@]+"${SERVER_PIN[@]}"} "${cmd[@]}"
	) >"$logf" 2>&1 &
	SERVER_PID=$!
	for ((i = 0; i < 300; i++)); do
		listening "$addr" && return 0
		alive "$SERVER_PID" || break
		sleep 0.1
	done
	tail -20 "$logf" >&2 || true
	die "$t did not start listening on $addr within 30s"
}

# cpu_ticks PID: utime+stime (fields 14 and 15 of /proc/PID/stat), in clock ticks.
cpu_ticks() {
	local s f
	s=$(<"/proc/$1/stat")
	s=${s##*) } # fields from 3 on; comm (field 2) may hold spaces
	read -r -a f <<<"$s"
	echo $((f[11] + f[12]))
}

RUNS=$WORK/runs.tsv
: >"$RUNS"
WARNINGS=()
BAD=0 # runs with errors or non-2xx answers

# bench TARGET ROUND WORKLOAD: one wrk run against the running server.
bench() {
	local t=$1 r=$2 w=$3 addr before after out line kv cpu load
	addr=$(addr_of "$t")
	read -r load _ </proc/loadavg # other users of the machine skew every figure
	before=$(cpu_ticks "$SERVER_PID")
	out=$(timeout -k 5 $((DUR_S + 60)) ${WRK_PIN[@]+"${WRK_PIN[@]}"} \
		wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s "$ROOT/bench/wrk/$w.lua" "http://$addr") ||
		die "wrk failed against $t ($w, round $r): $out"
	after=$(cpu_ticks "$SERVER_PID")
	printf '%s\n' "$out" >"$WORK/wrk-$t-$w-$r.txt"
	line=$(grep '^RESULT ' <<<"$out" | tail -n 1) || die "no RESULT line from wrk: $out"
	local requests=0 duration_us=0 rps=0 p50_us=0 p99_us=0 errors=0 non2xx=0
	for kv in ${line#RESULT }; do
		case ${kv%%=*} in
		requests | duration_us | rps | p50_us | p99_us | errors | non2xx) printf -v "${kv%%=*}" '%s' "${kv#*=}" ;;
		esac
	done
	((requests > 0)) || die "wrk made no requests against $t ($w, round $r)"
	cpu=$(awk -v d=$((after - before)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.2f", d * 1e6 / hz / n }')
	if ((errors > 0 || non2xx > 0)); then
		WARNINGS+=("$t $w round $r: errors=$errors non2xx=$non2xx")
		BAD=$((BAD + 1))
		echo "WARNING: $t $w round $r: errors=$errors non2xx=$non2xx" >&2
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
		"$r" "$t" "$w" "$requests" "$duration_us" "$rps" "$p50_us" "$p99_us" "$errors" "$non2xx" "$cpu" "$load" >>"$RUNS"
	printf '   %-8s %-3s round %d: %8.0f req/s %7s us CPU/req  p50 %6d us  p99 %7d us  (load %s)\n' \
		"$t" "$w" "$r" "$rps" "$cpu" "$p50_us" "$p99_us" "$load" >&2
}

# --- rounds ------------------------------------------------------------------
log "KEYS=$KEYS VALUE_SIZE=$VALUE_SIZE SHUFFLE=$SHUFFLE DURATION=$DURATION ROUNDS=$ROUNDS wrk -t$THREADS -c$CONNS; pinning: $PINNING"
n=${#TARGET_LIST[@]}
for ((r = 1; r <= ROUNDS; r++)); do
	for ((i = 0; i < n; i++)); do
		t=${TARGET_LIST[$(((i + r - 1) % n))]}
		log "round $r/$ROUNDS: $t"
		start_server "$t" "$r"
		if [[ $t != const ]]; then
			timeout -k 5 600 ${WRK_PIN[@]+"${WRK_PIN[@]}"} "$BIN/preload" --addr "$(addr_of "$t")" \
				--keys "$KEYS" --value-size "$VALUE_SIZE" --concurrency "$CONNS" --wait 30s >&2 ||
				die "preload of $t failed"
		fi
		bench "$t" "$r" get
		[[ $t == const ]] || bench "$t" "$r" put
		stop_server
		rm -rf "$WORK/data-$t-$r"
	done
done

# --- report ------------------------------------------------------------------
# median TARGET WORKLOAD COLUMN (1-based in runs.tsv), or "nan".
median() {
	awk -F'\t' -v t="$1" -v w="$2" -v c="$3" '$2 == t && $3 == w { print $c }' "$RUNS" | sort -g |
		awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b + 0 == 0) print "nan"; else printf "%.3f", a / b }'
}
jnum() { if [[ $1 == nan ]]; then echo null; else echo "$1"; fi; }

declare -A M
ROWS=()
for t in ringkv baseline const; do
	[[ " $TARGETS " == *" $t "* ]] || continue
	for w in get put; do
		[[ $t == const && $w == put ]] && continue
		M[$t.$w.rps]=$(median "$t" "$w" 6)
		M[$t.$w.cpu]=$(median "$t" "$w" 11)
		M[$t.$w.p50]=$(median "$t" "$w" 7)
		M[$t.$w.p99]=$(median "$t" "$w" 8)
		ROWS+=("$t.$w")
	done
done
m() { echo "${M[$1]:-nan}"; }
RATIOS=(
	"ringkv/baseline GET|$(ratio "$(m ringkv.get.rps)" "$(m baseline.get.rps)")|$(ratio "$(m ringkv.get.cpu)" "$(m baseline.get.cpu)")"
	"ringkv/baseline PUT|$(ratio "$(m ringkv.put.rps)" "$(m baseline.put.rps)")|$(ratio "$(m ringkv.put.cpu)" "$(m baseline.put.cpu)")"
	"ringkv GET/const GET|$(ratio "$(m ringkv.get.rps)" "$(m const.get.rps)")|$(ratio "$(m ringkv.get.cpu)" "$(m const.get.cpu)")"
	"baseline GET/const GET|$(ratio "$(m baseline.get.rps)" "$(m const.get.rps)")|$(ratio "$(m baseline.get.cpu)" "$(m const.get.cpu)")"
)

MAXLOAD=$(awk -F'\t' '$12 > m { m = $12 } END { printf "%.2f", m }' "$RUNS")
BUSY=$(awk -v l="$MAXLOAD" -v n="$NCPU" 'BEGIN { print (l > n * 1.75) ? 1 : 0 }')
if [[ $BUSY == 1 ]]; then
	WARNINGS+=("1-minute load average reached $MAXLOAD on $NCPU CPUs before a run: the machine was busy, figures are noisy")
fi
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $COMMIT != unknown && -n $(git -C "$ROOT" status --porcelain 2>/dev/null) ]]; then COMMIT+="-dirty"; fi
SETUP="KEYS=$KEYS VALUE_SIZE=$VALUE_SIZE SHUFFLE=$SHUFFLE DURATION=$DURATION ROUNDS=$ROUNDS wrk -t$THREADS -c$CONNS, PUT with fsync (--sync=true), $NCPU CPUs, $(go env GOVERSION), commit $COMMIT, highest 1-min load average before a run $MAXLOAD"

table() {
	echo "| target | workload | req/s | CPU us/req | p50 us | p99 us |"
	echo "| --- | --- | ---: | ---: | ---: | ---: |"
	local row
	for row in "${ROWS[@]}"; do
		printf '| %s | %s | %.0f | %.2f | %.0f | %.0f |\n' "${row%.*}" "${row#*.}" \
			"$(m "$row.rps")" "$(m "$row.cpu")" "$(m "$row.p50")" "$(m "$row.p99")"
	done
	echo
	echo "| ratio | req/s | CPU us/req |"
	echo "| --- | ---: | ---: |"
	local x
	for x in "${RATIOS[@]}"; do
		IFS='|' read -r name a b <<<"$x"
		[[ $a == nan && $b == nan ]] && continue
		echo "| $name | $a | $b |"
	done
}

mkdir -p "$OUT"
MD=$OUT/compare-$STAMP.md
JSON=$OUT/compare-$STAMP.json
{
	echo "# ringkv vs baseline ($STAMP)"
	echo
	echo "$SETUP."
	echo "Pinning: $PINNING."
	echo "Medians of $ROUNDS rounds; CPU us/req is the server's utime+stime per request."
	echo
	table
	if ((${#WARNINGS[@]} > 0)); then
		echo
		echo "Warnings:"
		printf -- '- %s\n' "${WARNINGS[@]}"
	fi
} >"$MD"

{
	echo "{"
	printf '  "date": "%s",\n  "commit": "%s",\n  "go": "%s",\n  "cpus": %d,\n  "max_loadavg_1m": %s,\n' \
		"$STAMP" "$COMMIT" "$(go env GOVERSION)" "$NCPU" "$MAXLOAD"
	printf '  "params": {"keys": %d, "value_size": %d, "duration": "%s", "rounds": %d, "threads": %d, "connections": %d, "sync": true},\n' \
		"$KEYS" "$VALUE_SIZE" "$DURATION" "$ROUNDS" "$THREADS" "$CONNS"
	printf '  "pinning": "%s",\n' "$PINNING"
	echo '  "median": {'
	sep=""
	for row in "${ROWS[@]}"; do
		printf '%s    "%s": {"rps": %s, "cpu_us_per_req": %s, "p50_us": %s, "p99_us": %s}' "$sep" "$row" \
			"$(jnum "$(m "$row.rps")")" "$(jnum "$(m "$row.cpu")")" "$(jnum "$(m "$row.p50")")" "$(jnum "$(m "$row.p99")")"
		sep=$',\n'
	done
	printf '\n  },\n  "ratios": {\n'
	sep=""
	for x in "${RATIOS[@]}"; do
		IFS='|' read -r name a b <<<"$x"
		[[ $a == nan && $b == nan ]] && continue
		printf '%s    "%s": {"rps": %s, "cpu_us_per_req": %s}' "$sep" "$name" "$(jnum "$a")" "$(jnum "$b")"
		sep=$',\n'
	done
	printf '\n  },\n  "runs": [\n'
	awk -F'\t' 'BEGIN { sep = "" } {
		printf "%s    {\"round\": %d, \"target\": \"%s\", \"workload\": \"%s\", \"requests\": %d, \"duration_us\": %d, \"rps\": %s, \"p50_us\": %d, \"p99_us\": %d, \"errors\": %d, \"non2xx\": %d, \"cpu_us_per_req\": %s, \"loadavg_1m\": %s}", sep, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12
		sep = ",\n"
	}' "$RUNS"
	printf '\n  ],\n  "warnings": ['
	sep=""
	for x in ${WARNINGS[@]+"${WARNINGS[@]}"}; do
		printf '%s"%s"' "$sep" "$x"
		sep=", "
	done
	printf ']\n}\n'
} >"$JSON"

echo
echo "$SETUP"
echo "pinning: $PINNING"
echo "medians of $ROUNDS rounds"
echo
table
echo
echo "wrote $JSON and $MD"
for x in ${WARNINGS[@]+"${WARNINGS[@]}"}; do
	echo "WARNING: $x" >&2
done
if ((BAD > 0)); then
	echo "compare.sh: $BAD run(s) had errors or non-2xx answers" >&2
	exit 3
fi
