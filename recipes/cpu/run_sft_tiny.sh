#!/usr/bin/env bash
# SFT of the tiny model on multi-turn tool-calling trajectories with verl's sft_trainer, on CPU.
#   bash recipes/cpu/run_sft_tiny.sh [hydra overrides...]
# Builds the tiny model and the data if missing, trains, and leaves an HF checkpoint in
# $TOOLMASTER_OUT/sft_ckpt/global_step_N/huggingface (default TOOLMASTER_OUT: outputs/cpu_tiny).
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
ensure_tiny_model
ensure_toolhop_data
SFT_DATA=${SFT_DATA:-$TOOLMASTER_OUT/data/toolhop_sft.parquet}
stage "SFT (verl sft_trainer, 1 CPU rank) on $SFT_DATA"
torchrun --standalone --nproc_per_node=1 -m verl.trainer.sft_trainer \
  --config-path "$REPO/recipes/cpu" --config-name sft_tiny \
  model.path="$TOOLMASTER_OUT/model" data.train_files="$SFT_DATA" data.val_files="$SFT_DATA" \
  trainer.default_local_dir="$TOOLMASTER_OUT/sft_ckpt" "$@"
ckpt=$(ls -d "$TOOLMASTER_OUT"/sft_ckpt/global_step_*/huggingface 2>/dev/null | sort -V | tail -n 1)
[ -n "$ckpt" ] && [ -f "$ckpt/model.safetensors" ] || die "SFT finished but wrote no HF checkpoint under $TOOLMASTER_OUT/sft_ckpt"
stage "SFT checkpoint: $ckpt"
