#!/usr/bin/env bash
# A large load beside a running stream, measured as a user meets it (not part of `make bench`:
# it writes a 493 MB checkpoint). waferd with an embedded wse3 board loads a small model, starts
# a 2,000-token greedy stream on it with waferctl, and meanwhile loads mkmodel's `medium` preset
# (123M parameters, float32, 493 MB) onto the same board. Prints the large load's time as
# waferd logs it and the longest gap between two of the stream's chunks; then the same load
# alone. Usage: bench/load_beside_stream.sh [BUILD_DIR]
set -euo pipefail
bin=${1:-build}/bin
work=$(mktemp -d /tmp/load-beside-stream.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$bin/wafer-mkmodel" --out "$work/small" --preset small --dtype f32 >/dev/null
"$bin/wafer-mkmodel" --out "$work/medium" --preset medium --dtype f32 >/dev/null
for port in 17421 17422; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "load_beside_stream: port $port is in use; stop what listens there first" >&2
    exit 1
  fi
done
cat >"$work/waferd.yaml" <<YAML
job_endpoint: tcp://127.0.0.1:17421
admin_endpoint: tcp://127.0.0.1:17422
metrics_address: ""
store: {path: memory}  # the store's cost is measured by waferd-bench (s)
boards:
  - endpoint: inproc://board0
    preset: wse3
YAML

run() {  # run LABEL STREAM(0|1)
  local log="$work/$1.log" ts="$work/$1.ts"
  "$bin/waferd" --config "$work/waferd.yaml" 2>"$log" &
  local pid=$!
  for _ in $(seq 1 100); do grep -q "admin on" "$log" && break; sleep 0.1; done
  local ctl="$bin/waferctl --endpoint tcp://127.0.0.1:17421 --admin-endpoint tcp://127.0.0.1:17422"
  $ctl --timeout-ms 60000 load "$work/small" --name a --slots 8 >/dev/null 2>&1
  local spid=""
  if [ "$2" = 1 ]; then
    # One line per message as it arrives, stamped on arrival.
    $ctl --timeout-ms 120000 submit --model a --tokens 1,2,3 --max-tokens 2000 \
      --temperature 0 --json 2>/dev/null | perl -MTime::HiRes=time -ne '$|=1; print time(), "\n"' >"$ts" &
    spid=$!
    sleep 0.1
  fi
  $ctl --timeout-ms 120000 load "$work/medium" --name b --slots 64 >/dev/null 2>"$work/$1.load.err" ||
    echo "$1: load failed: $(tail -c 300 "$work/$1.load.err")"
  [ -n "$spid" ] && wait "$spid"
  kill -TERM "$pid"
  wait "$pid" || true
  local ready
  ready=$(sed -n 's/.*model b ready on board 0 (\([0-9.]* s\).*/\1/p' "$log")
  if [ "$2" = 1 ]; then
    echo "$1: load ${ready:-FAILED}; stream: $(wc -l <"$ts") messages, longest gap" \
      "$(perl -ne 'chomp; if (defined $p) { $g = $_ - $p; $m = $g if $g > $m } $p = $_; END { printf "%.3f s", $m }' "$ts")"
  else
    echo "$1: load ${ready:-FAILED}"
  fi
}

run "beside a stream" 1
run "alone" 0
