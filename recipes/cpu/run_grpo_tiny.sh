#!/usr/bin/env bash
# A few GRPO steps of verl's main_ppo with the ToolMaster rollout (toolmaster_agent, live sandboxed ToolHop tools,
# toolmaster reward) on the tiny model, on CPU. The README's main job.
#   bash recipes/cpu/run_grpo_tiny.sh [hydra overrides...]
# MODEL=<HF dir> starts from that model (e.g. an SFT checkpoint) instead of the freshly built tiny model;
# TRAIN_DATA=<RL parquet> trains on that instead of the ToolHop sample.
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
ensure_tiny_model
MODEL=${MODEL:-$TOOLMASTER_OUT/model}
if [ -z "${TRAIN_DATA:-}" ]; then
  ensure_toolhop_data
  TRAIN_DATA=$TOOLMASTER_OUT/data/toolhop.parquet
fi
stage "GRPO (verl main_ppo, toolmaster_agent, hfcpu rollout) from $MODEL"
"$PYTHON" -m verl.trainer.main_ppo --config-path "$REPO/recipes/cpu" --config-name grpo_tiny \
  actor_rollout_ref.model.path="$MODEL" \
  data.train_files="$TRAIN_DATA" data.val_files="$TRAIN_DATA" \
  trainer.default_local_dir="$TOOLMASTER_OUT/grpo_ckpt" "$@"
stage "GRPO done"
