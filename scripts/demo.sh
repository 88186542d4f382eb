#!/usr/bin/env bash
# `make demo`: the whole pipeline on embedded defaults (local Ray, local Zarr, sqlite MLflow),
# everything under one work directory. Re-running resumes: finished steps are skipped.
set -euo pipefail
WORK=${1:-work}
VIDEOS=${2:-200}
SEEDS=${3:-0,1,2}
VX=.venv/bin/videxperts
mkdir -p "$WORK"

echo "== 1/4 synthetic dataset: $VIDEOS clips -> $WORK/data"
$VX data synth --out "$WORK/data" --videos "$VIDEOS" --seed 0
$VX data info "$WORK/data"

echo "== 2/4 extract every expert (profile demo) -> $WORK/store.zarr"
$VX extract "$WORK/data" --out "$WORK/store.zarr" --profile demo
$VX store info "$WORK/store.zarr"

echo "== 3/4 train CE on the store (seeds $SEEDS), tracked in $WORK/mlflow.db"
$VX train --config demo_ce --store "$WORK/store.zarr" --data "$WORK/data" \
  --work-dir "$WORK" --experiment demo --seeds "$SEEDS"

echo "== 4/4 report (text->video, mean (std) over seeds)"
$VX report --experiment demo --work-dir "$WORK"
echo
echo "Browse the runs: $VX ui --work-dir $WORK   (http://127.0.0.1:5000)"
