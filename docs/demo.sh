#!/usr/bin/env bash
# The quick-start demo: two agents on loopback, a 100 MB file copied from one to the other in
# passive then active mode with live progress, SHA-256 checked, agents stopped.
# Needs only Go: it builds both binaries into a temporary directory unless BIN points at them
# (`make demo` builds bin/ and sets BIN=bin).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
if [ -z "${BIN:-}" ]; then
  echo "== building ferry-agent and ferryctl"
  BIN="$work/bin"
  go build -o "$BIN/ferry-agent" ./agent/cmd/ferry-agent
  go build -o "$BIN/ferryctl" ./ctl/cmd/ferryctl
fi
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

mkdir -p "$work/a" "$work/b"
# Authentication is on: one token file for both agents (admin for ferryctl, peer for the agents
# calling each other), each agent presenting the peer token to the other.
umask 077
printf 'admin %s\npeer %s\n' "$("$BIN/ferry-agent" token)" "$("$BIN/ferry-agent" token)" >"$work/tokens"
awk '$1 == "peer" {print $2}' "$work/tokens" >"$work/peer.token"
export FERRY_TOKEN_FILE="$work/tokens"   # ferryctl uses the first (admin) line
auth=(--token-file "$work/tokens" --peer-token-file "$work/peer.token")
"$BIN/ferry-agent" --root "$work/a" --state-dir "$work/a-state" "${auth[@]}" --grpc-listen 127.0.0.1:17070 --ftp-listen 127.0.0.1:17021 \
  --passive-ports 17100-17149 >"$work/a.log" 2>&1 &
pids+=($!)
"$BIN/ferry-agent" --root "$work/b" --state-dir "$work/b-state" "${auth[@]}" --grpc-listen 127.0.0.1:17071 --ftp-listen 127.0.0.1:17022 \
  --passive-ports 17150-17199 >"$work/b.log" 2>&1 &
pids+=($!)
for log in "$work/a.log" "$work/b.log"; do
  for _ in $(seq 50); do grep -q "ferry-agent ready" "$log" && break; sleep 0.1; done
  grep -q "ferry-agent ready" "$log" || { echo "agent did not start:"; cat "$log"; exit 1; }
done

echo "== generating a 100 MB file on agent B"
head -c 100M /dev/urandom >"$work/b/big.bin"
want=$(sha256sum "$work/b/big.bin" | cut -d' ' -f1)

for mode in passive active; do
  echo "== agent A pulls agent://127.0.0.1:17071/big.bin in $mode mode"
  "$BIN/ferryctl" --agent 127.0.0.1:17070 copy agent://127.0.0.1:17071/big.bin "in/$mode/big.bin" --mode "$mode"
  got=$(sha256sum "$work/a/in/$mode/big.bin" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then echo "SHA-256 MISMATCH ($mode): $got != $want"; exit 1; fi
  echo "sha256 ok ($mode): $got"
done
echo "== the same pull as a pipeline runs it: -o json, one object per event, then the result"
"$BIN/ferryctl" --agent 127.0.0.1:17070 copy agent://127.0.0.1:17071/big.bin in/big.bin --mode active -o json >"$work/events.json"
tail -n 1 "$work/events.json" | cut -c1-200
grep -q '"event":"result","ok":true' "$work/events.json" || { echo "JSON result not ok"; exit 1; }
[ "$(sha256sum "$work/a/in/big.bin" | cut -d' ' -f1)" = "$want" ] || { echo "SHA-256 MISMATCH (json)"; exit 1; }
echo "== without a token the agent refuses the call"
if FERRY_TOKEN_FILE= "$BIN/ferryctl" --agent 127.0.0.1:17070 transfers list 2>"$work/noauth.err"; then
  echo "an unauthenticated call was accepted"; exit 1
fi
cat "$work/noauth.err"
echo "== transfers on agent A"
"$BIN/ferryctl" --agent 127.0.0.1:17070 transfers list
echo "demo ok"
