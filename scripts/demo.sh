#!/usr/bin/env bash
# `make demo`: the whole pipeline on embedded defaults (local Ray, local Zarr, sqlite MLflow),
# everything under one work directory, for the three model families:
#   retrieval (CE), dense video captioning (segment critic + BMHRL), image-text matching (DCPG).
# Re-running resumes: finished clips, images and store entries are skipped.
set -euo pipefail
WORK=${1:-work}
VIDEOS=${2:-200}
SEEDS=${3:-0,1,2}
VX=.venv/bin/videxperts
PY=.venv/bin/python
mkdir -p "$WORK"

echo "== 1/7 synthetic video-text dataset: $VIDEOS clips -> $WORK/data"
$VX data synth --out "$WORK/data" --videos "$VIDEOS" --seed 0
$VX data info "$WORK/data"

# the 8 video experts CE trains on (the profile's 9th, regions, is for image-text matching: step 7)
echo "== 2/7 extract the 8 video experts (profile demo) -> $WORK/store.zarr"
$VX extract "$WORK/data" --out "$WORK/store.zarr" --profile demo --experts scene,inst,r2p1d,i3d,audio,face,ocr,speech \
  --work-dir "$WORK" --experiment demo
$VX store info "$WORK/store.zarr"

echo "== 3/7 retrieval: train CE on the store (seeds $SEEDS), tracked in $WORK/mlflow.db"
$VX train --config demo_ce --store "$WORK/store.zarr" \
  --work-dir "$WORK" --experiment demo --seeds "$SEEDS"

echo "== 4/7 report (text->video, mean (std) over seeds)"
$VX report --experiment demo --work-dir "$WORK"

echo "== 5/7 dense captioning: 24 clips with timed events -> I3D + VGGish -> $WORK/dense.zarr"
$VX data synth --timed --out "$WORK/dense" --videos 24 --max-seconds 20 --seed 0
$VX extract "$WORK/dense" --out "$WORK/dense.zarr" --profile demo --experts i3d,audio \
  --work-dir "$WORK" --experiment demo-captioning

echo "== 6/7 dense captioning: the segment critic, then BMHRL loading it by run id"
CRITIC=$($VX train --config demo_critic --store "$WORK/dense.zarr" --data "$WORK/dense" \
  --work-dir "$WORK" --experiment demo-captioning --seeds 0 --json |
  $PY -c 'import json, sys; print(json.load(sys.stdin)["seeds"]["0"]["run_id"])')
echo "segment critic: run $CRITIC"
$VX train --config demo_bmhrl --store "$WORK/dense.zarr" --data "$WORK/dense" \
  --work-dir "$WORK" --experiment demo-captioning --seeds 0 --set "model.critic.checkpoint=$CRITIC"

echo "== 7/7 image-text matching: 200 keyframe images -> 36 regions each -> DCPG"
$VX data synth --out "$WORK/images" --images 200 --test-images 20 --seed 0
$VX extract "$WORK/images" --out "$WORK/images.zarr" --profile demo --experts regions \
  --work-dir "$WORK" --experiment demo-matching
$VX train --config demo_dcpg --store "$WORK/images.zarr" --data "$WORK/images" \
  --work-dir "$WORK" --experiment demo-matching --seeds 0
echo
echo "Browse the runs: $VX ui --work-dir $WORK   (it prints the address to open)"
