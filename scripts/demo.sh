#!/usr/bin/env bash
# `make demo`: the whole pipeline as far as it exists, on embedded defaults under one work dir.
set -euo pipefail
WORK=${1:-work}
VIDEOS=${2:-200}
VX=.venv/bin/videxperts
mkdir -p "$WORK"
echo "== 1/1 synthetic dataset: $VIDEOS clips -> $WORK/data"
$VX data synth --out "$WORK/data" --videos "$VIDEOS" --seed 0
$VX data info "$WORK/data"
