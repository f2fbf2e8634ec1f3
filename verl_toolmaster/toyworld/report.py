"""Report of the ToyWorld experiment (``recipes/cpu/run_toyworld.sh``): ``python -m verl_toolmaster.toyworld.report OUT``.

Reads, for every ``OUT/seed<S>/<arm>`` (arms ``direct`` and ``trial``), the verl file-logger JSONL of its SFT
(``sft_metrics.jsonl``) and GRPO (``grpo_metrics.jsonl``) runs and the GRPO validation dumps on the held-out tools
(``val/<step>.jsonl``: one line per held-out task, with its reward components), plus ``OUT/timing.jsonl``. Writes

* ``OUT/report.json``: ``direct_heldout_acc`` and ``trial_heldout_acc`` (held-out accuracy after GRPO, mean over
  seeds), ``seed_spread`` (the larger of the two arms' sample standard deviations over seeds), per-seed values,
  95% t-intervals, the same after SFT only (GRPO step 0), accuracy by level, and stage timings;
* ``OUT/report.html``: learning curves of the reward components per GRPO step and of the SFT loss (mean over
  seeds, each seed faint), held-out accuracy per arm with its interval, tables.

A missing or unreadable input is an error naming the file; nothing is filled in.
"""

from __future__ import annotations

import html
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ARMS = ("direct", "trial")
COMPONENTS = ("critic/score/mean", "reward/answer/mean", "reward/format/mean", "reward/trial/mean", "reward/cost/mean")
VAL_KEY = "val-core/toyworld/acc/mean@1"
# per-sample fields of the validation dumps averaged into the report's diagnostics
# a tool call's name in a sample's output; call_names_in_prompt: the share of them the prompt's tools offer
_CALL_NAME = re.compile(r'"name": ("[^"]+")')
DIAGNOSTICS = ("toyworld/answer_seen", "format", "trial_calls", "execute_calls", "tool_errors", "self_corrections", "violations")
# two-sided 95% Student t quantiles by degrees of freedom (1..30); larger samples use the normal quantile
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110,
        2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


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
        return [(int(x["step"]), float(x["data"][key])) for x in lines if key in x["data"] and _finite(x["data"][key])]

    def heldout(self, which: str) -> float:
        """Held-out accuracy after SFT (``"sft"``: the first validation) or after GRPO (``"grpo"``: the last)."""
        steps = sorted(self.val)
        samples = self.val[steps[0] if which == "sft" else steps[-1]]
        return statistics.fmean(float(s["acc"]) for s in samples)

    def diagnostics(self, which: str) -> dict[str, float]:
        """Means over the held-out samples of what explains the accuracy: the right call made, calls, errors."""
        steps = sorted(self.val)
        samples = self.val[steps[0] if which == "sft" else steps[-1]]
        out = {k: statistics.fmean(float(s[k]) for s in samples if _finite(s.get(k)))
               for k in DIAGNOSTICS if any(_finite(s.get(k)) for s in samples)}
        named = [name in s.get("input", "") for s in samples for name in _CALL_NAME.findall(s.get("output", ""))]
        if named:
            out["call_names_in_prompt"] = statistics.fmean(named)
        return out

    def by_level(self, which: str) -> dict[str, float]:
        steps = sorted(self.val)
        samples = self.val[steps[0] if which == "sft" else steps[-1]]
        out: dict[str, list[float]] = {}
        for s in samples:
            out.setdefault(str(int(s["toyworld/level"])), []).append(float(s["acc"]))
        return {k: statistics.fmean(v) for k, v in sorted(out.items())}


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


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


def summary(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation and 95% t-interval of per-seed values."""
    n = len(values)
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if n > 1 else 0.0
    half = (_T95[n - 2] if n - 1 <= len(_T95) else 1.96) * sd / math.sqrt(n) if n > 1 else float("nan")
    return {"n": n, "values": values, "mean": mean, "std": sd, "ci95": [mean - half, mean + half]}


def build(out: Path) -> dict[str, Any]:
    seeds = seeds_in(out)
    runs = {arm: [load_run(out, s, arm) for s in seeds] for arm in ARMS}
    result: dict[str, Any] = {"seeds": seeds}
    for stage in ("grpo", "sft"):
        for arm in ARMS:
            result[f"{arm}_{stage}"] = summary([r.heldout(stage) for r in runs[arm]])
    result["direct_heldout_acc"] = result["direct_grpo"]["mean"]
    result["trial_heldout_acc"] = result["trial_grpo"]["mean"]
    result["seed_spread"] = max(result["direct_grpo"]["std"], result["trial_grpo"]["std"])
    result["margin"] = result["trial_heldout_acc"] - result["direct_heldout_acc"]
    result["trial_beats_direct_beyond_spread"] = result["margin"] > result["seed_spread"]
    result["by_level"] = {
        arm: {stage: _mean_dicts([r.by_level(stage) for r in runs[arm]]) for stage in ("sft", "grpo")} for arm in ARMS
    }
    result["diagnostics"] = {
        arm: {stage: _mean_dicts([r.diagnostics(stage) for r in runs[arm]]) for stage in ("sft", "grpo")} for arm in ARMS
    }
    result["heldout_tasks_per_seed"] = {arm: [len(r.val[max(r.val)]) for r in runs[arm]] for arm in ARMS}
    timing_path = out / "timing.jsonl"
    result["timing"] = _read_jsonl(timing_path) if timing_path.is_file() else []
    result["curves"] = {
        arm: {
            "grpo": {k: [r.curve(k, r.grpo) for r in runs[arm]] for k in (*COMPONENTS, VAL_KEY)},
            "sft": {"train/loss": [r.curve("train/loss", r.sft) for r in runs[arm]]},
        }
        for arm in ARMS
    }
    return result


def _mean_dicts(dicts: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for d in dicts for k in d})
    return {k: statistics.fmean(d[k] for d in dicts if k in d) for k in keys}


# ---------------------------------------------------------------------------------------------- HTML

_COLORS = {"direct": "#1f77b4", "trial": "#d62728"}


def _svg_curves(title: str, series: dict[str, list[list[tuple[int, float]]]], width: int = 360, height: int = 200) -> str:
    """Line chart: per arm, the mean over seeds (bold) and every seed (faint)."""
    pts = [p for per_arm in series.values() for curve in per_arm for p in curve]
    if not pts:
        return f"<div class='chart'><b>{html.escape(title)}</b><p>no data</p></div>"
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 0.5, y1 + 0.5
    if x1 == x0:
        x1 = x0 + 1
    L, R, T, B = 40, 10, 10, 25

    def xy(x: float, y: float) -> str:
        return f"{L + (x - x0) / (x1 - x0) * (width - L - R):.1f},{T + (1 - (y - y0) / (y1 - y0)) * (height - T - B):.1f}"

    parts = [f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg'>",
             f"<rect x='{L}' y='{T}' width='{width - L - R}' height='{height - T - B}' fill='none' stroke='#ccc'/>",
             f"<text x='2' y='{T + 8}' font-size='10'>{y1:.2f}</text><text x='2' y='{height - B}' font-size='10'>{y0:.2f}</text>",
             f"<text x='{L}' y='{height - 8}' font-size='10'>step {x0}</text><text x='{width - R - 40}' y='{height - 8}' font-size='10'>{x1}</text>"]
    for arm, curves in series.items():
        color = _COLORS.get(arm, "#333")
        for c in curves:
            if len(c) > 1:
                parts.append(f"<polyline fill='none' stroke='{color}' stroke-opacity='0.25' points='{' '.join(xy(*p) for p in c)}'/>")
        by_step: dict[int, list[float]] = {}
        for c in curves:
            for s, v in c:
                by_step.setdefault(s, []).append(v)
        mean = [(s, statistics.fmean(v)) for s, v in sorted(by_step.items())]
        if len(mean) > 1:
            parts.append(f"<polyline fill='none' stroke='{color}' stroke-width='2' points='{' '.join(xy(*p) for p in mean)}'/>")
        for p in mean if len(mean) == 1 else []:
            parts.append(f"<circle r='3' fill='{color}' cx='{xy(*p).split(',')[0]}' cy='{xy(*p).split(',')[1]}'/>")
    parts.append("</svg>")
    return f"<div class='chart'><b>{html.escape(title)}</b><br>{''.join(parts)}</div>"


def _svg_bars(result: dict[str, Any], width: int = 420, height: int = 220) -> str:
    """Held-out accuracy per arm after SFT and after GRPO: mean (bar), 95% t-interval (whisker), seeds (dots)."""
    groups = [(f"{arm} / {stage}", result[f"{arm}_{stage}"], _COLORS[arm]) for stage in ("sft", "grpo") for arm in ARMS]
    L, B, T = 40, 40, 10
    bw = (width - L - 10) / len(groups)

    def y(v: float) -> float:
        return T + (1 - max(0.0, min(1.0, v))) * (height - T - B)

    parts = [f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg'>"]
    for v in (0, 0.5, 1):
        parts.append(f"<line x1='{L}' x2='{width - 10}' y1='{y(v):.1f}' y2='{y(v):.1f}' stroke='#eee'/><text x='5' y='{y(v) + 4:.1f}' font-size='10'>{v:.1f}</text>")
    for i, (label, s, color) in enumerate(groups):
        x = L + i * bw + bw * 0.2
        w = bw * 0.6
        parts.append(f"<rect x='{x:.1f}' y='{y(s['mean']):.1f}' width='{w:.1f}' height='{y(0) - y(s['mean']):.1f}' fill='{color}' fill-opacity='{0.45 if 'sft' in label else 0.85}'/>")
        lo, hi = s["ci95"]
        if _finite(lo) and _finite(hi):
            cx = x + w / 2
            parts.append(f"<line x1='{cx:.1f}' x2='{cx:.1f}' y1='{y(hi):.1f}' y2='{y(lo):.1f}' stroke='#000'/>")
        for v in s["values"]:
            parts.append(f"<circle r='2.5' cx='{x + w / 2:.1f}' cy='{y(v):.1f}' fill='#000' fill-opacity='0.6'/>")
        parts.append(f"<text x='{x - 4:.1f}' y='{height - 22}' font-size='10'>{html.escape(label)}</text>")
        parts.append(f"<text x='{x:.1f}' y='{height - 8}' font-size='10'>{s['mean']:.3f}</text>")
    parts.append("</svg>")
    return "".join(parts)


def render_html(r: dict[str, Any]) -> str:
    def row(*cells: Any) -> str:
        return "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>"

    acc_rows = "".join(
        row(arm, stage, f"{r[f'{arm}_{stage}']['mean']:.3f}", f"{r[f'{arm}_{stage}']['std']:.3f}",
            f"[{r[f'{arm}_{stage}']['ci95'][0]:.3f}, {r[f'{arm}_{stage}']['ci95'][1]:.3f}]",
            ", ".join(f"{v:.3f}" for v in r[f"{arm}_{stage}"]["values"]))
        for stage in ("sft", "grpo") for arm in ARMS
    )
    level_rows = "".join(row(arm, stage, lv, f"{acc:.3f}") for arm in ARMS for stage in ("sft", "grpo") for lv, acc in r["by_level"][arm][stage].items())
    timing_rows = "".join(row(t.get("stage"), t.get("wall_s"), t.get("cpu_s"), t.get("rc")) for t in r["timing"])
    totals = [t for t in r["timing"] if t.get("stage") == "total"]
    total_wall = float(totals[-1]["wall_s"]) if totals else sum(float(t.get("wall_s") or 0) for t in r["timing"])
    diag_rows = "".join(row(arm, stage, k, f"{v:.3f}") for arm in ARMS for stage in ("sft", "grpo") for k, v in r["diagnostics"][arm][stage].items())
    verdict = (f"Held-out accuracy after GRPO: trial {r['trial_heldout_acc']:.3f}, direct {r['direct_heldout_acc']:.3f}; "
               f"margin {r['margin']:+.3f} is {'larger' if r['trial_beats_direct_beyond_spread'] else 'not larger'} than the "
               f"seed-to-seed spread ({r['seed_spread']:.3f}).")
    charts = "".join(
        _svg_curves(f"GRPO {k}", {arm: r["curves"][arm]["grpo"][k] for arm in ARMS}) for k in COMPONENTS
    ) + _svg_curves("held-out accuracy (validation)", {arm: r["curves"][arm]["grpo"][VAL_KEY] for arm in ARMS}) + _svg_curves(
        "SFT train/loss", {arm: r["curves"][arm]["sft"]["train/loss"] for arm in ARMS})
    return f"""<!doctype html><html><head><meta charset='utf-8'><title>ToyWorld: trial vs direct</title>
<style>body{{font-family:sans-serif;margin:20px;max-width:1200px}} .chart{{display:inline-block;margin:6px}} table{{border-collapse:collapse}}
td{{border:1px solid #ccc;padding:2px 6px;font-size:13px}} .k{{color:{_COLORS['direct']}}} .t{{color:{_COLORS['trial']}}}</style></head><body>
<h1>ToyWorld: trial-and-execution vs direct execution on held-out tools</h1>
<p><b>{html.escape(verdict)}</b> Seeds: {r['seeds']}; held-out tasks per seed: {r['heldout_tasks_per_seed']}.
Arms: <span class='k'>direct</span> (SFT on direct trajectories, GRPO trial_mode off) and <span class='t'>trial</span>
(SFT on trial-and-execution trajectories, GRPO trial_mode on with the toolmaster reward). Accuracy: greedy validation on the seed's
held-out tool catalogue, after SFT (GRPO step 0) and after GRPO.</p>
<h2>Held-out accuracy (mean, 95% t-interval over seeds, seeds as dots)</h2>{_svg_bars(r)}
<table><tr><td>arm</td><td>after</td><td>mean</td><td>std</td><td>95% CI</td><td>per seed</td></tr>{acc_rows}</table>
<h2>Learning curves (mean over seeds bold, each seed faint)</h2>{charts}
<h2>Held-out accuracy by level</h2><table><tr><td>arm</td><td>after</td><td>level</td><td>accuracy</td></tr>{level_rows}</table>
<h2>Diagnostics on the held-out tasks (means per task; toyworld/answer_seen: the right call was made)</h2>
<table><tr><td>arm</td><td>after</td><td>what</td><td>mean</td></tr>{diag_rows}</table>
<h2>Stages</h2><p>Wall time of the whole run: {total_wall / 60:.1f} min (arms of a seed run side by side, so their
stages overlap). cpu_s: user+sys seconds of the stage's process tree as reported by /usr/bin/time.</p>
<table><tr><td>stage</td><td>wall s</td><td>cpu s</td><td>rc</td></tr>{timing_rows}</table>
</body></html>"""


def _strict(x: Any) -> Any:
    """``x`` with non-finite floats (an interval over one seed) as null: report.json is strict JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _strict(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_strict(v) for v in x]
    return x


def main(argv: list[str] | None = None) -> int:
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
    curves = result.pop("curves")
    (out / "report.json").write_text(json.dumps(_strict(result), indent=1, allow_nan=False))
    (out / "report.html").write_text(render_html({**result, "curves": curves}))
    keys = ("direct_heldout_acc", "trial_heldout_acc", "seed_spread", "margin", "trial_beats_direct_beyond_spread")
    print(json.dumps({k: result[k] for k in keys}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
