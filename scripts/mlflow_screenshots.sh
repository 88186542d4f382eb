#!/usr/bin/env bash
# Screenshots of the MLflow UI for a work dir (docs/img/mlflow-*.png), taken with headless
# Chromium (Debian package `chromium`): the experiments, a training command's runs, a seed's
# curves and a parent run's artifacts. Usage: bash scripts/mlflow_screenshots.sh WORK [PORT]
set -euo pipefail
WORK=${1:?usage: mlflow_screenshots.sh WORK_DIR [PORT]}
PORT=${2:-5077}
OUT=docs/img
VX=.venv/bin/videxperts
PY=.venv/bin/python
command -v chromium >/dev/null || { echo "needs chromium (apt-get install chromium)" >&2; exit 1; }
$VX ui --work-dir "$WORK" --port "$PORT" >/dev/null 2>&1 &
UI=$!
trap 'kill $UI 2>/dev/null || true' EXIT
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 1; done
# the demo's retrieval training command (parent and first seed) and its latest captioning seed
read -r EXP PARENT CEXP CSEED < <($PY - "$WORK" <<'PYEOF'
import sys
from mlflow.tracking import MlflowClient
from videxperts.training import tracking
c = MlflowClient(tracking.resolve_tracking_uri(sys.argv[1]))
def latest(name, kind):
    exp = c.get_experiment_by_name(name)
    runs = c.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])
    return exp.experiment_id, next(r for r in runs if r.data.tags.get(tracking.KIND_TAG) == kind).info.run_id
print(*latest("demo", "train"), *latest("demo-captioning", "seed"))
PYEOF
)
shot() {  # name, url fragment, window height
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="1500,${3:-950}" \
    --virtual-time-budget=90000 --run-all-compositor-stages-before-draw --screenshot="$OUT/mlflow-$1.png" \
    "http://127.0.0.1:$PORT/#/$2?workflowType=machine_learning" 2>/dev/null
}
mkdir -p "$OUT"
shot experiments "experiments"
shot runs "experiments/$EXP/runs"
shot seed-curves "experiments/$CEXP/runs/$CSEED/model-metrics" 4200
shot parent-results "experiments/$EXP/runs/$PARENT/artifacts/results.md"
ls -l "$OUT"/mlflow-*.png
