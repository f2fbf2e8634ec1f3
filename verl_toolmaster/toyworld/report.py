"""Report of the ToyWorld experiment (``recipes/cpu/run_toyworld.sh``): ``python -m verl_toolmaster.toyworld.report OUT``.

Reads ``OUT/run.json`` (the base model and the budgets the run used), ``OUT/timing.jsonl``, and for every
``OUT/seed<S>/<arm>`` (arms ``direct``, ``selfcorrect``, ``trial``; those present, the same in every seed) the verl
file-logger JSONL of its SFT (``sft_metrics.jsonl``) and GRPO (``grpo_metrics.jsonl``) runs and the GRPO
validation dumps on the held-out tools (``val/<step>.jsonl``: one line per held-out task). Writes

* ``OUT/report.json``: ``model``; ``<arm>_heldout_acc`` (held-out accuracy after GRPO, mean over seeds) for every
  arm; ``seed_spread`` (the largest of the arms' sample standard deviations over seeds); per-seed values and 95%
  t-intervals after SFT (GRPO step 0) and after GRPO (``<arm>_sft``, ``<arm>_grpo``), the same per level
  (``by_level``), margins of trial over the others; the held-out tasks of all seeds pooled, with 95% Wilson
  intervals (``pooled``), and trial minus each other arm on the same tasks, paired by ground truth, with 95%
  t-intervals and a verdict (``paired``), overall and per level; the same differences (and each arm's accuracy, and
  its GRPO-minus-SFT gain) with 95% cluster-bootstrap intervals that resample seeds, then tasks within each seed
  (``cluster``), and the pre-registered verdicts that read them (``verdicts``, :data:`VERDICT_RULES`, written before
  the run in docs/toyworld.md); the share of GRPO groups with zero reward spread at every step
  (``zero_spread_share``); ``diagnostics`` per arm, stage and level (:mod:`.diagnostics`);
  held-out accuracy at every validated GRPO step (``heldout_curve``); the budgets (``budget``: the run's settings,
  the SFT tokens each arm saw); stage timings;
* ``OUT/report.html`` (:mod:`.report_html`): the same with learning curves and a few held-out trajectories per arm.

A missing or unreadable input is an error naming the file; nothing is filled in.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..eval.stats import summary, wilson
from ..rollout_metrics import ANSWER_MIXED, ZERO_SPREAD
from . import diagnostics as diag

ARMS = ("direct", "selfcorrect", "trial")
COMPONENTS = ("critic/score/mean", "reward/answer/mean", "reward/format/mean", "reward/trial/mean", "reward/cost/mean")
VAL_KEY = "val-core/toyworld/acc/mean@1"
STAGES = ("sft", "grpo")
GROUP_KEYS = (ZERO_SPREAD, ANSWER_MIXED)
CONTROL_LEVELS = ("1", "2", "3")  # a trial can only cost here: a failed execute call is free and its error tells all
CONSEQUENCE_LEVELS = ("4", "5")  # a wrong execute call's effect stays; a trial on the fork shows it for free
BOOTSTRAP = 4000  # cluster-bootstrap resamples
# The pre-registered verdicts (docs/toyworld.md, "Pre-registration"): name -> (arm, other arm or stage pair, levels).
# Each reads the 95% cluster-bootstrap interval of the difference after GRPO: "better" when it lies above 0, "worse"
# below 0, "undecided" otherwise.
VERDICT_RULES = {
    "trial_vs_selfcorrect_consequence": ("trial", "selfcorrect", CONSEQUENCE_LEVELS),
    "trial_vs_direct_consequence": ("trial", "direct", CONSEQUENCE_LEVELS),
    "trial_vs_selfcorrect_controls": ("trial", "selfcorrect", CONTROL_LEVELS),
    "trial_vs_direct_controls": ("trial", "direct", CONTROL_LEVELS),
    "trial_vs_selfcorrect_all": ("trial", "selfcorrect", None),
}


class ReportError(Exception):
    """An input of the report is missing or malformed."""


@dataclass
class ArmRun:
    """What one arm of one seed produced."""

    seed: int
    arm: str
    sft: list[dict[str, Any]] = field(default_factory=list)  # file-logger lines of the SFT run
    grpo: list[dict[str, Any]] = field(default_factory=list)  # file-logger lines of the GRPO run
    val: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # GRPO step -> held-out samples

    def curve(self, key: str, lines: list[dict[str, Any]]) -> list[tuple[int, float]]:
        return [(int(x["step"]), float(x["data"][key])) for x in lines if key in x["data"] and diag.finite(x["data"][key])]

    def samples(self, stage: str) -> list[dict[str, Any]]:
        """Held-out samples after SFT (``"sft"``: the first validation) or after GRPO (``"grpo"``: the last)."""
        steps = sorted(self.val)
        return self.val[steps[0] if stage == "sft" else steps[-1]]

    def heldout(self, stage: str) -> float:
        return _acc(self.samples(stage))

    def by_level(self, stage: str) -> dict[str, float]:
        return {lv: _acc(s) for lv, s in diag.by_level(self.samples(stage)).items()}

    def diagnostics(self, stage: str) -> dict[str, Any]:
        samples = self.samples(stage)
        return {"all": diag.summarize(samples), **{lv: diag.summarize(s) for lv, s in diag.by_level(samples).items()}}

    def heldout_curve(self) -> dict[str, list[tuple[int, float]]]:
        """Held-out accuracy at every validated GRPO step, overall and per level."""
        out: dict[str, list[tuple[int, float]]] = {"all": [(step, _acc(s)) for step, s in sorted(self.val.items())]}
        for step, samples in sorted(self.val.items()):
            for lv, part in diag.by_level(samples).items():
                out.setdefault(lv, []).append((step, _acc(part)))
        return out

    def sft_tokens(self) -> float:
        """Tokens the SFT run trained on (sum of verl's ``train/global_tokens``)."""
        return sum(v for _, v in self.curve("train/global_tokens", self.sft))


def _acc(samples: list[dict[str, Any]]) -> float:
    return statistics.fmean(float(s["acc"]) for s in samples)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ReportError(f"{path}: missing")
    out = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ReportError(f"{path}, line {i}: not JSON ({e.msg})") from None
    return out


def load_run(out: Path, seed: int, arm: str) -> ArmRun:
    d = out / f"seed{seed}" / arm
    run = ArmRun(seed, arm, _read_jsonl(d / "sft_metrics.jsonl"), _read_jsonl(d / "grpo_metrics.jsonl"))
    val_dir = d / "val"
    files = sorted(val_dir.glob("*.jsonl"), key=lambda p: int(p.stem)) if val_dir.is_dir() else []
    if len(files) < 2:
        raise ReportError(f"{val_dir}: expected validation dumps before and after GRPO, found {[f.name for f in files]}")
    for f in files:
        samples = _read_jsonl(f)
        missing = [k for k in ("acc", "toyworld/level") if samples and k not in samples[0]]
        if not samples or missing:
            raise ReportError(f"{f}: no held-out samples or no {missing} in them")
        run.val[int(f.stem)] = samples
    return run


def seeds_in(out: Path) -> list[int]:
    seeds = sorted(int(p.name[4:]) for p in out.glob("seed*") if p.is_dir() and p.name[4:].isdigit())
    if not seeds:
        raise ReportError(f"{out}: no seed<N> directories")
    return seeds


def arms_in(out: Path, seeds: list[int]) -> list[str]:
    """The arms of the run: those of ARMS with a directory in the first seed, required in every seed."""
    arms = [a for a in ARMS if (out / f"seed{seeds[0]}" / a).is_dir()]
    if not arms:
        raise ReportError(f"{out / f'seed{seeds[0]}'}: no arm directory ({', '.join(ARMS)})")
    for s in seeds[1:]:
        missing = [a for a in arms if not (out / f"seed{s}" / a).is_dir()]
        if missing:
            raise ReportError(f"{out / f'seed{s}'}: arms {missing} missing (seed {seeds[0]} has them)")
    return arms


def _solved(sample: dict[str, Any]) -> bool:
    return float(sample["acc"]) >= 1.0


def pooled(per_seed: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Held-out tasks of all seeds pooled, overall and per level: solved, n, accuracy and its 95% Wilson interval.

    Tasks are the unit here (the interval reflects which tasks were drawn, given the trained models); ``summary``
    over seeds reflects training-seed variation."""
    samples = [s for seed in per_seed for s in seed]
    groups = {"all": samples, **diag.by_level(samples)}
    out = {}
    for g, part in groups.items():
        k = sum(map(_solved, part))
        out[g] = {"solved": k, "n": len(part), "acc": k / len(part), "ci95": wilson(k, len(part))}
    return out


def _by_task(run: ArmRun, stage: str) -> dict[str, list[dict[str, Any]]]:
    """``run``'s held-out samples at ``stage`` keyed by their ground truth (the task they were drawn for)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for s in run.samples(stage):
        if "gts" not in s:
            raise ReportError(f"seed{run.seed}/{run.arm}/val ({stage}): a held-out sample has no 'gts' (the task's ground truth) to pair the arms by")
        out.setdefault(str(s["gts"]), []).append(s)
    return out


def paired(trial: list[ArmRun], other: list[ArmRun], stage: str) -> dict[str, Any]:
    """Trial minus ``other`` on the same held-out tasks (paired by ground truth within each seed), pooled over seeds,
    overall and per level: mean difference in accuracy, its 95% t-interval over the task pairs, tasks only trial
    solved (``trial_only``) and only ``other`` solved (``other_only``), and a verdict that needs the interval to
    exclude 0."""
    diffs: dict[str, list[float]] = {"all": []}
    for t, o in zip(trial, other):
        mine, theirs = _by_task(t, stage), _by_task(o, stage)
        if {k: len(v) for k, v in mine.items()} != {k: len(v) for k, v in theirs.items()}:
            raise ReportError(f"seed{t.seed}: trial and {o.arm} were validated on different held-out tasks ({stage})")
        for key, ts in mine.items():
            for a, b in zip(ts, theirs[key]):
                d = float(_solved(a)) - float(_solved(b))
                diffs["all"].append(d)
                diffs.setdefault(str(int(a["toyworld/level"])), []).append(d)
    out = {}
    for g in sorted(diffs, key=lambda g: (g != "all", g)):
        d = diffs[g]
        s = summary(d)
        lo, hi = s["ci95"]
        verdict = "trial better" if lo > 0 else "trial worse" if hi < 0 else "no difference shown"
        out[g] = {"n": len(d), "mean": s["mean"], "ci95": s["ci95"], "trial_only": sum(x > 0 for x in d),
                  "other_only": sum(x < 0 for x in d), "verdict": verdict}
    return out


def _task_outcomes(run: ArmRun, stage: str) -> dict[str, list[tuple[str, float]]]:
    """Per held-out task (ground truth): [(level, solved)] of ``run`` at ``stage``."""
    return {k: [(str(int(s["toyworld/level"])), float(_solved(s))) for s in v] for k, v in _by_task(run, stage).items()}


def _cluster_rows(first: list[ArmRun], second: list[ArmRun] | None, stage_a: str, stage_b: str) -> list[list[tuple[str, float]]]:
    """Per seed (a cluster): one (level, value) row per held-out task: ``first``'s solved at ``stage_a`` minus
    ``second``'s at ``stage_b`` (paired on the same task), or ``first``'s alone when ``second`` is None."""
    clusters = []
    for i, a in enumerate(first):
        mine = _task_outcomes(a, stage_a)
        if second is None:
            clusters.append([row for key in sorted(mine) for row in mine[key]])
            continue
        b = second[i]
        theirs = _task_outcomes(b, stage_b)
        if {k: len(v) for k, v in mine.items()} != {k: len(v) for k, v in theirs.items()}:
            raise ReportError(f"seed{a.seed}: {a.arm} ({stage_a}) and {b.arm} ({stage_b}) were validated on different held-out tasks")
        clusters.append([(lv, x - y) for key in sorted(mine) for (lv, x), (_, y) in zip(mine[key], theirs[key])])
    return clusters


def cluster_bootstrap(clusters: list[list[tuple[str, float]]], levels: tuple[str, ...] | None, resamples: int = BOOTSTRAP,
                      seed: int = 0) -> dict[str, Any]:
    """Mean of the values whose level is in ``levels`` (all when None) and its 95% percentile interval from a
    two-stage bootstrap: seeds drawn with replacement, then tasks with replacement within each drawn seed. Seeds are
    clusters: a retrained model moves all its tasks together, which a task-level interval ignores. With few seeds the
    interval is only as wide as the seeds drawn differ (three seeds allow 10 distinct draws)."""
    parts = [[v for lv, v in c if levels is None or lv in levels] for c in clusters]
    parts = [p for p in parts if p]
    n_tasks = sum(len(p) for p in parts)
    if not parts:
        return {"n_seeds": 0, "n_tasks": 0, "mean": None, "ci95": [None, None]}
    mean = sum(sum(p) for p in parts) / n_tasks
    rng = random.Random(seed)
    stats = []
    for _ in range(resamples):
        total = count = 0.0
        for _ in parts:
            p = parts[rng.randrange(len(parts))]
            total += sum(p[rng.randrange(len(p))] for _ in p)
            count += len(p)
        stats.append(total / count)
    stats.sort()
    lo, hi = stats[int(0.025 * resamples)], stats[min(resamples - 1, int(0.975 * resamples))]
    return {"n_seeds": len(parts), "n_tasks": n_tasks, "mean": mean, "ci95": [lo, hi]}


def _level_groups(levels: list[str]) -> dict[str, tuple[str, ...] | None]:
    groups: dict[str, tuple[str, ...] | None] = {"all": None}
    if any(lv in CONTROL_LEVELS for lv in levels):
        groups["controls"] = CONTROL_LEVELS
    if any(lv in CONSEQUENCE_LEVELS for lv in levels):
        groups["consequence"] = CONSEQUENCE_LEVELS
    groups.update({lv: (lv,) for lv in levels})
    return groups


def cluster_report(runs: dict[str, list[ArmRun]]) -> dict[str, Any]:
    """Cluster-bootstrap intervals: each arm's accuracy after SFT and after GRPO, its GRPO-minus-SFT gain, and trial
    minus each other arm at both stages, per level group (``all``, ``controls``, ``consequence``, each level)."""
    arms = list(runs)
    levels = sorted({str(int(s["toyworld/level"])) for r in runs[arms[0]] for s in r.samples("grpo")})
    groups = _level_groups(levels)
    out: dict[str, Any] = {"accuracy": {}, "grpo_gain": {}, "trial_minus": {}}
    for arm in arms:
        out["accuracy"][arm] = {stage: {g: cluster_bootstrap(_cluster_rows(runs[arm], None, stage, stage), lv) for g, lv in groups.items()}
                                for stage in STAGES}
        rows = _cluster_rows(runs[arm], runs[arm], "grpo", "sft")
        out["grpo_gain"][arm] = {g: cluster_bootstrap(rows, lv) for g, lv in groups.items()}
    if "trial" in runs:
        for other in (a for a in arms if a != "trial"):
            out["trial_minus"][other] = {stage: {g: cluster_bootstrap(_cluster_rows(runs["trial"], runs[other], stage, stage), lv)
                                                 for g, lv in groups.items()} for stage in STAGES}
    return out


def _verdict(interval: dict[str, Any]) -> str:
    lo, hi = interval["ci95"]
    if lo is None:
        return "no tasks"
    return "better" if lo > 0 else "worse" if hi < 0 else "undecided"


def verdicts(runs: dict[str, list[ArmRun]]) -> dict[str, Any]:
    """The pre-registered verdicts (:data:`VERDICT_RULES`) after GRPO, and whether GRPO gained for each arm on the levels
    SFT never demonstrated and on all levels; each with the interval and the seeds and tasks it rests on."""
    out: dict[str, Any] = {}
    for name, (arm, other, levels) in VERDICT_RULES.items():
        if arm not in runs or other not in runs:
            continue
        interval = cluster_bootstrap(_cluster_rows(runs[arm], runs[other], "grpo", "grpo"), levels)
        reading = _verdict(interval)
        out[name] = {**interval, "levels": list(levels) if levels else "all",
                     "verdict": f"{arm} {reading}" if reading in ("better", "worse") else reading}
    for arm, arm_runs in runs.items():
        interval = cluster_bootstrap(_cluster_rows(arm_runs, arm_runs, "grpo", "sft"), None)
        out[f"grpo_gain_{arm}"] = {**interval, "levels": "all", "verdict": {"better": "GRPO gained", "worse": "GRPO lost"}.get(_verdict(interval), _verdict(interval))}
    return out


def zero_spread(runs: list[ArmRun]) -> dict[str, Any]:
    """Per GRPO step, the share of groups with zero reward spread and with mixed answers, per seed and averaged."""
    per_seed = {k: [[v for _, v in r.curve(k, r.grpo)] for r in runs] for k in GROUP_KEYS}
    out: dict[str, Any] = {}
    for k, rows in per_seed.items():
        short = k.rsplit("/", 1)[-1]
        steps = max((len(r) for r in rows), default=0)
        out[short] = {"per_seed": rows, "mean_per_step": [statistics.fmean(r[i] for r in rows if i < len(r)) for i in range(steps)]}
    return out


def build(out: Path) -> dict[str, Any]:
    run_info = _read_json(out / "run.json")
    seeds = seeds_in(out)
    arms = arms_in(out, seeds)
    runs = {arm: [load_run(out, s, arm) for s in seeds] for arm in arms}
    result: dict[str, Any] = {"model": run_info.get("model"), "seeds": seeds, "arms": arms}
    for stage in ("grpo", "sft"):
        for arm in arms:
            result[f"{arm}_{stage}"] = summary([r.heldout(stage) for r in runs[arm]])
    for arm in arms:
        result[f"{arm}_heldout_acc"] = result[f"{arm}_grpo"]["mean"]
    result["seed_spread"] = max(result[f"{arm}_grpo"]["std"] for arm in arms)
    if "trial" in arms:
        for other in (a for a in arms if a != "trial"):
            margin = result["trial_heldout_acc"] - result[f"{other}_heldout_acc"]
            result[f"margin_vs_{other}"] = margin
            result[f"trial_beats_{other}_beyond_spread"] = margin > result["seed_spread"]
    if "margin_vs_direct" in result:  # the names of the two-arm report
        result["margin"] = result["margin_vs_direct"]
    result["by_level"] = {
        arm: {stage: _level_summaries([r.by_level(stage) for r in runs[arm]]) for stage in STAGES} for arm in arms
    }
    result["heldout_acc_by_level"] = {arm: {lv: s["mean"] for lv, s in result["by_level"][arm]["grpo"].items()} for arm in arms}
    result["diagnostics"] = {arm: {stage: _mean_nested([r.diagnostics(stage) for r in runs[arm]]) for stage in STAGES} for arm in arms}
    result["heldout_curve"] = {arm: _mean_curves([r.heldout_curve() for r in runs[arm]]) for arm in arms}
    result["pooled"] = {arm: {stage: pooled([r.samples(stage) for r in runs[arm]]) for stage in STAGES} for arm in arms}
    if "trial" in arms:
        result["paired"] = {other: {stage: paired(runs["trial"], runs[other], stage) for stage in STAGES}
                            for other in arms if other != "trial"}
    result["cluster"] = cluster_report(runs)
    result["verdicts"] = verdicts(runs)
    result["zero_spread_share"] = {arm: zero_spread(runs[arm]) for arm in arms}
    result["heldout_tasks_per_seed"] = {arm: [len(r.samples("grpo")) for r in runs[arm]] for arm in arms}
    result["budget"] = {**run_info.get("budget", {}), "sft_tokens": {arm: statistics.fmean(r.sft_tokens() for r in runs[arm]) for arm in arms}}
    timing_path = out / "timing.jsonl"
    result["timing"] = _read_jsonl(timing_path) if timing_path.is_file() else []
    result["curves"] = {
        arm: {
            "grpo": {k: [r.curve(k, r.grpo) for r in runs[arm]] for k in (*COMPONENTS, *GROUP_KEYS, VAL_KEY)},
            "sft": {"train/loss": [r.curve("train/loss", r.sft) for r in runs[arm]]},
            "heldout": [r.heldout_curve() for r in runs[arm]],
        }
        for arm in arms
    }
    result["trajectories"] = {arm: _examples(runs[arm][0].samples("grpo")) for arm in arms}
    return result


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ReportError(f"{path}: missing (run_toyworld.sh writes the base model and the budgets there)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}: not JSON ({e.msg})") from None


def _level_summaries(per_seed: list[dict[str, float]]) -> dict[str, Any]:
    levels = sorted({lv for d in per_seed for lv in d})
    return {lv: summary([d[lv] for d in per_seed if lv in d]) for lv in levels}


def _mean_nested(per_seed: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    groups = sorted({g for d in per_seed for g in d}, key=lambda g: (g != "all", g))
    return {g: diag.mean_of([d[g] for d in per_seed if g in d]) for g in groups}


def _mean_curves(per_seed: list[dict[str, list[tuple[int, float]]]]) -> dict[str, list[list[float]]]:
    """Per group ("all", levels): [step, mean over the seeds validated at that step]."""
    out: dict[str, list[list[float]]] = {}
    for group in sorted({g for d in per_seed for g in d}, key=lambda g: (g != "all", g)):
        by_step: dict[int, list[float]] = {}
        for d in per_seed:
            for step, v in d.get(group, []):
                by_step.setdefault(step, []).append(v)
        out[group] = [[step, statistics.fmean(v)] for step, v in sorted(by_step.items())]
    return out


def _examples(samples: list[dict[str, Any]], per_level: int = 1) -> list[dict[str, Any]]:
    """A few held-out trajectories: per level, the first solved and the first failed one."""
    picked = []
    for lv, part in diag.by_level(samples).items():
        for solved in (True, False):
            hits = [s for s in part if _solved(s) == solved][:per_level]
            picked += [{"level": lv, "acc": float(s["acc"]), "failure": diag.failure(s), "input": s.get("input", ""),
                        "output": s.get("output", "")} for s in hits]
    return picked


def _strict(x: Any) -> Any:
    """``x`` with non-finite floats (an interval over one seed) as null: report.json is strict JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _strict(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_strict(v) for v in x]
    return x


def main(argv: list[str] | None = None) -> int:
    from .report_html import render_html

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m verl_toolmaster.toyworld.report OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    try:
        result = build(out)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    curves, trajectories = result.pop("curves"), result.pop("trajectories")
    (out / "report.json").write_text(json.dumps(_strict(result), indent=1, allow_nan=False))
    (out / "report.html").write_text(render_html({**result, "curves": curves, "trajectories": trajectories}))
    keys = ["model", *(f"{arm}_heldout_acc" for arm in result["arms"]), "seed_spread",
            *(k for k in result if k.startswith("margin_vs_") or k.startswith("trial_beats_"))]
    print(json.dumps({**{k: result[k] for k in keys}, "verdicts": {k: v["verdict"] for k, v in result["verdicts"].items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
