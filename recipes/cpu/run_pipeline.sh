#!/usr/bin/env bash
# The whole ToolMaster pipeline on CPU with the tiny model, each stage through the same code a GPU run uses:
#   tiny model -> ToolHop data -> scripted-teacher SFT trajectories -> SFT (verl sft_trainer)
#   -> GRPO (verl main_ppo, toolmaster_agent on live sandboxed tools) -> evaluation before/after -> table.
#   bash recipes/cpu/run_pipeline.sh
# Env: TOOLMASTER_OUT (default outputs/cpu_tiny; rerun with a fresh one), TOOLMASTER_SHARED_DATA,
#   SFT_STEPS (default 10), GRPO_STEPS (default 3), SYNTH_PER_TASK (trajectories per gold trace, default 8).
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
SFT_STEPS=${SFT_STEPS:-10}
GRPO_STEPS=${GRPO_STEPS:-3}
SYNTH_PER_TASK=${SYNTH_PER_TASK:-8}
TIMES="$TOOLMASTER_OUT/pipeline_times.jsonl"
: > "$TIMES"
timed() {  # timed NAME CMD...: run a stage, append its wall time to $TIMES
  local name=$1; shift
  local t0=$EPOCHREALTIME
  "$@"
  awk -v n="$name" -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "{\"stage\": \"%s\", \"seconds\": %.1f}\n", n, b - a }' >> "$TIMES"
}
RL="$TOOLMASTER_OUT/data/toolhop.parquet"
SYNTH="$TOOLMASTER_OUT/data/toolhop_sft_synth.parquet"
eval_stage() {  # eval_stage NAME MODEL_DIR
  stage "evaluating $1 ($2) on the ToolHop rows"
  "$PYTHON" -m verl_toolmaster.eval --data "$RL" --policy hf --model "$2" --out "$TOOLMASTER_OUT/eval_$1" \
    --prompt-length 4096 --response-length 768
}

timed tiny_model ensure_tiny_model
timed prepare_data ensure_toolhop_data
stage "synthesizing trial -> execute -> answer trajectories (scripted teacher, real environment observations)"
timed synthesize "$PYTHON" -m verl_toolmaster.synth scripted --data "$RL" --out "$SYNTH" \
  --per-task "$SYNTH_PER_TASK" --tokenizer "$TOOLMASTER_OUT/model" --max-length 4096 \
  --rl-config "$REPO/recipes/cpu/grpo_tiny.yaml"
timed eval_base eval_stage base "$TOOLMASTER_OUT/model"
rm -rf "$TOOLMASTER_OUT/sft_ckpt"
timed sft env SFT_DATA="$SYNTH" bash "$REPO/recipes/cpu/run_sft_tiny.sh" trainer.total_training_steps="$SFT_STEPS"
SFT_MODEL=$(ls -d "$TOOLMASTER_OUT"/sft_ckpt/global_step_*/huggingface | sort -V | tail -n 1)
timed eval_sft eval_stage sft "$SFT_MODEL"
rm -rf "$TOOLMASTER_OUT/grpo_ckpt"
if ! timed grpo env MODEL="$SFT_MODEL" bash "$REPO/recipes/cpu/run_grpo_tiny.sh" \
    trainer.total_training_steps="$GRPO_STEPS" trainer.save_freq="$GRPO_STEPS" \
    "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra,hf_model]" \
    2>&1 | tee "$TOOLMASTER_OUT/grpo.log"; then
  die "GRPO failed; see $TOOLMASTER_OUT/grpo.log"
fi
GRPO_MODEL=$(ls -d "$TOOLMASTER_OUT"/grpo_ckpt/global_step_*/actor/huggingface | sort -V | tail -n 1)
[ -f "$GRPO_MODEL/model.safetensors" ] || die "GRPO wrote no HF checkpoint under $TOOLMASTER_OUT/grpo_ckpt"
timed eval_grpo eval_stage grpo "$GRPO_MODEL"
stage "summary"
"$PYTHON" "$REPO/recipes/cpu/summarize.py" "$TOOLMASTER_OUT" base sft grpo
