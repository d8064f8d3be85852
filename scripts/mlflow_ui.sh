#!/usr/bin/env bash
# Browse the nnlab store in the MLflow UI. Binds to 127.0.0.1 (this machine only) unless
# NNLAB_UI_HOST says otherwise. Usage: scripts/mlflow_ui.sh [PORT]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
uri="${MLFLOW_TRACKING_URI:-sqlite:///$root/mlruns/mlflow.db}"
# No usage telemetry from the UI server either, unless the user chose (see README, Faults).
if [[ -z "${MLFLOW_DISABLE_TELEMETRY:-}" && -z "${DO_NOT_TRACK:-}" ]]; then
  export MLFLOW_DISABLE_TELEMETRY=true
fi
# MLflow 3 starts a job runner (a huey consumer and its worker processes, each importing
# MLflow) for its GenAI jobs; nnlab runs none, so the UI starts without it unless asked
# (nnlab.env.MLFLOW_SERVER_DEFAULTS, for the servers nnlab starts from Python).
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
exec "$root/.venv/bin/mlflow" ui --backend-store-uri "$uri" \
  --host "${NNLAB_UI_HOST:-127.0.0.1}" --port "${1:-5000}"
