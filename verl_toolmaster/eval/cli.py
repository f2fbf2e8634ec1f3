"""Command line of the evaluation harness: ``python -m verl_toolmaster.eval --help``."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from ..generation import DEFAULT_MAX_BATCH_TOKENS, DEFAULT_MAX_NUM_SEQS, DEFAULT_PREFIX_CACHE_TOKENS
from .options import DEFAULT_OPENAI_EXTRA_BODY, DEFAULT_PROMPT_LENGTH, DEFAULT_RESPONSE_LENGTH, EvalOptions, OptionsError, default_cache_dir

DESCRIPTION = (
    "Evaluate a policy on prepared tool-use rows with the training stack's own agent loop (ToolMasterAgentLoop), "
    "environments and reward manager. Writes DIR/trajectories.jsonl (one line per row, every turn with phase, calls "
    "and observations), DIR/metrics.json (overall, by_source, by_split, by_level, and the same numbers under verl's "
    "validation metric names), DIR/report.html and DIR/run.json. Details: docs/evaluation.md."
)
EXIT_CODES = """exit codes:
  0  every selected row is in DIR/trajectories.jsonl
  1  some rows failed (DIR/errors.jsonl names them with the error); re-run to retry them
  2  bad options, unreadable data, or DIR holds a run with other settings
  3  the run stopped early (policy failure such as an unreachable or failing endpoint, or Ctrl-C); the outputs
     describe the finished rows and re-running the same command continues with the rest"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m verl_toolmaster.eval",
        description=textwrap.fill(DESCRIPTION, width=100),
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("what to evaluate")
    g.add_argument("--data", type=Path, nargs="+", required=True, metavar="PARQUET", help="prepared RL parquet file(s) from data_prep/prepare.py")
    g.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory; re-running with the same DIR skips rows already in DIR/trajectories.jsonl")
    g.add_argument("--ids", help="comma-separated row ids (extra_info.task_id), or @FILE with one id per line; every id must exist")
    g.add_argument("--limit", type=int, help="evaluate at most this many rows (after --ids), in data order")

    g = p.add_argument_group("policy")
    g.add_argument("--policy", required=True, choices=("gold", "hf", "openai"),
                   help="gold: replay each row's gold trace (trial probe, gold calls, gold answer) as protocol text; rows without "
                   "one are reported as no_gold. hf: a local transformers model. openai: an OpenAI-compatible server's completions endpoint")
    g.add_argument("--model", help="hf: local model directory; openai: the model name the server serves (default: $OPENAI_MODEL)")
    g.add_argument("--tokenizer", help="tokenizer directory (default: hf/openai: --model when it is a directory; gold: the offline tiny tokenizer, built once into --cache-dir)")
    g.add_argument("--base-url", help="openai: endpoint base URL, e.g. http://127.0.0.1:8000/v1 (default: $OPENAI_BASE_URL)")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY", help="openai: environment variable holding the API key; 'EMPTY' is sent when unset (default: OPENAI_API_KEY)")
    g.add_argument("--prompt-format", choices=("ids", "text"), default="ids",
                   help="openai: send the prompt as the loop's token ids (default; exactly what verl's rollout servers get) or as its decoded text")
    g.add_argument("--openai-extra-body", default=json.dumps(DEFAULT_OPENAI_EXTRA_BODY),
                   help=f"openai: JSON object of extra request fields (default: {json.dumps(DEFAULT_OPENAI_EXTRA_BODY)}, vLLM's; use '{{}}' for strict servers)")
    g.add_argument("--request-timeout", type=float, default=600.0, help="openai: seconds per request (default: 600)")
    g.add_argument("--max-retries", type=int, default=2, help="openai: retries on connection errors, timeouts, 429 and 5xx before the run stops (default: 2)")
    g.add_argument("--device", default="auto", help="hf: torch device, e.g. cpu, cuda, cuda:1 (default: auto = cuda when available)")
    g.add_argument("--dtype", default="auto", help="hf: torch dtype, e.g. float32, bfloat16 (default: auto = bfloat16 on cuda, float32 on cpu)")
    g.add_argument("--hf-max-num-seqs", type=int, default=DEFAULT_MAX_NUM_SEQS,
                   help=f"hf: turns of concurrent rows decoded together (default: {DEFAULT_MAX_NUM_SEQS}); raise --concurrency to fill the batch")
    g.add_argument("--hf-max-batch-tokens", type=int, default=DEFAULT_MAX_BATCH_TOKENS,
                   help=f"hf: padded KV cache, rows x longest row in tokens, a new turn may grow the batch to (default: {DEFAULT_MAX_BATCH_TOKENS})")
    g.add_argument("--hf-prefix-cache-tokens", type=int, default=DEFAULT_PREFIX_CACHE_TOKENS,
                   help=f"hf: tokens of finished turns kept so a row's next turn only prefills its new tokens; 0: off (default: {DEFAULT_PREFIX_CACHE_TOKENS})")

    g = p.add_argument_group("rollout (the same agent loop as training)")
    g.add_argument("--trial-mode", choices=("on", "off"), help="override the loop's trial_mode for A/B runs (default: the config's, 'on')")
    g.add_argument("--system-prompt", choices=("auto", "row", "default"), default="auto",
                   help="auto (default): a row carrying a protocol system text gets the text of the active trial mode; row: keep the row's; default: always the protocol text")
    g.add_argument("--prompt-length", type=int, help=f"rollout.prompt_length in tokens (default: the --config's, else {DEFAULT_PROMPT_LENGTH}); longer prompts are cut by verl and flagged prompt_truncated")
    g.add_argument("--response-length", type=int, help=f"rollout.response_length: tokens of all turns and observations together (default: the --config's, else {DEFAULT_RESPONSE_LENGTH})")
    g.add_argument("--max-tokens-per-turn", type=int, help="cap of one generation call (default: the remaining response budget)")
    g.add_argument("--temperature", type=float, help="sampling temperature (default: actor_rollout_ref.rollout.val_kwargs.temperature, as verl validation)")
    g.add_argument("--top-p", type=float, help="default: val_kwargs.top_p")
    g.add_argument("--top-k", type=int, help="default: val_kwargs.top_k (-1: off)")
    g.add_argument("--concurrency", type=int, default=4, help="rows in flight at once (default: 4)")
    g.add_argument("--config", type=Path, help="a training recipe YAML to compose instead of verl's ppo_trainer (its loop budgets, reward_kwargs, val_kwargs apply)")
    g.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="Hydra override of the composed config, repeatable, e.g. +actor_rollout_ref.rollout.custom.toolmaster.max_turns=24 or +reward.reward_kwargs.w_trial=0.3")

    g = p.add_argument_group("outputs")
    g.add_argument("--no-report", action="store_true", help="do not write DIR/report.html")
    g.add_argument("--report-max-trajectories", type=int, default=300, help="trajectories shown in the report's viewer (default: 300; all are in trajectories.jsonl)")
    g.add_argument("--log-to", default="", help="comma-separated verl logger backends (console, file, tensorboard, wandb, ...) to log the verl-named metrics to")
    g.add_argument("--log-project", default="verl_toolmaster_eval", help="logger project name (default: verl_toolmaster_eval)")
    g.add_argument("--log-experiment", help="logger experiment name (default: the DIR name)")
    g.add_argument("--log-step", type=int, default=0, help="step to log the metrics at, e.g. the checkpoint's global step (default: 0)")
    g.add_argument("--cache-dir", type=Path, default=default_cache_dir(), help=f"where the gold policy's tiny tokenizer is built (default: {default_cache_dir()})")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _ids(text: str | None) -> list[str] | None:
    if not text:
        return None
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise OptionsError(f"--ids {text}: {e.strerror}") from None
        return [line.strip() for line in lines if line.strip()]
    return [i.strip() for i in text.split(",") if i.strip()]


def options_from_args(args: argparse.Namespace) -> EvalOptions:
    try:
        extra_body = json.loads(args.openai_extra_body)
    except json.JSONDecodeError as e:
        raise OptionsError(f"--openai-extra-body is not JSON: {e}") from None
    return EvalOptions(
        data=list(args.data), out=args.out, policy=args.policy, model=args.model, tokenizer=args.tokenizer,
        base_url=args.base_url, api_key_env=args.api_key_env, prompt_format=args.prompt_format, openai_extra_body=extra_body,
        request_timeout_s=args.request_timeout, max_retries=args.max_retries, device=args.device, dtype=args.dtype,
        hf_max_num_seqs=args.hf_max_num_seqs, hf_max_batch_tokens=args.hf_max_batch_tokens, hf_prefix_cache_tokens=args.hf_prefix_cache_tokens,
        ids=_ids(args.ids), limit=args.limit, concurrency=args.concurrency, trial_mode=args.trial_mode,
        system_prompt=args.system_prompt, prompt_length=args.prompt_length, response_length=args.response_length,
        max_tokens_per_turn=args.max_tokens_per_turn, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
        config=args.config, overrides=list(args.override), cache_dir=args.cache_dir, progress=not args.no_progress,
        report=not args.no_report, report_max_trajectories=args.report_max_trajectories,
        log_to=[b.strip() for b in args.log_to.split(",") if b.strip()], log_project=args.log_project,
        log_experiment=args.log_experiment, log_step=args.log_step,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .rows import RowError
    from .store import StoreError

    try:
        opts = options_from_args(args)
        opts.check()
        from .runner import evaluate

        summary = evaluate(opts)
    except (OptionsError, RowError, StoreError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    metrics = json.loads((Path(opts.out) / "metrics.json").read_text(encoding="utf-8"))
    overall, run = metrics["overall"], metrics["run"]
    for err in summary.errors[:10]:
        print(f"row failed: {err['id']}: {err['error']}", file=sys.stderr)
    if len(summary.errors) > 10:
        print(f"... and {len(summary.errors) - 10} more rows failed (all in {opts.out / 'errors.jsonl'})", file=sys.stderr)
    if summary.fatal:
        print(f"error: {summary.fatal}", file=sys.stderr)
        print(f"stopped early: {run['done']} of {run['selected']} rows done; re-run the same command to continue", file=sys.stderr)
    print(f"wrote {opts.out}/metrics.json, trajectories.jsonl" + (", report.html" if opts.report else ""), file=sys.stderr)
    line = {k: overall.get(k) for k in ("n", "answer", "score", "format", "tool_error_rate")}
    line.update(complete=run["complete"], pending=run["pending"], errors=run["errors"])
    if "no_gold" in overall:
        line.update(no_gold=overall["no_gold"], bad_gold=overall["bad_gold"])
    print(json.dumps(line))
    return summary.exit_code
