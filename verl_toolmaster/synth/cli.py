"""``python -m verl_toolmaster.synth {scripted,llm} --data RL.parquet --out SFT.parquet``: synthesize SFT trajectories.

Progress bars go to stderr; stdout gets notes, the files written and, as its LAST line, one JSON object:
``{"items", "kept", "dropped": {reason: n}, "failed": {reason: n}, "resumed", "written", ...}`` with
``items == kept + sum(dropped) + sum(failed)``. Exit codes: 0 done; 2 bad options or input (the message names
the file and the problem); 1 the run stopped (e.g. the endpoint rejected the credentials).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import TextIO

from verl_toolmaster.data.sft import SFT_FORMATS

ENV_BASE_URL, ENV_API_KEY, ENV_MODEL = "OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL"


class UsageError(Exception):
    """Bad options or input (exit code 2)."""


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input and output")
    g.add_argument(
        "--data",
        type=Path,
        action="append",
        required=True,
        metavar="RL.parquet",
        help="RL parquet written by data_prep/prepare.py (repeat for several files)",
    )
    g.add_argument("--out", type=Path, required=True, metavar="SFT.parquet", help="SFT parquet to write (kept trajectories, input order)")
    g.add_argument(
        "--format",
        choices=SFT_FORMATS,
        default="json-tools",
        help="SFT layout (verl_toolmaster.data.sft.write_sft_parquet): json-tools (default; load with "
        "data.custom_cls=verl_toolmaster.data.sft_dataset.ToolSFTDataset, exact for any tools) or nested "
        "(verl's plain MultiTurnSFTDataset layout; refused when parquet cannot hold the rows exactly)",
    )
    g.add_argument("--limit", type=int, metavar="N", help="use only the first N tasks")
    g.add_argument("--ids", metavar="ID,ID", help="use only these task ids (extra_info.task_id)")
    g.add_argument(
        "--per-task", type=int, default=1, metavar="K", help="trajectories per task, each with its own seed / sample (default 1)"
    )
    g.add_argument(
        "--journal",
        type=Path,
        metavar="PATH.jsonl",
        help="append-only JSONL of finished items; a re-run skips the ids in it (llm default: OUT with suffix .jsonl; "
        "scripted: none unless given)",
    )
    g.add_argument("--concurrency", type=int, default=4, metavar="N", help="trajectories run at the same time (default 4)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr)")
    g.add_argument("--verbose", action="store_true", help="print every dropped or failed item with its reason to stderr")

    g = p.add_argument_group("agent loop (the RL loop runs every trajectory)")
    g.add_argument(
        "--tokenizer",
        type=Path,
        metavar="DIR",
        help="HF tokenizer directory for the loop's prompts and token budget, and for --max-length (default: the "
        "offline tiny tokenizer, the same as `python -m verl_toolmaster.tiny`'s)",
    )
    g.add_argument(
        "--model-type",
        metavar="TYPE",
        help="HF model_type selecting verl's token builder (default: from DIR/config.json; qwen2 for the tiny tokenizer)",
    )
    g.add_argument(
        "--rl-config",
        type=Path,
        metavar="YAML",
        help="compose the trainer config from this RL recipe (e.g. recipes/cpu/grpo_tiny.yaml) so synthesis uses its loop "
        "budgets and custom.toolmaster settings (default: verl's ppo_trainer defaults)",
    )
    g.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Hydra override of that config, repeatable, e.g. +actor_rollout_ref.rollout.custom.toolmaster.max_turns=48",
    )
    g.add_argument("--prompt-length", type=int, metavar="N", help="rollout prompt budget in tokens (default: the RL config's, else 32768)")
    g.add_argument(
        "--response-length",
        type=int,
        metavar="N",
        help="rollout response budget in tokens, all turns (default: the RL config's, else 16384)",
    )
    g.add_argument(
        "--max-length",
        type=int,
        metavar="N",
        help="drop trajectories longer than N tokens under the tokenizer's chat template (set it to the SFT data.max_length)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m verl_toolmaster.synth",
        description="Synthesize trial -> execute -> answer SFT trajectories by running the RL agent loop against each "
        "task's real environment, with a scripted teacher (gold traces, offline) or an LLM behind an OpenAI-compatible "
        "endpoint. Only trajectories the RL scorer marks correct, that contain a trial and that pass the protocol "
        "round trip are written.",
        epilog='The last stdout line is one JSON object {"items", "kept", "dropped": {reason: n}, "failed": {reason: n}, '
        '"resumed", "written", ...}. Exit codes: 0 done, 2 bad options or input, 1 the run stopped. Details: docs/synthesis.md.',
    )
    sub = p.add_subparsers(dest="teacher", required=True, metavar="{scripted,llm}")

    s = sub.add_parser(
        "scripted",
        help="offline teacher that plays each task's gold trace with a failed probe and its correction",
        description="Offline teacher: plays each task's gold trace (extra_info.gold) as trial -> execute -> answer, "
        "with a realistic failed probe that the real environment rejects and its correction.",
    )
    _common(s)
    g = s.add_argument_group("scripted teacher")
    g.add_argument("--seed", type=int, default=0, help="base seed: a task's choices depend on (seed, task id, variant) only (default 0)")
    g.add_argument(
        "--fix-in-trial",
        type=float,
        default=0.5,
        metavar="P",
        help="probability that a failed probe is corrected by a second trial rather than by the first execute turn (default 0.5)",
    )
    g.add_argument(
        "--later-probe",
        type=float,
        default=0.3,
        metavar="P",
        help="probability of a failed probe in later user turns (the first turn with calls always has one; default 0.3)",
    )
    g.add_argument(
        "--later-trial",
        type=float,
        default=0.5,
        metavar="P",
        help="probability that a later user turn without a failed probe starts with a correct trial of a new tool (default 0.5)",
    )
    g.add_argument(
        "--execute-error",
        type=float,
        default=0.2,
        metavar="P",
        help="probability of one rejected execute call and its retry in a user turn, when it cannot change state (default 0.2)",
    )
    g.add_argument(
        "--max-candidates",
        type=int,
        default=8,
        metavar="N",
        help="wrong variants tried on a fork when looking for a failing probe (default 8)",
    )

    lp = sub.add_parser(
        "llm",
        help="an LLM behind an OpenAI-compatible endpoint plays the policy",
        description="An LLM behind any OpenAI-compatible endpoint plays the policy in the RL agent loop. Keeps "
        "trajectories that score correct, contain a trial and have no protocol violation. Resumable.",
    )
    _common(lp)
    g = lp.add_argument_group("endpoint")
    g.add_argument(
        "--base-url",
        default=os.environ.get(ENV_BASE_URL),
        help=f"endpoint base URL, e.g. http://127.0.0.1:8000/v1 (default: ${ENV_BASE_URL})",
    )
    g.add_argument("--model", default=os.environ.get(ENV_MODEL), help=f"model name (default: ${ENV_MODEL})")
    g.add_argument("--api-key", default=None, help=f"API key (default: ${ENV_API_KEY}; 'EMPTY', with a note, when neither is set)")
    g.add_argument(
        "--api",
        choices=("chat", "completions"),
        default="chat",
        help="chat: /v1/chat/completions with the conversation; completions: /v1/completions with the loop's exact "
        "prompt text (needs --tokenizer of the served model) (default chat)",
    )
    g.add_argument(
        "--tools-in",
        choices=("param", "system"),
        default="param",
        help="chat: tools in the request's tools field (param) or listed in the system message (system) (default param)",
    )
    g.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default 0.7)")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (default 1.0)")
    g.add_argument("--max-tokens", type=int, default=1024, help="token cap per assistant turn (default 1024)")
    g.add_argument("--request-seed", type=int, help="seed sent with every request (endpoints that support it)")
    g.add_argument("--extra-body", default=None, metavar="JSON", help="extra request fields as a JSON object (server-specific options)")
    g.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    g.add_argument(
        "--max-retries", type=int, default=6, help="retries per request on 429, 5xx, 408/409, timeouts, connection errors (default 6)"
    )
    g.add_argument("--backoff", type=float, default=1.0, help="first backoff in seconds, doubled per retry, with jitter (default 1)")
    g.add_argument("--backoff-max", type=float, default=60.0, help="cap of one backoff and of a Retry-After (default 60)")
    g.add_argument("--allow-violations", action="store_true", help="keep trajectories with protocol violations (default: drop them)")
    return p


def _ids(text: str | None) -> set[str] | None:
    if text is None:
        return None
    ids = {t.strip() for t in text.split(",") if t.strip()}
    if not ids:
        raise UsageError("--ids names no task id")
    return ids


def _positive(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


async def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .driver import LoopSettings, compose_trainer_config, load_tokenizer
    from .episodes import LengthLimit, llm_episode, scripted_episode
    from .journal import Journal
    from .runner import read_rows, run_items, summarize, work_items, write_output

    try:
        rows = read_rows(args.data)
        items = work_items(rows, args.per_task, _ids(args.ids), args.limit)
        tokenizer, model_type = load_tokenizer(args.tokenizer)
        cfg = compose_trainer_config(args.rl_config, args.override, args.prompt_length, args.response_length)
        settings = LoopSettings(cfg, tokenizer, args.model_type or model_type)
        loop_config = settings.loop_config()
    except ValueError as e:
        raise UsageError(str(e)) from None
    except Exception as e:  # hydra composition errors name the bad key
        raise UsageError(f"cannot build the agent-loop config: {type(e).__name__}: {e}") from None
    limit = LengthLimit(args.max_length, tokenizer)
    print(
        f"note: {len(rows)} RL rows, {len(items)} items; loop: trial_mode={loop_config.trial_mode} max_turns={loop_config.max_turns} "
        f"max_trial_turns={loop_config.max_trial_turns} max_tool_response_length={loop_config.max_tool_response_length}",
        file=out,
    )

    endpoint = None
    if args.teacher == "scripted":
        from .scripted import ScriptedOptions

        try:
            options = ScriptedOptions(
                args.seed, args.fix_in_trial, args.later_probe, args.later_trial, args.execute_error, args.max_candidates
            )
        except ValueError as e:
            raise UsageError(str(e)) from None
        episode = scripted_episode(settings, options, limit)
        journal = Journal(args.journal) if args.journal else None
    else:
        from .llm import Endpoint, EndpointConfig, LLMTeacher

        api_key = args.api_key or os.environ.get(ENV_API_KEY)
        if not api_key:
            print(f"note: no --api-key and no ${ENV_API_KEY}; sending 'EMPTY' (enough for local servers without auth)", file=err)
            api_key = "EMPTY"
        try:
            extra = json.loads(args.extra_body) if args.extra_body else {}
            if not isinstance(extra, dict):
                raise ValueError("--extra-body must be a JSON object")
            ecfg = EndpointConfig(
                base_url=args.base_url or "",
                model=args.model or "",
                api_key=api_key,
                api=args.api,
                tools_in=args.tools_in,
                temperature=args.temperature,
                top_p=args.top_p,
                max_tokens=args.max_tokens,
                seed=args.request_seed,
                timeout_s=args.timeout,
                max_retries=args.max_retries,
                backoff_s=args.backoff,
                backoff_max_s=args.backoff_max,
                extra_body=extra,
            )
        except ValueError as e:
            raise UsageError(f"{e} (--base-url/${ENV_BASE_URL}, --model/${ENV_MODEL})") from None
        if args.api == "completions" and args.tokenizer is None:
            raise UsageError("--api completions sends the loop's own prompt text: give --tokenizer of the served model")
        endpoint = Endpoint(ecfg)
        sampling = {"temperature": ecfg.temperature, "top_p": ecfg.top_p}
        episode = llm_episode(
            settings, lambda item: LLMTeacher(endpoint, tokenizer), sampling, limit, f"llm:{ecfg.model}", args.allow_violations
        )
        journal = Journal(args.journal or args.out.with_suffix(".jsonl"))
    try:
        outcomes, resumed = await run_items(
            items,
            episode,
            concurrency=args.concurrency,
            journal=journal,
            progress=not args.no_progress,
            desc=f"synth {args.teacher}",
            err=err,
            verbose=args.verbose,
        )
    finally:
        if endpoint is not None:
            await endpoint.close()
    report = summarize(outcomes, resumed)
    if endpoint is not None:
        report.retries.update(endpoint.retries)
    try:
        report.written = write_output(outcomes, args.out, args.format)
    except ValueError as e:  # the nested layout cannot hold these rows exactly (the writer says which and why)
        where = f"; the trajectories are kept in {journal.path}" if journal is not None else ""
        raise UsageError(f"cannot write {args.out} as --format {args.format}: {e}{where}") from None
    if journal is not None:
        print(f"journal: {journal.path}", file=out)
    print(f"wrote: {args.out} ({report.written} rows)", file=out)
    print(report.line(), file=out)
    return 0


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = build_parser().parse_args(argv)
    from .runner import AbortRun

    try:
        _positive(args, "limit", "per_task", "concurrency", "max_length", "prompt_length", "response_length", "max_tokens")
        return asyncio.run(_run(args, out, err))
    except UsageError as e:
        print(f"error: {e}", file=err)
        return 2
    except AbortRun as e:
        print(f"error: {e} (finished items are in the journal; re-run to resume)", file=err)
        return 1
