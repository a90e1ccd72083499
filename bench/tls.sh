#!/usr/bin/env bash
# tls.sh: one node's GET and PUT over HTTPS, and over HTTPS with bearer
# token auth, against plain HTTP, with wrk.
#
# Builds ringkv and bench/cmd/preload, makes a CA and a node certificate
# with openssl, preloads KEYS keys, then runs, alternating on the same data
# directory (the node restarted between runs, plain or with
# --tls-cert-file, and with --auth-file too): GET plain, GET TLS, GET
# TLS+token, PUT plain, PUT TLS, PUT TLS+token, each
# wrk -t1 -c$CONNS -d$DURATION (keep-alive: the handshake is paid once per
# connection). Prints requests/s and p99 of each and the ratios to plain.
#
# Environment (defaults): DURATION=10s KEYS=100000 CONNS=64 ADDR=127.0.0.1:18080
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DURATION=${DURATION:-10s}
KEYS=${KEYS:-100000}
CONNS=${CONNS:-64}
ADDR=${ADDR:-127.0.0.1:18080}
export KEYS
T=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$T"' EXIT
go build -o "$T/ringkv" ./cmd/ringkv
go build -o "$T/preload" ./bench/cmd/preload
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
	-keyout "$T/ca.key" -out "$T/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=n1 \
	-keyout "$T/n1.key" -out "$T/n1.csr" 2>/dev/null
printf 'subjectAltName=DNS:n1,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$T/ext"
openssl x509 -req -in "$T/n1.csr" -CA "$T/ca.crt" -CAkey "$T/ca.key" -CAcreateserial -days 1 \
	-extfile "$T/ext" -out "$T/n1.crt" 2>/dev/null
TOKEN_VALUE=$(openssl rand -hex 32)
printf 'admin sha256:%s\n' "$(printf %s "$TOKEN_VALUE" | sha256sum | cut -d' ' -f1)" >"$T/auth"
PID=
start() { # $1: plain|tls|auth
	local args=(serve --data-dir "$T/data" --http-addr "$ADDR" --gossip-addr 127.0.0.1:0 --node-id n1)
	local scheme=http
	if [ "$1" != plain ]; then
		args+=(--tls-cert-file "$T/n1.crt" --tls-key-file "$T/n1.key")
		scheme=https
	fi
	if [ "$1" = auth ]; then
		args+=(--auth-file "$T/auth")
	fi
	"$T/ringkv" "${args[@]}" >>"$T/node.log" 2>&1 &
	PID=$!
	for _ in $(seq 100); do
		curl -fsk "$scheme://$ADDR/healthz" >/dev/null 2>&1 && return
		sleep 0.1
	done
	echo "node did not start" >&2
	cat "$T/node.log" >&2
	exit 1
}
stop() { kill "$PID"; wait "$PID" || true; }
# cputicks: the user+system CPU of process $1, in clock ticks.
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
start plain
"$T/preload" --addr "$ADDR" --keys "$KEYS" >/dev/null
stop
declare -A RPS P99
for run in get:plain get:tls get:auth put:plain put:tls put:auth; do
	wl=${run%%:*} mode=${run##*:}
	start "$mode"
	scheme=https tok=
	[ "$mode" = plain ] && scheme=http
	[ "$mode" = auth ] && tok=$TOKEN_VALUE
	c0=$(cputicks "$PID")
	out=$(TOKEN=$tok wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "bench/wrk/$wl.lua" "$scheme://$ADDR")
	RPS[$run]=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
	P99[$run]=$(awk '$1 == "99%" {print $2}' <<<"$out")
	c1=$(cputicks "$PID")
	n=$(awk '/requests in/ {print $1}' <<<"$out")
	cpu=$(awk -v d=$((c1 - c0)) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", d / hz * 1e6 / n}')
	echo "$wl $mode: ${RPS[$run]} req/s, p99 ${P99[$run]}, server CPU ${cpu} us/req"
	stop
done
for wl in get put; do
	awk -v a="${RPS[$wl:tls]}" -v c="${RPS[$wl:auth]}" -v b="${RPS[$wl:plain]}" -v w="$wl" 'BEGIN {printf "%s TLS/plain: %.2f, TLS+token/plain: %.2f\n", w, a / b, c / b}'
done
