#!/usr/bin/env bash
# Scale the ringkv StatefulSet down safely: a StatefulSet removes the pods
# of the highest ordinals, so each of those first leaves the ring (its
# ranges are pulled by the nodes that gain them), and only once it has
# left is the StatefulSet scaled down past it and its volume claim, whose
# data ringkv will not serve again, deleted.
#
#   deploy/kubernetes/scale-down.sh [-n NAMESPACE] [-s STATEFULSET] [-p LOCAL_PORT] [-k] REPLICAS
#
# It runs on the operator's machine (the image has no shell for kubectl
# exec) with kubectl and the ringkv CLI: it reaches each leaving pod with
# kubectl port-forward on localhost:LOCAL_PORT (default 18080), so the
# pods' certificate must name localhost, and calls
# `ringkv cluster leave`, which waits until the node has left. The CLI
# reads RINGKV_TOKEN (an admin token of the auth file) and RINGKV_CACERT
# (the CA of the pods' certificate) from the environment.
#
#   -k               keep the volume claims of the pods removed
#   RINGKV           the ringkv CLI (default: ringkv on PATH)
#   RINGKV_SCHEME    https (default) or http, for pods without TLS
#   RINGKV_LEAVE_WAIT  how long one leave may take (default 30m)
#
# Exit 0 once the StatefulSet has REPLICAS pods and the others have left;
# 1 if a step fails (run it again: a pod that has already left is not
# asked again); 2 for bad usage.
set -euo pipefail

usage() {
  echo "usage: $0 [-n NAMESPACE] [-s STATEFULSET] [-p LOCAL_PORT] [-k] REPLICAS" >&2
  exit 2
}
die() {
  echo "scale-down.sh: $*" >&2
  exit 1
}

ns="" sts=ringkv port=18080 keep=""
while getopts "n:s:p:kh" opt; do
  case $opt in
    n) ns=$OPTARG ;;
    s) sts=$OPTARG ;;
    p) port=$OPTARG ;;
    k) keep=1 ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
target=$1
[[ $target =~ ^[1-9][0-9]*$ ]] || { echo "scale-down.sh: REPLICAS must be a number of at least 1, got '$target'" >&2; exit 2; }
[[ $port =~ ^[0-9]+$ ]] || { echo "scale-down.sh: -p wants a port, got '$port'" >&2; exit 2; }

kc=(kubectl)
[ -z "$ns" ] || kc+=(-n "$ns")
ringkv=${RINGKV:-ringkv}
addr="${RINGKV_SCHEME:-https}://localhost:$port"
command -v "${kc[0]}" >/dev/null || die "no kubectl on PATH"
command -v "$ringkv" >/dev/null || die "no ringkv CLI ($ringkv): build it with go build ./cmd/ringkv"

current=$("${kc[@]}" get statefulset "$sts" -o 'jsonpath={.spec.replicas}') || die "cannot read statefulset $sts"
[[ $current =~ ^[0-9]+$ ]] || die "statefulset $sts: replicas '$current'"
if (( target > current )); then
  echo "scale-down.sh: $sts has $current replicas, fewer than $target: scale up with kubectl scale" >&2
  exit 2
fi

pf=""
stop_forward() {
  if [ -n "$pf" ]; then
    kill "$pf" 2>/dev/null || true
    wait "$pf" 2>/dev/null || true
    pf=""
  fi
}
trap stop_forward EXIT

# leave_state prints the node's own leave progress ("left" once done).
leave_state() {
  "$ringkv" cluster status --json --addr "$addr" 2>/dev/null |
    sed -n 's/^  "leave": *"\(.*\)",\{0,1\}$/\1/p'
}

while (( current > target )); do
  ord=$((current - 1))
  pod="$sts-$ord"
  echo "--- $pod: leaving the ring"
  "${kc[@]}" port-forward "pod/$pod" "$port:8080" >/dev/null &
  pf=$!
  for ((i = 0; ; i++)); do
    if "$ringkv" cluster status --addr "$addr" >/dev/null 2>&1; then break; fi
    kill -0 "$pf" 2>/dev/null || die "kubectl port-forward to $pod ended"
    (( i < 120 )) || die "$pod does not answer at $addr through kubectl port-forward"
    sleep 0.5
  done
  if [ "$(leave_state)" = left ]; then
    echo "$pod has already left"
  else
    "$ringkv" cluster leave --addr "$addr" --wait "${RINGKV_LEAVE_WAIT:-30m}" ||
      die "$pod has not left; the StatefulSet is left at $current replicas"
  fi
  stop_forward
  echo "--- $pod: has left; scaling $sts to $ord"
  "${kc[@]}" scale statefulset "$sts" --replicas="$ord"
  "${kc[@]}" wait --for=delete "pod/$pod" --timeout=5m
  if [ -z "$keep" ]; then
    "${kc[@]}" delete pvc "data-$pod" --wait=false
  fi
  current=$ord
done
echo "$sts has $current replicas"
