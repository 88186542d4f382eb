#!/usr/bin/env bash
# The "importance of experts" study on the demo store: scene only, then one expert added at a
# time, 3 seeds each; prints the report table as markdown on stdout (paste it into
# docs/RESULTS.md by hand: the script writes nothing under docs/). Needs `make demo` first.
set -euo pipefail
WORK=${1:-work}
SEEDS=${2:-0,1,2}
VX=.venv/bin/videxperts
for cfg in configs/train/importance/*.yaml; do
  echo "== $cfg"
  $VX train --config "$cfg" --store "$WORK/store.zarr" --data "$WORK/data" --work-dir "$WORK" \
    --experiment importance --seeds "$SEEDS"
done
$VX report --experiment importance --work-dir "$WORK" --markdown
