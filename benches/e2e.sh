#!/usr/bin/env bash
# End-to-end replay throughput and peak memory on ~1M and ~5M prediction
# events (8 features, 2 slice dimensions: the `stationary` stream of
# tests/scenarios/generate.py at a higher rate), from JSON Lines and from Avro
# container files (null and deflate codecs). Streams are cached in
# target/bench. Usage: bash benches/e2e.sh [1m|5m|all]
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"
cargo build --release --locked
bin=target/release/driftline
py=target/venv/bin/python
[ -x $py ] || python3 -m venv target/venv
$py -c 'import numpy' 2>/dev/null || $py -m pip install --quiet --disable-pip-version-check numpy
mkdir -p target/bench
for size in 1m 5m; do
  [ "$which" = all ] || [ "$which" = "$size" ] || continue
  rate=$([ "$size" = 1m ] && echo 11.5741 || echo 57.8704)
  dir=target/bench/$size
  if [ ! -f "$dir/stationary/predictions.jsonl" ]; then
    $py tests/scenarios/generate.py "$dir" --only stationary --rate "$rate" --hours 24 >/dev/null
  fi
  p=$dir/stationary/predictions.jsonl
  [ -f "$dir/p-null.avro" ] || $bin convert --kind predictions --codec null --input "$p" --output "$dir/p-null.avro" 2>/dev/null
  [ -f "$dir/p-deflate.avro" ] || $bin convert --kind predictions --codec deflate --input "$p" --output "$dir/p-deflate.avro" 2>/dev/null
  for input in "$p" "$dir/p-null.avro" "$dir/p-deflate.avro"; do
    # read once first: this VM reclaims page cache left cold (kdamond), and a
    # file read back from disk times the disk (sys time), not the replay
    cat "$input" > /dev/null
    for workers in 1 2; do
      out=$( { /usr/bin/time -f 'peak_rss_kb=%M user=%U sys=%S' $bin replay --predictions "$input" --output /dev/null --workers $workers; } 2>&1 )
      rate_line=$(echo "$out" | grep 'events read')
      rss=$(echo "$out" | grep -o 'peak_rss_kb=[0-9]*' | cut -d= -f2)
      cpu=$(echo "$out" | grep -o 'user=.*')
      echo "$size $(basename "$input") --workers $workers: ${rate_line#events read: } | peak RSS $(awk "BEGIN{printf \"%.1f\", $rss/1024}") MiB | $cpu"
    done
  done
done
