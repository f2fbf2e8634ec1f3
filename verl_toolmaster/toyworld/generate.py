"""``python -m verl_toolmaster.toyworld.generate --out DIR``: one ToyWorld with its RL rows and SFT flavours.

Writes ``world.json``, ``tasks_{train,test}.jsonl`` (Task records, read by ``prepare.py --dataset toyworld``), RL rows
``{train,test}_{on,off}.parquet`` with the trial-and-execution (``on``) or direct (``off``) system text, and the SFT
flavours of the train tasks: ``sft_direct.parquet`` (the gold call, its real observation, the answer: ``data.sft``'s
plain writer), ``sft_selfcorrect.parquet`` and ``sft_trial.parquet`` (played by :mod:`.teachers` through the real
agent loop). ``--help`` lists the options; docs/toyworld.md describes the world.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from ..data.task import Task
from .world import VOCABULARIES, WorldConfig, build_world, make_tasks, system_text, tool_vocabulary, write_tasks

SFT_FLAVOURS = ("direct", "selfcorrect", "trial")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m verl_toolmaster.toyworld.generate",
        description="Generate a ToyWorld (unfamiliar tools with partly wrong docs): task files, RL parquet for both "
        "protocols, and SFT parquet in the direct, self-correcting and trial-and-execution flavours. Details: docs/toyworld.md.",
        epilog="Writes DIR/world.json, DIR/tasks_{train,test}.jsonl, DIR/{train,test}_{on,off}.parquet (RL rows with the "
        "trial / direct system text), DIR/sft_{direct,selfcorrect,trial}.parquet (train tasks only). The last stdout line "
        "is one JSON object of counts. Exit codes: 0 done, 2 bad options, 1 a gold trace or a teacher's trajectory failed.",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0, help="world seed: names, behaviours and tasks (default 0)")
    p.add_argument("--tools", type=int, default=WorldConfig.tools_per_split, help="tools per catalogue (default %(default)s)")
    p.add_argument("--train-tasks", type=int, default=WorldConfig.train_tasks, help="tasks over the train tools (default %(default)s)")
    p.add_argument("--test-tasks", type=int, default=WorldConfig.test_tasks, help="tasks over the held-out test tools (default %(default)s)")
    p.add_argument("--levels", default="1,2", help="difficulty levels of the tasks, comma-separated, from 1-5 (default 1,2)")
    p.add_argument("--sft-levels", default=None,
                   help="levels whose train tasks the SFT flavours demonstrate (default: all of --levels); the RL rows keep "
                   "every level, so GRPO also trains on levels SFT never showed")
    p.add_argument("--rl-levels", default=None,
                   help="levels whose train tasks go into the RL rows, train_{on,off}.parquet (default: all of --levels), "
                   "e.g. only the levels SFT does not show, so every GRPO group is one SFT left unsolved; the held-out "
                   "test rows keep every level")
    p.add_argument("--vocabulary", choices=VOCABULARIES, default=WorldConfig.vocabulary,
                   help="name words shared by the train and test catalogues, tool names split between them (default), or "
                   "disjoint word halves per catalogue")
    p.add_argument("--max-int", type=int, default=WorldConfig.max_int, help="integer arguments are drawn from 1..N (default %(default)s)")
    p.add_argument("--trial-teacher", choices=("probe", "scripted"), default="probe",
                   help="teacher of the trial flavour: probe (default; ProbeTeacher: documented call as the probe, terse notes) or "
                   "scripted (the project's scripted teacher: a gold-derived failed probe and its correction, verbose notes)")
    p.add_argument("--no-sft", action="store_true", help="write task files and RL parquet only")
    p.add_argument("--concurrency", type=int, default=8, help="trajectories synthesised at once (default 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _levels(text: str, flag: str = "--levels") -> tuple[int, ...]:
    try:
        levels = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"{flag} must be comma-separated integers, got {text!r}") from None
    return levels


def direct_sft_rows(tasks: list[Task]) -> list[dict[str, Any]]:
    """Direct-flavour SFT rows: the gold call, its real observation, the answer (``data.sft``'s plain writer)."""
    from ..data.sft import SFTUnavailable, replay_observations, sft_row

    rows = []
    for t in tasks:
        try:
            rows.append(sft_row(t, system_text("off"), replay_observations(t)))
        except SFTUnavailable as e:  # a gold call the environment rejects is a generator bug: never hidden
            raise RuntimeError(f"{t.id}: {e}") from None
    return rows


def teacher_rows(flavour: str, tasks: list[Task], concurrency: int, progress: bool, err: TextIO) -> list[dict[str, Any]]:
    """SFT rows of a teacher-played flavour (``selfcorrect`` or ``trial``); a dropped trajectory is a generator bug."""
    import asyncio

    from ..data.task import rl_row
    from .teachers import TRIAL_MODE, synthesize

    rows = [rl_row(t, i, system_text(TRIAL_MODE[flavour])) for i, t in enumerate(tasks)]
    kept, dropped = asyncio.run(synthesize(flavour, rows, concurrency, progress, err))
    if dropped:
        raise RuntimeError(f"the {flavour} teacher's trajectories failed quality checks: {dropped}")
    return kept


def _scripted_rows(rl_path: Path, out_path: Path, concurrency: int, progress: bool, out: TextIO, err: TextIO) -> dict[str, Any]:
    """Trial-flavour SFT with the project's scripted teacher (``python -m verl_toolmaster.synth scripted``)."""
    import io

    from ..synth.cli import main as synth_main

    buf = io.StringIO()
    argv = ["scripted", "--data", str(rl_path), "--out", str(out_path), "--fix-in-trial", "0", "--execute-error", "0",
            "--concurrency", str(concurrency), "--prompt-length", "4096", "--response-length", "1024"]
    if not progress:
        argv.append("--no-progress")
    code = synth_main(argv, out=buf, err=err)
    text = buf.getvalue()
    out.write(text)
    if code != 0:
        raise RuntimeError(f"scripted synthesis failed with exit code {code}")
    return json.loads(text.strip().splitlines()[-1])


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> dict[str, Any]:
    from ..data.sft import write_rl_parquet, write_sft_parquet
    from ..data.task import rl_row

    cfg = WorldConfig(args.seed, args.tools, args.train_tasks, args.test_tasks, _levels(args.levels), args.max_int,
                      vocabulary=args.vocabulary)
    world = build_world(cfg.seed, cfg.tools_per_split, cfg.table_size, cfg.vocabulary)
    outdir: Path = args.out
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "world.json").write_text(json.dumps({"config": asdict(cfg), **world.to_dict()}, indent=1))
    tasks = {"train": make_tasks(world, "train", cfg.train_tasks, cfg.levels, cfg.max_int), "test": make_tasks(world, "test", cfg.test_tasks, cfg.levels, cfg.max_int)}
    shared = ({t.name for t in world.catalogues["train"]} & {t.name for t in world.catalogues["test"]}
              if cfg.vocabulary == "shared" else tool_vocabulary(tasks["train"]) & tool_vocabulary(tasks["test"]))
    if shared:
        raise AssertionError(f"train and test tools share names {sorted(shared)}")
    rl_levels = _levels(args.rl_levels, "--rl-levels") if args.rl_levels else cfg.levels
    if not set(rl_levels) <= set(cfg.levels):
        raise ValueError(f"--rl-levels {sorted(rl_levels)} must be a subset of --levels {sorted(cfg.levels)}")
    summary: dict[str, Any] = {"seed": cfg.seed, "tasks": {s: len(v) for s, v in tasks.items()}}
    for split, part in tasks.items():
        write_tasks(part, outdir / f"tasks_{split}.jsonl")
        rl = [t for t in part if t.tags["level"] in rl_levels] if split == "train" else part
        if part and not rl:
            raise ValueError(f"no {split} task has a level in --rl-levels {sorted(rl_levels)}")
        for mode in ("on", "off"):
            if rl:
                write_rl_parquet([rl_row(t, i, system_text(mode)) for i, t in enumerate(rl)], outdir / f"{split}_{mode}.parquet")
    summary["rl_levels"], summary["rl_rows"] = sorted(rl_levels), {s: len(v) if s != "train" else sum(t.tags["level"] in rl_levels for t in v)
                                                                   for s, v in tasks.items()}
    if args.no_sft or not tasks["train"]:
        return summary
    sft_levels = _levels(args.sft_levels, "--sft-levels") if args.sft_levels else cfg.levels
    if not set(sft_levels) <= set(cfg.levels):
        raise ValueError(f"--sft-levels {sorted(sft_levels)} must be a subset of --levels {sorted(cfg.levels)}")
    train = [t for t in tasks["train"] if t.tags["level"] in sft_levels]
    summary["sft_levels"] = sorted(sft_levels)
    if not train:
        raise ValueError(f"no train task has a level in --sft-levels {sorted(sft_levels)}")
    progress = not args.no_progress
    for flavour in SFT_FLAVOURS:
        path = outdir / f"sft_{flavour}.parquet"
        if flavour == "trial" and args.trial_teacher == "scripted":
            if set(sft_levels) != set(cfg.levels) or set(rl_levels) != set(cfg.levels):
                raise ValueError("--trial-teacher scripted plays every row of train_on.parquet: --sft-levels and --rl-levels "
                                 "cannot limit it")
            report = _scripted_rows(outdir / "train_on.parquet", path, args.concurrency, progress, out, err)
            summary["sft_trial"], summary["sft_trial_dropped"] = report["written"], report["dropped"]
            continue
        rows = direct_sft_rows(train) if flavour == "direct" else teacher_rows(flavour, train, args.concurrency, progress, err)
        write_sft_parquet(rows, path)
        summary[f"sft_{flavour}"] = len(rows)
    return summary


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = run(args, out, err)
    except ValueError as e:
        print(f"error: {e}", file=err)
        return 2
    except RuntimeError as e:
        print(f"error: {e}", file=err)
        return 1
    print(json.dumps(summary, sort_keys=True), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
