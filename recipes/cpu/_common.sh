# Shared set-up of the CPU launch scripts (sourced, not run).
#   TOOLMASTER_OUT          output root (default: <repo>/outputs/cpu_tiny)
#   TOOLMASTER_SHARED_DATA  benchmark data (default: the samples in <repo>/data_prep/samples)
#   PYTHON                  interpreter (default: <repo>/.venv/bin/python if present, else python)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export TOOLMASTER_OUT=${TOOLMASTER_OUT:-$REPO/outputs/cpu_tiny}
SHARED_DATA=${TOOLMASTER_SHARED_DATA:-$REPO/data_prep/samples}
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PYTHON=$REPO/.venv/bin/python; else PYTHON=python; fi
fi
export PATH="$(dirname "$PYTHON"):$PATH"
export VERL_PLATFORM=cpu
export TOKENIZERS_PARALLELISM=false
export RAY_DEDUP_LOGS=0
mkdir -p "$TOOLMASTER_OUT"

stage() { echo; echo "=== [$(date +%H:%M:%S)] $*"; }

die() { echo "error: $*" >&2; exit 1; }

ensure_tiny_model() {
  if [ ! -f "$TOOLMASTER_OUT/model/config.json" ]; then
    stage "building the tiny model -> $TOOLMASTER_OUT/model"
    "$PYTHON" -m verl_toolmaster.tiny --out "$TOOLMASTER_OUT/model" || exit 1
  fi
}

ensure_toolhop_data() {
  [ -d "$SHARED_DATA/toolhop" ] || die "ToolHop data not found at $SHARED_DATA/toolhop; set TOOLMASTER_SHARED_DATA"
  if [ ! -f "$TOOLMASTER_OUT/data/toolhop.parquet" ]; then
    stage "preparing ToolHop RL + SFT rows -> $TOOLMASTER_OUT/data"
    "$PYTHON" "$REPO/data_prep/prepare.py" --dataset toolhop --input "$SHARED_DATA/toolhop" \
      --output "$TOOLMASTER_OUT/data/toolhop.parquet" --sft-output "$TOOLMASTER_OUT/data/toolhop_sft.parquet" --no-progress
  fi
}
