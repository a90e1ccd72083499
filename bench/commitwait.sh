#!/usr/bin/env bash
# commitwait.sh BIN [LABEL]: what the clock commit wait costs. Starts a
# 3-node cluster of BIN on loopback (ports 19201-19203, gossip 19301-19303,
# fresh data dirs), sends `wrk -t1 -c64 -d10s` PUTs (bench/wrk/put.lua,
# 100k keys) to node 1, and prints req/s, latency, the servers' CPU time
# per request, and node 1's ringkv_commit_wait* and clock-offset metrics.
# Run it for two builds, alternating, to compare them.
set -u
BIN=$1; L=${2:-$1}; W=$(mktemp -d)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
$BIN serve --node-id n1 --http-addr 127.0.0.1:19201 --gossip-addr 127.0.0.1:19301 --data-dir $W/1 >$W/1.log 2>&1 & P1=$!
sleep 1
$BIN serve --node-id n2 --http-addr 127.0.0.1:19202 --gossip-addr 127.0.0.1:19302 --data-dir $W/2 --join 127.0.0.1:19301 >$W/2.log 2>&1 & P2=$!
$BIN serve --node-id n3 --http-addr 127.0.0.1:19203 --gossip-addr 127.0.0.1:19303 --data-dir $W/3 --join 127.0.0.1:19301 >$W/3.log 2>&1 & P3=$!
sleep 5
ticks() { for p in $P1 $P2 $P3; do awk '{print $14+$15}' /proc/$p/stat; done | paste -sd+ | bc; }
cpu0=$(ticks)
out=$(KEYS=100000 wrk -t1 -c64 -d10s -s bench/wrk/put.lua http://127.0.0.1:19201 2>&1)
cpu1=$(ticks)
reqs=$(echo "$out" | awk '/requests in/{print $1}')
hz=$(getconf CLK_TCK)
echo "$L: $(echo "$out" | grep -E 'Requests/sec|Latency|Non-2xx' | tr -s ' ' | paste -sd' ') cpu_us_per_req=$(echo "($cpu1-$cpu0)*1000000/$hz/$reqs" | bc -l | cut -c1-6)"
curl -s 127.0.0.1:19201/metrics | grep -E '^ringkv_commit_wait|^ringkv_clock_offset'
kill $P1 $P2 $P3; wait; rm -rf "$W"
