"""``python data_prep/prepare.py``: benchmark files -> RL parquet (``RLHFDataset``) and, optionally, SFT parquet.

The last line printed is one JSON object ``{"read": N, "written": N, "repaired": {kind: N}, "skipped": {reason: N}}``
with ``read == written + sum(skipped)``; ``repaired`` counts the repairs of written rows by kind (``data/repairs.py``).
Malformed input stops the run with exit code 2 and a message naming the file, the row and the problem,
unless ``--skip-invalid`` (then every skip is reported on stderr and counted).
Exit code 1: the run could not proceed for another reason (e.g. a component it needs is missing).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from . import adapter_names, get_adapter
from .base import InputError, InvalidRecord, SkipRecord
from .repairs import repair_kinds
from .sft import SFT_FORMATS, SFTUnavailable, check_sft, replay_observations, sft_row, write_rl_parquet, write_sft_parquet
from .splits import SplitResult, parse_fractions, random_split, tool_disjoint_split, tool_names
from .task import Task, rl_row
from .token_lengths import length_report, load_tokenizer, prompt_tokens

SPLIT_MODES = ("none", "random", "tool-disjoint")
DROPPED_REASON = "split_tools_shared"  # skip reason of tasks a tool-disjoint split had to leave out


class UsageError(Exception):
    """Bad options or input paths (exit code 2)."""


class PrepareError(Exception):
    """The run cannot proceed (exit code 1)."""


@dataclass
class Summary:
    """What the run did; ``line()`` is the final JSON line."""

    read: int = 0  # source records read (an undecodable file counts as one)
    written: int = 0  # RL rows written, all splits together
    skipped: Counter = field(default_factory=Counter)  # reason -> records not written
    repaired: Counter = field(default_factory=Counter)  # repair kind -> repairs in the written rows
    split_sizes: dict[str, int] = field(default_factory=dict)  # split -> RL rows
    sft_written: int = 0  # SFT rows written
    sft_skipped: Counter = field(default_factory=Counter)  # reason -> tasks without an SFT row
    outputs: list[str] = field(default_factory=list)  # files written
    notes: list[str] = field(default_factory=list)  # things worth knowing that are not counts

    def line(self) -> str:
        if self.read != self.written + sum(self.skipped.values()):
            raise AssertionError(f"row accounting is off: read {self.read} != written {self.written} + skipped {dict(self.skipped)}")
        return json.dumps(
            {"read": self.read, "written": self.written, "repaired": dict(sorted(self.repaired.items())), "skipped": dict(sorted(self.skipped.items()))}
        )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="prepare.py",
        description="Convert a tool-use benchmark's own files into RL parquet rows for verl's RLHFDataset "
        "(prompt, data_source, agent_name, reward_model.ground_truth, extra_info with the environment spec) "
        "and, where the benchmark has gold traces, SFT rows for verl's multi-turn SFT dataset.",
        epilog="The last line printed is {\"read\": N, \"written\": N, \"repaired\": {kind: N}, \"skipped\": {reason: N}}. Exit codes: 0 done; "
        "2 malformed input or bad options (the message names file, row and problem); 1 the run could not proceed. "
        "Details: docs/data.md.",
    )
    p.add_argument("--dataset", required=True, choices=adapter_names(), help="which benchmark's format --input is in")
    p.add_argument(
        "--input",
        type=Path,
        help="a file of the benchmark or its folder as shipped. Optional for bfcl only: without it the installed "
        "bfcl-eval package's data (bfcl_eval/data) is read",
    )
    p.add_argument("--output", type=Path, required=True, help="RL parquet to write; with --split, one file per split: OUT_<split>.parquet")
    p.add_argument("--limit", type=int, help="read at most this many source records (in file order)")
    p.add_argument("--skip-invalid", action="store_true", help="skip malformed records (each reported on stderr) instead of stopping with exit code 2")
    p.add_argument("--split", choices=SPLIT_MODES, default="none", help="none (default): one file; random: seeded shuffle cut by --fractions; tool-disjoint: no tool name in two splits (tasks that cannot be placed are dropped and listed in OUT_dropped.json)")
    p.add_argument("--fractions", default="train=0.8,test=0.2", help="split names and fractions, summing to 1 (default: train=0.8,test=0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and of the per-task perturbation seeds (default: 0)")
    p.add_argument("--ignore-tools", default="", help="comma-separated tool names exempt from the tool-disjoint check (tools every task has, e.g. RoTBench's finish,ask_to_user)")
    p.add_argument(
        "--perturb",
        help="make tools unfamiliar: options written into every env spec as \"perturb\": {\"seed\": <per task>, ...}; "
        "give a JSON object or key=value pairs separated by commas (values parsed as JSON when possible), e.g. "
        "rename_tools=true,rename_params=true,distractors=2. The environment wrapper applies them",
    )
    p.add_argument("--perturb-splits", default="", help="comma-separated split names to perturb (default: all rows)")
    p.add_argument("--categories", default="", help="bfcl only: comma-separated categories to convert (default: all supported)")
    p.add_argument("--trial-mode", choices=("on", "off"), default="on", help="protocol of the RL prompt's system text (default: on)")
    p.add_argument("--system-prompt-file", type=Path, help="use this file's text as the RL system prompt instead of the protocol's")
    p.add_argument("--sft-output", type=Path, help="also write plain gold-trace SFT rows here (per split: SFT_<split>.parquet); tasks without a usable gold trace are counted, not written")
    p.add_argument("--sft-format", choices=SFT_FORMATS, default="json-tools", help="json-tools (default): tools and call arguments as JSON strings, load with verl_toolmaster.data.sft_dataset.ToolSFTDataset; nested: verl's plain layout, refused when parquet cannot hold the rows exactly")
    p.add_argument("--tokenizer", help="HF tokenizer (local dir) whose chat template the policy uses: report each split's prompt token lengths (messages + the task's tools)")
    p.add_argument("--max-prompt-tokens", type=int, help="with --tokenizer: leave out rows whose prompt needs more tokens (verl would left-truncate them, cutting the system text and tools); counted as skipped prompt_too_long")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _progress(it: Iterable, desc: str, enabled: bool, total: int | None = None) -> Iterable:
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, desc=desc, total=total, unit="rec", file=sys.stderr, mininterval=0.5)


def system_prompt_text(trial_mode: str, path: Path | None) -> str:
    """The RL prompt's system text: the protocol's (``verl_toolmaster.protocol.system_prompt``) or a file's."""
    text = None
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise UsageError(f"--system-prompt-file {path}: {e.strerror}") from None
        if not text.strip():
            raise UsageError(f"--system-prompt-file {path} is empty")
    try:
        from verl_toolmaster.protocol import system_prompt
    except ImportError as e:
        raise PrepareError(
            f"RL rows need the protocol's system prompt, but verl_toolmaster.protocol.system_prompt cannot be imported ({e}); "
            "pass --system-prompt-file PATH to use your own text"
        ) from None
    return system_prompt(trial_mode=trial_mode, text=text)


def parse_perturb(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    text = text.strip()
    if text.startswith("{"):
        try:
            opts = json.loads(text)
        except json.JSONDecodeError as e:
            raise UsageError(f"--perturb is not a JSON object: {e.msg}") from None
    else:
        opts = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise UsageError(f"--perturb entries must be key=value, got {part!r}")
            try:
                opts[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                opts[key.strip()] = value
    if not isinstance(opts, dict) or "seed" in opts:
        raise UsageError("--perturb must be an object of options; the per-task seed is derived from --seed")
    try:
        from verl_toolmaster.envs.perturb import PerturbOptions
    except ImportError as e:
        raise PrepareError(f"--perturb needs the perturbation wrapper (verl_toolmaster.envs.perturb), which cannot be imported: {e}") from None
    try:
        PerturbOptions.parse({"seed": 0, **opts})  # the wrapper's own check, so a typo fails here, not at rollout
    except (TypeError, ValueError) as e:
        raise UsageError(f"--perturb: {e}") from None
    return opts


def task_seed(seed: int, task_id: str) -> int:
    """A stable per-task seed, so every task gets its own renaming and reruns reproduce it."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{task_id}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def split_paths(out: Path, names: list[str] | None) -> dict[str | None, Path]:
    if not names:
        return {None: out}
    suffix = out.suffix or ".parquet"
    return {n: out.with_name(f"{out.stem}_{n}{suffix}") for n in names}


def _report(msg: str, err: TextIO) -> None:
    print(msg, file=err, flush=True)


def read_tasks(args: argparse.Namespace, summary: Summary, err: TextIO) -> tuple[list[Task], list[str]]:
    """Read and convert; returns the tasks and the adapter's notes (files seen but not converted)."""
    options: dict[str, Any] = {}
    if args.categories:
        if args.dataset != "bfcl":
            raise UsageError("--categories applies to --dataset bfcl only")
        options["categories"] = [c.strip() for c in args.categories.split(",") if c.strip()]
    cls = get_adapter(args.dataset)
    if args.input is None and not cls.input_optional:
        raise UsageError(f"--input is required for --dataset {args.dataset}")
    if args.input is not None and not args.input.exists():
        raise UsageError(f"--input {args.input}: no such file or directory")
    try:
        adapter = cls(**options)
    except ValueError as e:
        raise UsageError(str(e)) from None

    tasks: list[Task] = []
    seen: dict[str, str] = {}
    try:
        for rec in _progress(adapter.records(args.input), f"read {args.dataset}", not args.no_progress):
            if args.limit is not None and summary.read >= args.limit:
                break
            summary.read += 1
            try:
                if rec.error is not None:
                    raise rec.error
                task = adapter.convert(rec)
                if task.id in seen:
                    raise rec.invalid("duplicate_id", f"task id {task.id!r} already came from {seen[task.id]}")
                seen[task.id] = f"{rec.file}, row {rec.row}"
                tasks.append(task)
            except SkipRecord as e:
                summary.skipped[e.reason] += 1
                _report(f"skip: {e.message()}", err)
            except InvalidRecord as e:
                if not args.skip_invalid:
                    raise
                summary.skipped[e.reason] += 1
                _report(f"skip: {e.message()}", err)
    except InputError as e:
        raise UsageError(str(e)) from None
    return tasks, list(getattr(adapter, "notes", []))


def do_split(args: argparse.Namespace, tasks: list[Task]) -> SplitResult:
    if args.split == "none":
        return SplitResult({"": tasks})
    try:
        fractions = parse_fractions(args.fractions)
    except ValueError as e:
        raise UsageError(f"--fractions: {e}") from None
    if args.split == "random":
        res = random_split(tasks, fractions, args.seed)
    else:
        ignore = [t.strip() for t in args.ignore_tools.split(",") if t.strip()]
        res = tool_disjoint_split(tasks, fractions, args.seed, ignore)
    for name, part in res.splits.items():
        for t in part:
            t.split = name
    return res


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> Summary:
    summary = Summary()
    system = system_prompt_text(args.trial_mode, args.system_prompt_file)
    perturb = parse_perturb(args.perturb)
    perturb_splits = {s.strip() for s in args.perturb_splits.split(",") if s.strip()}
    if args.limit is not None and args.limit < 0:
        raise UsageError("--limit must be >= 0")

    tasks, notes = read_tasks(args, summary, err)
    for note in notes:
        print(f"note: {note}", file=out)
    result = do_split(args, tasks)
    if perturb_splits and args.split == "none":
        raise UsageError("--perturb-splits needs --split")
    unknown = perturb_splits - set(result.splits)
    if unknown:
        raise UsageError(f"--perturb-splits names unknown split(s) {sorted(unknown)}; splits are {sorted(result.splits)}")
    if result.dropped:
        summary.skipped[DROPPED_REASON] += len(result.dropped)

    perturbed: set[str] = set()
    if perturb is not None:
        for name, part in result.splits.items():
            if perturb_splits and name not in perturb_splits:
                continue
            for t in part:
                t.env = {**t.env, "perturb": {"seed": task_seed(args.seed, t.id), **perturb}}
                t.tags = {**t.tags, "perturbed": True}
                perturbed.add(t.id)

    names = [n for n in result.splits if n] if args.split != "none" else None
    rl_paths = split_paths(args.output, names)
    tokenizer = None
    if args.max_prompt_tokens is not None and (args.tokenizer is None or args.max_prompt_tokens < 1):
        raise UsageError("--max-prompt-tokens needs --tokenizer and a value >= 1")
    if args.tokenizer is not None:
        try:
            tokenizer = load_tokenizer(args.tokenizer)
        except (OSError, ValueError) as e:
            raise UsageError(f"--tokenizer {args.tokenizer}: {e}") from None
    for name, part in result.splits.items():
        path = rl_paths[name or None]
        rows = [rl_row(t, i, system) for i, t in enumerate(part)]
        if tokenizer is not None:
            lengths = [prompt_tokens(r, tokenizer) for r in rows]
            print(f"prompt tokens [{name or 'all'}]: {length_report(lengths, [t.id for t in part], args.max_prompt_tokens)}", file=out)
            if args.max_prompt_tokens is not None:
                keep = [t for t, n in zip(part, lengths) if n <= args.max_prompt_tokens]
                if len(keep) < len(part):
                    summary.skipped["prompt_too_long"] += len(part) - len(keep)
                    rows = [rl_row(t, i, system) for i, t in enumerate(keep)]
        summary.split_sizes[name or "all"] = len(rows)
        if not rows:
            print(f"note: no RL rows for {name or 'the output'}; {path} not written", file=out)
            continue
        write_rl_parquet(rows, path)
        summary.written += len(rows)
        summary.repaired.update(kind for t in part for kind in repair_kinds(t.tags))
        summary.outputs.append(str(path))
    if result.dropped:
        dropped_path = args.output.with_name(f"{args.output.stem}_dropped.json")
        splits_of_tool: dict[str, set[str]] = {}
        for name, part in result.splits.items():
            for t in part:
                for tool in tool_names(t) - set(result.ignored_tools):
                    splits_of_tool.setdefault(tool, set()).add(name)
        listing = [
            {"id": t.id, "tools_in_splits": {tool: sorted(splits_of_tool[tool]) for tool in sorted(tool_names(t)) if tool in splits_of_tool}}
            for t in result.dropped
        ]
        dropped_path.write_text(json.dumps({"reason": "its tools are spread over several splits", "ignored_tools": result.ignored_tools, "dropped": listing}, indent=1))
        summary.outputs.append(str(dropped_path))

    if args.sft_output is not None:
        write_sft(args, result, perturbed, summary)

    for name, n in summary.split_sizes.items():
        print(f"rl rows [{name}]: {n}", file=out)
    if result.dropped:
        print(f"tool-disjoint split dropped {len(result.dropped)} task(s) whose tools fall in several splits (listed in {dropped_path})", file=out)
    for note in summary.notes:
        print(f"note: {note}", file=out)
    if args.sft_output is not None:
        print(f"sft rows: {summary.sft_written}; without sft row: {json.dumps(dict(sorted(summary.sft_skipped.items())))}", file=out)
    print(f"wrote: {', '.join(summary.outputs)}", file=out)
    print(summary.line(), file=out, flush=True)
    return summary


def write_sft(args: argparse.Namespace, result: SplitResult, perturbed: set[str], summary: Summary) -> None:
    system = system_prompt_text("off", None)  # plain traces: the protocol without trials
    names = [n for n in result.splits if n] if args.split != "none" else None
    paths = split_paths(args.sft_output, names)
    env_checked: set[str] = set()
    for name, part in result.splits.items():
        rows = []
        for t in _progress(part, f"sft {name or 'rows'}", not args.no_progress):
            if t.id in perturbed:
                summary.sft_skipped["perturbed"] += 1  # the wrapper's renaming is only known to the environment
                continue
            try:
                check_sft(t)  # structure first: no environment work for tasks that cannot have a row
                observations = None
                if any(call for steps in t.gold or [] for step in steps for call in step):
                    # every gold call must succeed in the task's own environment (for the schema kind: validate
                    # against the tool schemas), and its observations feed the tool messages
                    if t.env["kind"] not in env_checked:
                        _check_env(t)
                        env_checked.add(t.env["kind"])
                    observations = replay_observations(t)
                rows.append(sft_row(t, system, observations))
            except SFTUnavailable as e:
                summary.sft_skipped[e.reason] += 1
        if not rows:
            summary.notes.append(f"no SFT rows for {name or 'the output'}; {paths[name or None]} not written")
            continue
        try:
            write_sft_parquet(rows, paths[name or None], args.sft_format)
        except ValueError as e:
            raise UsageError(f"--sft-format {args.sft_format}: {e}") from None
        summary.sft_written += len(rows)
        summary.outputs.append(str(paths[name or None]))


def _check_env(task: Task) -> None:
    """Fail the run (not each task) when the environment that must produce observations cannot be built."""
    try:
        from verl_toolmaster.envs import make_env

        env = make_env(task.env)
    except (ImportError, ValueError) as e:
        raise PrepareError(
            f"SFT rows of {task.source} need the observations of the gold calls, which come from the "
            f"{task.env.get('kind')!r} environment, and it cannot be built here: {e}"
        ) from None
    import asyncio

    asyncio.run(env.close())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except InvalidRecord as e:
        print(f"error: {e.message()} (use --skip-invalid to skip such records)", file=sys.stderr)
        return 2
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except PrepareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
