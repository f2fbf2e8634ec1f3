#!/usr/bin/env bash
# Trial-and-execution vs direct execution on ToyWorld's held-out tools, on CPU (docs/toyworld.md).
#   bash recipes/cpu/run_toyworld.sh OUT_DIR
# Builds the tiny model and its protocol-neutral base (toyworld_base), then for every seed generates a world,
# and trains two arms from the same base with the same budget:
#   direct: SFT on direct-execution trajectories, then GRPO with trial_mode off;
#   trial:  SFT on trial-and-execution trajectories, then GRPO with trial_mode on and the toolmaster reward;
# each validated (greedy) on the seed's held-out tools before and after GRPO. Writes OUT_DIR/report.html and
# OUT_DIR/report.json, and every stage's wall and CPU seconds to OUT_DIR/timing.jsonl.
# Settings (environment): TOYWORLD_SEEDS ("0 1 2"), TOYWORLD_LEVELS (1,2), TOYWORLD_TRAIN_TASKS (2000),
#   TOYWORLD_TEST_TASKS (64), TOYWORLD_BASE_STEPS (1500), TOYWORLD_SFT_STEPS (120), TOYWORLD_GRPO_STEPS (3),
#   TOYWORLD_MODEL_ARGS (extra `python -m verl_toolmaster.tiny` options, e.g. "--hidden-size 128").
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bash recipes/cpu/run_toyworld.sh OUT_DIR" >&2; exit 2; }
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
export TOOLMASTER_OUT=$OUT
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

SEEDS=${TOYWORLD_SEEDS:-"0 1 2"}
LEVELS=${TOYWORLD_LEVELS:-1,2}
TRAIN_TASKS=${TOYWORLD_TRAIN_TASKS:-2000}
TEST_TASKS=${TOYWORLD_TEST_TASKS:-64}
BASE_STEPS=${TOYWORLD_BASE_STEPS:-1500}
SFT_STEPS=${TOYWORLD_SFT_STEPS:-120}
GRPO_STEPS=${TOYWORLD_GRPO_STEPS:-3}
MODEL_ARGS=${TOYWORLD_MODEL_ARGS:-}
TIMING=$OUT/timing.jsonl

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
  local seed=$1 which=$2 mode flavour dir data ckpt
  if [ "$which" = trial ]; then mode=on; flavour=trial; else mode=off; flavour=direct; fi
  dir=$OUT/seed$seed/$which
  data=$OUT/seed$seed/data
  rm -rf "$dir"; mkdir -p "$dir"
  VERL_FILE_LOGGER_PATH=$dir/sft_metrics.jsonl OMP_NUM_THREADS=1 run "seed${seed}_${which}_sft" \
    torchrun --standalone --nproc_per_node=1 -m verl.trainer.sft_trainer \
    --config-path "$REPO/recipes/cpu" --config-name toyworld_sft model.path="$OUT/base" \
    data.train_files="$data/sft_$flavour.parquet" data.val_files=null \
    trainer.total_training_steps="$SFT_STEPS" trainer.seed="$seed" trainer.default_local_dir="$dir/sft"
  ckpt=$(ls -d "$dir"/sft/global_step_*/huggingface 2>/dev/null | sort -V | tail -n 1)
  [ -n "$ckpt" ] && [ -f "$ckpt/model.safetensors" ] || die "seed $seed $which: SFT wrote no HF checkpoint under $dir/sft"
  VERL_FILE_LOGGER_PATH=$dir/grpo_metrics.jsonl OMP_NUM_THREADS=1 run "seed${seed}_${which}_grpo" \
    "$PYTHON" -m verl.trainer.main_ppo --config-path "$REPO/recipes/cpu" --config-name toyworld_grpo \
    actor_rollout_ref.model.path="$ckpt" data.train_files="$data/train_$mode.parquet" data.val_files="$data/test_$mode.parquet" \
    actor_rollout_ref.rollout.custom.toolmaster.trial_mode="$mode" data.seed="$seed" \
    trainer.total_training_steps="$GRPO_STEPS" trainer.test_freq="$GRPO_STEPS" \
    trainer.validation_data_dir="$dir/val" trainer.default_local_dir="$dir/grpo" trainer.experiment_name="toyworld_${which}_s$seed"
}

: >"$TIMING"
STARTED=$(date +%s)
stage "tiny model + protocol-neutral base ($BASE_STEPS steps) -> $OUT/base"
run tiny "$PYTHON" -m verl_toolmaster.tiny --out "$OUT/tiny" $MODEL_ARGS
run base "$PYTHON" -m verl_toolmaster.toyworld.base --model "$OUT/tiny" --out "$OUT/base" --steps "$BASE_STEPS" --threads 2

for seed in $SEEDS; do
  stage "seed $seed: world, RL rows, direct and trial SFT rows"
  # as many tools per catalogue as train tasks (capped under the 2628 names disjoint word halves allow): most training tools
  # appear in one or two tasks, so a tool name cannot be learnt as the answer to a kind of question
  run "seed${seed}_data" "$PYTHON" -m verl_toolmaster.toyworld.generate --out "$OUT/seed$seed/data" --seed "$seed" \
    --levels "$LEVELS" --train-tasks "$TRAIN_TASKS" --tools "$(( TRAIN_TASKS < 2600 ? TRAIN_TASKS : 2600 ))" \
    --test-tasks "$TEST_TASKS" --no-progress
  # the two arms run side by side (one thread each): the tiny model leaves a core mostly idle, and verl's start-up
  # (Ray, workers) is mostly waiting
  stage "seed $seed: direct and trial arms side by side (SFT $SFT_STEPS steps, GRPO $GRPO_STEPS steps, held-out validation)"
  arm "$seed" direct & direct_pid=$!
  arm "$seed" trial & trial_pid=$!
  rc=0
  wait "$direct_pid" || rc=$?
  wait "$trial_pid" || rc=$?
  [ "$rc" -eq 0 ] || die "seed $seed: an arm failed (logs under $OUT/logs)"
done

printf '{"stage": "total", "wall_s": %d, "cpu_s": null, "rc": 0}\n' $(( $(date +%s) - STARTED )) >>"$TIMING"
stage "report"
"$PYTHON" -m verl_toolmaster.toyworld.report "$OUT"
stage "done: $OUT/report.html, $OUT/report.json"
