"""The CPU main job's summary (recipes/cpu/run_pipeline.sh): base, SFT and GRPO side by side.

    python -m verl_toolmaster.eval.pipeline OUT_DIR MODEL_NAME

Reads, under OUT_DIR: ``eval/<dataset>_<stage>/{metrics,trajectories}`` (``python -m verl_toolmaster.eval``, stages
base, sft, grpo), ``sft_metrics.jsonl`` and ``grpo_metrics.jsonl`` (verl's file logger), ``pipeline_times.jsonl`` and
``run.json`` (the job's settings). Prints the table, writes ``OUT_DIR/report.html`` (inline SVG charts, no scripts)
and ends with one JSON object on the last line::

    {"model", "eval": {dataset: {stage: metrics}}, "by_level": {dataset: {stage: {level: answer}}},
     "gain": {dataset: {group: GRPO minus SFT, paired on the same rows}}, "sft": {"loss": [[step, loss]]},
     "grpo": {"zero_spread_share": [one per step], "answer_mixed_share": [...], "reward": {...}, "heldout": [...]},
     "stage_seconds", "total_seconds", "report"}

A gain's ``beyond_half_width`` says whether GRPO's mean gain over SFT exceeds its 95% interval's half-width.
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Any

from markupsafe import Markup

from ..rollout_metrics import ANSWER_MIXED, ZERO_SPREAD
from .report import _fmt, grouped_chart, hbar_chart, line_chart
from .stats import summary, wilson

STAGES = ("base", "sft", "grpo")
STAGE_COLORS = {"base": "#9e9e9e", "sft": "#5b8def", "grpo": "#e8743b"}
# answer = task success; score/format/trial/cost = the toolmaster reward and its components (docs/reward.md)
COLUMNS = ("n", "answer", "score", "format", "trial", "cost", "trial_calls", "execute_calls", "self_corrections",
           "tool_error_rate", "turns")
# GRPO step metrics shown as curves: short name -> verl metric
REWARD_KEYS = {"score": "critic/score/mean", "answer": "reward/answer/mean", "format": "reward/format/mean",
               "trial": "reward/trial/mean", "cost": "reward/cost/mean"}
GROUP_KEYS = {"zero_spread_share": ZERO_SPREAD, "answer_mixed_share": ANSWER_MIXED}
VAL_KEY = "val-core/toyworld/acc/mean@1"  # held-out accuracy when main_ppo validates during GRPO
SERIES_COLORS = {"score": "#333333", "answer": "#2ca02c", "format": "#1f77b4", "trial": "#ff7f0e", "cost": "#9467bd",
                 "zero_spread_share": "#d62728", "answer_mixed_share": "#2ca02c", "loss": "#5b8def", "held-out": "#e8743b"}
SHOWN_TRAJECTORIES = 3


class PipelineError(Exception):
    """An output of the main job is missing or malformed."""


def _jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    for i, line in enumerate(path.read_text().splitlines() if path.is_file() else [], 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise PipelineError(f"{path}, line {i}: not JSON ({e.msg})") from None
    return out


def _answer(t: dict[str, Any]) -> float:
    return float(t["reward"].get("answer") or 0.0)


def _level(t: dict[str, Any]) -> str | None:
    lv = t["reward"].get("toyworld/level")
    return None if lv is None else str(int(lv))


def collect(out: Path) -> tuple[dict, dict]:
    """({dataset: {stage: overall metrics}}, {dataset: {stage: trajectories that ran}}) of every evaluation found."""
    results: dict[str, dict[str, dict]] = {}
    trajs: dict[str, dict[str, list]] = {}
    for path in sorted((out / "eval").glob("*/metrics.json")):
        dataset, _, stage = path.parent.name.rpartition("_")
        if stage not in STAGES or not dataset:
            continue
        metrics = json.loads(path.read_text())
        if not metrics.get("overall", {}).get("complete", True):
            raise PipelineError(f"{path}: the evaluation did not finish (pending rows); rerun the pipeline")
        results.setdefault(dataset, {})[stage] = {c: metrics["overall"].get(c) for c in COLUMNS}
        trajs.setdefault(dataset, {})[stage] = [t for t in _jsonl(path.parent / "trajectories.jsonl") if t.get("status") == "ok"]
    order = sorted(results, key=lambda d: (d != "toyworld", d))  # the trained-on world first

    def staged(x: dict[str, Any]) -> dict[str, Any]:
        return {st: x[st] for st in STAGES if st in x}

    return {d: staged(results[d]) for d in order}, {d: staged(trajs[d]) for d in order}


def _groups(trajs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """"all" and, for ToyWorld rows, one group per difficulty level."""
    out: dict[str, list[dict[str, Any]]] = {"all": trajs}
    for t in trajs:
        if _level(t) is not None:
            out.setdefault(_level(t), []).append(t)
    return dict(sorted(out.items(), key=lambda kv: (kv[0] != "all", kv[0])))


def accuracy(trajs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean answer, its 95% interval (Wilson for 0/1 answers, t otherwise) and n."""
    values = [_answer(t) for t in trajs]
    if all(v in (0.0, 1.0) for v in values):
        k = int(sum(values))
        return {"n": len(values), "acc": k / len(values), "solved": k, "ci95": wilson(k, len(values))}
    s = summary(values)
    return {"n": len(values), "acc": s["mean"], "ci95": s["ci95"]}


def gain(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``after`` minus ``before`` on the rows both ran (paired by row id): mean, 95% t-interval, its half-width and
    whether the mean exceeds it; None when fewer than two rows pair up."""
    by_id = {t["id"]: _answer(t) for t in before}
    diffs = [_answer(t) - by_id[t["id"]] for t in after if t["id"] in by_id]
    if len(diffs) < 2:
        return None
    s = summary(diffs)
    half = (s["ci95"][1] - s["ci95"][0]) / 2
    return {"n": s["n"], "mean": s["mean"], "ci95": s["ci95"], "half_width": half, "beyond_half_width": s["mean"] > half,
            "improved": sum(d > 0 for d in diffs), "worsened": sum(d < 0 for d in diffs)}


def _curve(lines: list[dict[str, Any]], key: str) -> list[list[float]]:
    return [[int(x["step"]), float(x["data"][key])] for x in lines if isinstance(x.get("data"), dict) and key in x["data"]]


def grpo_curves(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Per GRPO step: the zero-spread and mixed-answer shares of the groups, the reward components, and held-out
    accuracy where main_ppo validated. A step that logged no share gets ``None`` (reported, not hidden)."""
    steps = sorted({int(x["step"]) for x in lines if isinstance(x.get("data"), dict) and "critic/score/mean" in x["data"]})
    out: dict[str, Any] = {"steps": steps}
    for name, key in GROUP_KEYS.items():
        by_step = dict((int(s), v) for s, v in _curve(lines, key))
        out[name] = [by_step.get(s) for s in steps]
    out["reward"] = {name: _curve(lines, key) for name, key in REWARD_KEYS.items()}
    out["heldout"] = _curve(lines, VAL_KEY)
    return out


def _pick_trajectories(trajs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """A few held-out rows shown at every stage: first those GRPO changed, then the rest, in id order."""
    ids = sorted(set.intersection(*(set(t["id"] for t in ts) for ts in trajs.values()))) if trajs else []
    by = {stage: {t["id"]: t for t in ts} for stage, ts in trajs.items()}

    def changed(i: str) -> bool:
        return "sft" in by and "grpo" in by and _answer(by["sft"][i]) != _answer(by["grpo"][i])

    chosen = sorted(ids, key=lambda i: (not changed(i), i))[:SHOWN_TRAJECTORIES]
    shown = []
    for i in chosen:
        question = next((m["content"] for m in reversed(by[next(iter(by))][i].get("messages") or []) if m.get("role") == "user"), "")
        shown.append({"id": i, "question": str(question), "stages": [
            {"stage": stage, "answer": _answer(by[stage][i]), "reason": str(by[stage][i]["reward"].get("reason")),
             "segments": [(str(label), str(text)) for label, text in by[stage][i].get("segments") or []]}
            for stage in STAGES if stage in by]})
    return shown


def build(out: Path, model: str) -> dict[str, Any]:
    """The summary object (see the module docstring); raises PipelineError when no evaluation ran."""
    results, trajs = collect(out)
    if not results:
        raise PipelineError(f"no evaluation under {out}/eval: the pipeline's evaluation stages did not run")
    times = _jsonl(out / "pipeline_times.jsonl")
    stage_seconds = {t["stage"]: t["seconds"] for t in times}  # a stage rerun (FROM=...) keeps its last time
    run = json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else {}
    by_level, accuracy_table, gains = {}, {}, {}
    for dataset, stages in trajs.items():
        accuracy_table[dataset] = {stage: {g: accuracy(ts) for g, ts in _groups(stages[stage]).items() if ts}
                                   for stage in STAGES if stages.get(stage)}
        levels = {stage: {g: a["acc"] for g, a in groups.items() if g != "all"} for stage, groups in accuracy_table[dataset].items()}
        if any(levels.values()):
            by_level[dataset] = levels
        if stages.get("sft") and stages.get("grpo"):
            before, after = _groups(stages["sft"]), _groups(stages["grpo"])
            gains[dataset] = {g: x for g in after if (x := gain(before.get(g, []), after[g])) is not None}
            if dataset == "toyworld":
                # the levels GRPO trained on (the bar) and those only GRPO trained on, when they are not "all"
                levels = run.get("levels", [])
                trained = run.get("grpo_levels", levels)
                for name, subset in (("grpo_levels", trained), ("not_in_sft", [lv for lv in trained if lv not in run.get("sft_levels", [])])):
                    if not subset or set(subset) == set(levels) or (name == "not_in_sft" and set(subset) == set(trained)):
                        continue
                    pick = lambda ts, keep={str(lv) for lv in subset}: [t for t in ts if _level(t) in keep]  # noqa: E731
                    if (x := gain(pick(stages["sft"]), pick(stages["grpo"]))) is not None:
                        gains[dataset][name] = x
            if not gains[dataset]:
                del gains[dataset]
    return {"model": model, "run": run, "eval": results, "by_level": by_level, "accuracy": accuracy_table, "gain": gains,
            "sft": {"loss": _curve(_jsonl(out / "sft_metrics.jsonl"), "train/loss")},
            "grpo": grpo_curves(_jsonl(out / "grpo_metrics.jsonl")),
            "stage_seconds": stage_seconds, "total_seconds": round(sum(stage_seconds.values()), 1),
            "trajectories": {d: _pick_trajectories({s: ts for s, ts in stages.items() if ts}) for d, stages in trajs.items()}}


def charts(s: dict[str, Any]) -> list[Markup]:
    """The report's charts: accuracy per dataset, level and stage (with intervals), GRPO's curves, SFT loss, times."""
    out = []
    for dataset, stages in s["accuracy"].items():
        groups = sorted({g for st in stages.values() for g in st}, key=lambda g: (g != "all", g))
        rows = [(f"level {g}" if g != "all" else "all", [(stage, stages[stage][g]["acc"], stages[stage][g]["ci95"]) if g in stages[stage]
                                                         else (stage, None) for stage in stages]) for g in groups]
        out.append(grouped_chart(f"{dataset}: held-out accuracy by stage (95% interval)", rows, STAGE_COLORS, vmax=1.0))
    g = s["grpo"]
    steps = g["steps"]
    out.append(line_chart("GRPO groups per step (share)",
                          {name: [(st, v) for st, v in zip(steps, g[name]) if v is not None] for name in GROUP_KEYS},
                          SERIES_COLORS, ymin=0.0, ymax=1.0))
    out.append(line_chart("GRPO reward per step (training rollouts)", g["reward"], SERIES_COLORS))
    if g["heldout"]:
        out.append(line_chart("Held-out ToyWorld accuracy during GRPO", {"held-out": g["heldout"]},
                              SERIES_COLORS, ymin=0.0, ymax=1.0))
    out.append(line_chart("SFT loss per step", {"loss": s["sft"]["loss"]}, SERIES_COLORS))
    out.append(hbar_chart("Stage wall time (seconds)", list(s["stage_seconds"].items()), fmt="{:.0f}", color="#9b8fd1"))
    return out


def render(s: dict[str, Any]) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("verl_toolmaster.eval", "templates"), autoescape=select_autoescape(default=True, default_for_string=True))
    tables = {dataset: [(stage, [_fmt(m.get(c)) for c in COLUMNS]) for stage, m in stages.items()] for dataset, stages in s["eval"].items()}
    levels = {}
    for dataset, stages in s["accuracy"].items():
        groups = sorted({g for st in stages.values() for g in st}, key=lambda g: (g != "all", g))
        levels[dataset] = [(g, [f"{a['acc']:.3f} [{a['ci95'][0]:.2f}, {a['ci95'][1]:.2f}] n={a['n']}" if (a := stages[st].get(g)) else "–"
                                for st in stages],
                            (lambda x: f"{x['mean']:+.3f} [{x['ci95'][0]:+.2f}, {x['ci95'][1]:+.2f}]{' (beyond half-width)' if x['beyond_half_width'] else ''}"
                             if x else "–")(s["gain"].get(dataset, {}).get(g)))
                           for g in groups]
    return env.get_template("pipeline.html.j2").render(
        title=f"ToolMaster CPU main job: {s['model']}", generated=_dt.datetime.now().isoformat(timespec="seconds"), s=s,
        columns=COLUMNS, tables=tables, levels=levels, level_stages={d: list(st) for d, st in s["accuracy"].items()},
        charts=charts(s), zero_spread=[_fmt(v) for v in s["grpo"]["zero_spread_share"]])


def print_table(s: dict[str, Any]) -> None:
    for dataset, stages in s["eval"].items():
        print(f"\n{dataset} (held-out rows)")
        print(f"{'stage':<6}" + "".join(f"{c:>{len(c) + 2}}" for c in COLUMNS))
        for stage, m in stages.items():
            print(f"{stage:<6}" + "".join(f"{_fmt(v):>{len(c) + 2}}" for c, v in m.items()))
        for stage, by in s["by_level"].get(dataset, {}).items():
            print(f"  answer by level ({stage}): " + ", ".join(f"L{lv} {v:.3f}" for lv, v in by.items()))
        for g, x in s["gain"].get(dataset, {}).items():
            print(f"  GRPO - SFT ({g}, {x['n']} rows): {x['mean']:+.3f} [{x['ci95'][0]:+.3f}, {x['ci95'][1]:+.3f}]"
                  f"{', beyond the half-width' if x['beyond_half_width'] else ''}")
    zs = s["grpo"]["zero_spread_share"]
    if zs:
        print("\nGRPO zero-spread share per step: " + ", ".join(_fmt(v) for v in zs))
    if any(v is None for v in zs):
        print("warning: a GRPO step logged no toolmaster/grpo/zero_spread_share (see grpo_metrics.jsonl)", file=sys.stderr)
    if s["stage_seconds"]:
        print("stage wall times: " + ", ".join(f"{k} {v:.0f}s" for k, v in s["stage_seconds"].items()))


def main(out: Path, model: str) -> dict[str, Any]:
    try:
        s = build(out, model)
    except PipelineError as e:
        raise SystemExit(f"error: {e}") from None
    report = out / "report.html"
    tmp = report.with_suffix(".html.tmp")
    tmp.write_text(render(s), encoding="utf-8")
    tmp.replace(report)
    print_table(s)
    print(f"report: {report}")
    line = {k: v for k, v in s.items() if k not in ("trajectories", "accuracy", "run")}
    line["report"] = str(report)
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), sys.argv[2])
