#!/usr/bin/env bash
# Trial-and-execution vs direct vs self-correcting execution on ToyWorld's held-out tools, on CPU (docs/toyworld.md).
#   bash recipes/cpu/run_toyworld.sh OUT_DIR
# Base model: SmolLM2-135M-Instruct (ensure_base_model; TOYWORLD_BASE=tiny builds the offline tiny model and its
# protocol-neutral pretraining instead, TOYWORLD_BASE=DIR takes any HF model directory). For every seed it generates a
# world and trains three arms from the same base with the same budget, one after another (two SmolLM2 trainings do
# not fit side by side in memory or on 2 cores):
#   direct:      SFT on the gold call, its result, the answer; then GRPO with trial_mode off;
#   selfcorrect: SFT on documented calls executed for real, what they returned, the repair, the answer (no trials);
#                then GRPO with trial_mode off;
#   trial:       SFT on probes (on the scratch fork) up to the task's tool, the right execution, the answer (a quarter of
#                the tasks: executed unprobed and repaired); then GRPO with trial_mode on;
# SFT shows the levels in TOYWORLD_SFT_LEVELS; GRPO trains on all of TOYWORLD_LEVELS; each arm is validated (greedy) on
# the seed's held-out tools before GRPO (= after SFT) and every TOYWORLD_TEST_FREQ steps.
# Writes OUT_DIR/report.html and OUT_DIR/report.json (python -m verl_toolmaster.toyworld.report: cluster-bootstrap
# intervals, the pre-registered verdicts of docs/toyworld.md, zero-spread GRPO groups per step), OUT_DIR/run.json
# (base model, budgets) and every stage's wall and CPU seconds to OUT_DIR/timing.jsonl.
#
# Settings (environment): TOYWORLD_BASE (smollm2 | tiny | DIR; smollm2), TOYWORLD_SEEDS ("0 1"), TOYWORLD_ARMS
#   ("direct selfcorrect trial"), TOYWORLD_LEVELS (1,2,3,4,5), TOYWORLD_SFT_LEVELS (1,2,4), TOYWORLD_TRAIN_TASKS (400),
#   TOYWORLD_TEST_TASKS (30), TOYWORLD_SFT_STEPS (8), TOYWORLD_GRPO_STEPS (5), TOYWORLD_TEST_FREQ (1), TOYWORLD_SFT_LR
#   and TOYWORLD_GRPO_LR (SmolLM2: 5e-5 and 1e-5); tiny only: TOYWORLD_BASE_STEPS (1500),
#   TOYWORLD_MODEL_ARGS (extra `python -m verl_toolmaster.tiny` options).
#
# Time: see docs/toyworld.md ("Time") for the measured run of these defaults.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bash recipes/cpu/run_toyworld.sh OUT_DIR" >&2; exit 2; }
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
export TOOLMASTER_OUT=$OUT
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

BASE=${TOYWORLD_BASE:-smollm2}
SEEDS=${TOYWORLD_SEEDS:-"0 1"}
ARMS=${TOYWORLD_ARMS:-"direct selfcorrect trial"}
LEVELS=${TOYWORLD_LEVELS:-1,2,3,4,5}
SFT_LEVELS=${TOYWORLD_SFT_LEVELS:-1,2,4}
TRAIN_TASKS=${TOYWORLD_TRAIN_TASKS:-400}
TEST_TASKS=${TOYWORLD_TEST_TASKS:-30}
SFT_STEPS=${TOYWORLD_SFT_STEPS:-8}
GRPO_STEPS=${TOYWORLD_GRPO_STEPS:-5}
TEST_FREQ=${TOYWORLD_TEST_FREQ:-1}
BASE_STEPS=${TOYWORLD_BASE_STEPS:-1500}
MODEL_ARGS=${TOYWORLD_MODEL_ARGS:-}
THREADS=${OMP_NUM_THREADS:-$(nproc)}
TIMING=$OUT/timing.jsonl
for arm in $ARMS; do
  case "$arm" in direct|selfcorrect|trial) ;; *) die "TOYWORLD_ARMS: unknown arm $arm (direct, selfcorrect, trial)" ;; esac
done

# The budgets every arm gets. The recipes are sized for SmolLM2; the tiny model keeps the sizes of its measured runs
# (docs/toyworld.md: batch 16 at lr 3e-3 for SFT, 8 prompts x 4 samples at lr 3e-4 for GRPO).
# GRPO's rollout: verl's vLLM (toyworld_grpo.yaml) except for the tiny model, whose head size (16) vLLM's CPU attention
# has no kernel for: hfcpu.
if [ "$BASE" = tiny ]; then
  SFT_BATCH=16; SFT_LR=3e-3; SFT_TOKENS=16384; GRPO_BATCH=8; GRPO_N=4; GRPO_LR=3e-4; GRPO_MICRO=8; ROLLOUT=hfcpu
else
  SFT_BATCH=8; SFT_LR=5e-5; SFT_TOKENS=1024; GRPO_BATCH=2; GRPO_N=4; GRPO_LR=1e-5; GRPO_MICRO=4; ROLLOUT=vllm
fi
SFT_LR=${TOYWORLD_SFT_LR:-$SFT_LR}
GRPO_LR=${TOYWORLD_GRPO_LR:-$GRPO_LR}

# run NAME CMD...: run a stage, append {"stage", "wall_s", "cpu_s", "rc"} to timing.jsonl, keep its log
run() {
  local name=$1; shift
  local log=$OUT/logs/$name.log t0 rc=0
  mkdir -p "$OUT/logs"
  t0=$(date +%s%N)
  /usr/bin/time -f '%U %S' -o "$log.time" "$@" >"$log" 2>&1 || rc=$?
  local cpu
  cpu=$(tail -n 1 "$log.time" | awk '{ if (NF == 2) printf "%.1f", $1 + $2; else print "null" }')
  local wall=$(( ($(date +%s%N) - t0) / 100000000 ))
  printf '{"stage": "%s", "wall_s": %d.%d, "cpu_s": %s, "rc": %d}\n' "$name" $((wall / 10)) $((wall % 10)) "$cpu" "$rc" >>"$TIMING"
  if [ "$rc" -ne 0 ]; then echo "error: stage $name failed (exit $rc); last lines of $log:" >&2; tail -n 30 "$log" >&2; return "$rc"; fi
}

arm() {  # arm SEED ARM: SFT then GRPO (+ held-out validation) of one arm
  local seed=$1 which=$2 mode dir data ckpt
  if [ "$which" = trial ]; then mode=on; else mode=off; fi
  dir=$OUT/seed$seed/$which
  data=$OUT/seed$seed/data
  rm -rf "$dir"; mkdir -p "$dir"
  VERL_FILE_LOGGER_PATH=$dir/sft_metrics.jsonl OMP_NUM_THREADS=$THREADS run "seed${seed}_${which}_sft" \
    torchrun --standalone --nproc_per_node=1 -m verl.trainer.sft_trainer \
    --config-path "$REPO/recipes/cpu" --config-name toyworld_sft model.path="$MODEL_DIR" \
    data.train_files="$data/sft_$which.parquet" data.val_files=null \
    data.train_batch_size="$SFT_BATCH" data.micro_batch_size_per_gpu="$SFT_BATCH" data.max_token_len_per_gpu="$SFT_TOKENS" \
    optim.lr="$SFT_LR" trainer.total_training_steps="$SFT_STEPS" trainer.seed="$seed" trainer.default_local_dir="$dir/sft"
  ckpt=$(ls -d "$dir"/sft/global_step_*/huggingface 2>/dev/null | sort -V | tail -n 1)
  [ -n "$ckpt" ] && [ -f "$ckpt/model.safetensors" ] || die "seed $seed $which: SFT wrote no HF checkpoint under $dir/sft"
  VERL_FILE_LOGGER_PATH=$dir/grpo_metrics.jsonl OMP_NUM_THREADS=$THREADS run "seed${seed}_${which}_grpo" \
    "$PYTHON" -m verl.trainer.main_ppo --config-path "$REPO/recipes/cpu" --config-name toyworld_grpo \
    actor_rollout_ref.model.path="$ckpt" data.train_files="$data/train_$mode.parquet" data.val_files="$data/test_$mode.parquet" \
    actor_rollout_ref.rollout.custom.toolmaster.trial_mode="$mode" data.seed="$seed" actor_rollout_ref.rollout.name="$ROLLOUT" \
    data.train_batch_size="$GRPO_BATCH" actor_rollout_ref.actor.ppo_mini_batch_size="$GRPO_BATCH" \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu="$GRPO_MICRO" \
    actor_rollout_ref.rollout.n="$GRPO_N" actor_rollout_ref.actor.optim.lr="$GRPO_LR" \
    trainer.total_training_steps="$GRPO_STEPS" trainer.test_freq="$TEST_FREQ" \
    trainer.validation_data_dir="$dir/val" trainer.default_local_dir="$dir/grpo" trainer.experiment_name="toyworld_${which}_s$seed"
  rm -rf "$dir/sft"/global_step_*  # ~1.6 GB per SmolLM2 checkpoint; the metrics and validation dumps stay
}

: >"$TIMING"
STARTED=$(date +%s)
if [ "$BASE" = tiny ]; then
  stage "tiny model + protocol-neutral base ($BASE_STEPS steps) -> $OUT/base"
  run tiny "$PYTHON" -m verl_toolmaster.tiny --out "$OUT/tiny" $MODEL_ARGS
  run base "$PYTHON" -m verl_toolmaster.toyworld.base --model "$OUT/tiny" --out "$OUT/base" --steps "$BASE_STEPS" --threads "$THREADS"
  MODEL_DIR=$OUT/base; MODEL_NAME="tiny (+ toyworld.base, $BASE_STEPS steps)"
else
  ensure_base_model "$BASE"
fi
"$PYTHON" - "$OUT/run.json" "$MODEL_NAME" "$MODEL_DIR" <<EOF
import json, sys
budget = {"arms": "$ARMS".split(), "seeds": [int(s) for s in "$SEEDS".split()], "levels": "$LEVELS", "sft_levels": "$SFT_LEVELS",
          "train_tasks": $TRAIN_TASKS, "test_tasks": $TEST_TASKS, "sft_steps": $SFT_STEPS, "sft_batch": $SFT_BATCH,
          "sft_lr": $SFT_LR, "grpo_steps": $GRPO_STEPS, "grpo_prompts_per_step": $GRPO_BATCH, "grpo_samples_per_prompt": $GRPO_N,
          "grpo_lr": $GRPO_LR, "test_freq": $TEST_FREQ, "turns": "recipes/cpu/toyworld_grpo.yaml (the same for every arm)"}
json.dump({"model": sys.argv[2], "model_dir": sys.argv[3], "budget": budget}, open(sys.argv[1], "w"), indent=1)
EOF

for seed in $SEEDS; do
  stage "seed $seed: world, RL rows, direct, self-correcting and trial SFT rows"
  # as many tools per catalogue as train tasks (capped under the 2628 names disjoint word halves allow): most training tools
  # appear in one or two tasks, so a tool name cannot be learnt as the answer to a kind of question
  run "seed${seed}_data" "$PYTHON" -m verl_toolmaster.toyworld.generate --out "$OUT/seed$seed/data" --seed "$seed" \
    --levels "$LEVELS" --sft-levels "$SFT_LEVELS" --train-tasks "$TRAIN_TASKS" --tools "$(( TRAIN_TASKS < 2600 ? TRAIN_TASKS : 2600 ))" \
    --test-tasks "$TEST_TASKS" --no-progress
  for which in $ARMS; do
    stage "seed $seed: arm $which (SFT $SFT_STEPS steps, GRPO $GRPO_STEPS steps, held-out validation every $TEST_FREQ)"
    arm "$seed" "$which"  # a failed stage ends the run (set -e) after printing its log's tail
  done
done

printf '{"stage": "total", "wall_s": %d, "cpu_s": null, "rc": 0}\n' $(( $(date +%s) - STARTED )) >>"$TIMING"
stage "report"
"$PYTHON" -m verl_toolmaster.toyworld.report "$OUT"
stage "done: $OUT/report.html, $OUT/report.json"
