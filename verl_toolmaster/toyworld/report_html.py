"""report.html of the ToyWorld experiment (:mod:`.report`): accuracy with intervals, learning curves, diagnostics,
budgets, timings and a few held-out trajectories per arm. Inline SVG, no external assets."""

from __future__ import annotations

import html
import statistics
from typing import Any

from .diagnostics import FAILURES, finite as _finite
from .report import COMPONENTS, GROUP_KEYS, STAGES

_COLORS = {"direct": "#1f77b4", "selfcorrect": "#2ca02c", "trial": "#d62728"}


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


def _svg_bars(result: dict[str, Any], width: int = 640, height: int = 220) -> str:
    """Held-out accuracy per arm after SFT and after GRPO: mean (bar), 95% t-interval (whisker), seeds (dots)."""
    groups = [(f"{arm} / {stage}", result[f"{arm}_{stage}"], _COLORS[arm]) for stage in STAGES for arm in result["arms"]]
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




# diagnostics shown per arm, stage and level (report.json has them all)
_SHOWN = ("toyworld/answer_seen", "toyworld/target_called", "toyworld/first_call_real", "toyworld/first_call_documented",
          "calls_per_task", "trials_per_task", "tool_errors", "self_corrections", "solved_after_an_error", "violations", "format")


def _row(*cells: Any) -> str:
    return "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>"


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if _finite(x) else "-"


def _interval(s: dict[str, Any]) -> str:
    lo, hi = s["ci95"]
    return f"[{_fmt(lo)}, {_fmt(hi)}]"


def _verdict(r: dict[str, Any]) -> str:
    accs = ", ".join(f"{arm} {r[f'{arm}_heldout_acc']:.3f}" for arm in r["arms"])
    parts = [f"Held-out accuracy after GRPO: {accs}."]
    for other in (a for a in r["arms"] if a != "trial"):
        if f"margin_vs_{other}" in r:
            beyond = "larger" if r[f"trial_beats_{other}_beyond_spread"] else "not larger"
            parts.append(f"Trial - {other}: {r[f'margin_vs_{other}']:+.3f}, {beyond} than the seed-to-seed spread ({r['seed_spread']:.3f}).")
        if other in r.get("paired", {}):
            p = r["paired"][other]["grpo"]["all"]
            parts.append(f"Paired on the same {p['n']} held-out tasks: {p['mean']:+.3f} {_interval(p)}, {p['verdict']}.")
    return " ".join(parts)


def _trajectories(r: dict[str, Any]) -> str:
    out = []
    for arm in r["arms"]:
        out.append(f"<h3>{html.escape(arm)} (seed {r['seeds'][0]}, after GRPO)</h3>")
        for t in r["trajectories"][arm]:
            head = f"level {t['level']}: {'solved' if t['acc'] >= 1 else 'failed (' + str(t['failure']) + ')'}"
            question = t["input"].rsplit("user\n", 1)[-1][:300]
            out.append(f"<details><summary>{html.escape(head)} - {html.escape(question)}</summary>"
                       f"<pre>{html.escape(t['output'])}</pre></details>")
    return "".join(out)


def render_html(r: dict[str, Any]) -> str:
    arms = r["arms"]
    acc_rows = "".join(
        _row(arm, stage, _fmt(r[f"{arm}_{stage}"]["mean"]), _fmt(r[f"{arm}_{stage}"]["std"]), _interval(r[f"{arm}_{stage}"]),
             ", ".join(_fmt(v) for v in r[f"{arm}_{stage}"]["values"]))
        for stage in STAGES for arm in arms
    )
    level_rows = "".join(_row(arm, stage, lv, _fmt(s["mean"]), _interval(s), ", ".join(_fmt(v) for v in s["values"]))
                         for arm in arms for stage in STAGES for lv, s in r["by_level"][arm][stage].items())
    pooled_rows = "".join(_row(arm, stage, g, f"{p['solved']}/{p['n']}", _fmt(p["acc"]), _interval(p))
                          for arm in arms for stage in STAGES for g, p in r["pooled"][arm][stage].items())
    paired_rows = "".join(_row(f"trial - {other}", stage, g, p["n"], f"{p['mean']:+.3f}", _interval(p), p["trial_only"],
                               p["other_only"], p["verdict"])
                          for other, stages in r.get("paired", {}).items() for stage in STAGES for g, p in stages[stage].items())
    def ci(b: dict[str, Any]) -> str:
        lo, hi = b["ci95"]
        return "n/a" if lo is None else f"[{lo:+.3f}, {hi:+.3f}]"

    verdict_rows = "".join(_row(name, v["levels"] if isinstance(v["levels"], str) else ",".join(v["levels"]), v["n_seeds"], v["n_tasks"],
                                "n/a" if v["mean"] is None else f"{v['mean']:+.3f}", ci(v), f"<b>{html.escape(v['verdict'])}</b>")
                           for name, v in r.get("verdicts", {}).items())
    cluster = r.get("cluster", {})
    cluster_rows = "".join(_row(f"trial - {other}", stage, g, b["n_seeds"], b["n_tasks"], "n/a" if b["mean"] is None else f"{b['mean']:+.3f}", ci(b))
                           for other, stages in cluster.get("trial_minus", {}).items() for stage in STAGES for g, b in stages[stage].items())
    cluster_rows += "".join(_row(f"{arm}: GRPO - SFT", "", g, b["n_seeds"], b["n_tasks"], "n/a" if b["mean"] is None else f"{b['mean']:+.3f}", ci(b))
                            for arm, groups in cluster.get("grpo_gain", {}).items() for g, b in groups.items())
    spread_rows = "".join(_row(arm, ", ".join(_fmt(x) for x in z["zero_spread_share"]["mean_per_step"]),
                               ", ".join(_fmt(x) for x in z["answer_mixed_share"]["mean_per_step"]))
                          for arm, z in r.get("zero_spread_share", {}).items())
    diag_rows = "".join(
        _row(arm, stage, group, *(_fmt(d.get(k)) for k in _SHOWN), *(_fmt(d.get("failures", {}).get(f)) for f in FAILURES))
        for arm in arms for stage in STAGES for group, d in r["diagnostics"][arm][stage].items()
    )
    diag_head = _row("arm", "after", "level", *_SHOWN, *(f"failed: {f}" for f in FAILURES))
    budget = r.get("budget", {})
    budget_rows = "".join(_row(k, v) for k, v in budget.items() if k != "sft_tokens")
    budget_rows += "".join(_row(f"SFT tokens seen ({arm}, mean over seeds)", f"{budget['sft_tokens'][arm]:.0f}") for arm in arms)
    timing_rows = "".join(_row(t.get("stage"), t.get("wall_s"), t.get("cpu_s"), t.get("rc")) for t in r["timing"])
    totals = [t for t in r["timing"] if t.get("stage") == "total"]
    total_wall = float(totals[-1]["wall_s"]) if totals else sum(float(t.get("wall_s") or 0) for t in r["timing"])
    heldout = {arm: [c.get("all", []) for c in r["curves"][arm]["heldout"]] for arm in arms}
    levels = sorted({lv for arm in arms for c in r["curves"][arm]["heldout"] for lv in c if lv != "all"})
    charts = _svg_curves("held-out accuracy over GRPO steps (all levels)", heldout) + "".join(
        _svg_curves(f"held-out accuracy over GRPO steps, level {lv}", {arm: [c.get(lv, []) for c in r["curves"][arm]["heldout"]] for arm in arms})
        for lv in levels)
    charts += "".join(_svg_curves(f"GRPO {k}", {arm: r["curves"][arm]["grpo"][k] for arm in arms}) for k in (*COMPONENTS, *GROUP_KEYS))
    charts += _svg_curves("SFT train/loss", {arm: r["curves"][arm]["sft"]["train/loss"] for arm in arms})
    legend = " ".join(f"<span style='color:{_COLORS.get(a, '#333')}'>{html.escape(a)}</span>" for a in arms)
    return f"""<!doctype html><html><head><meta charset='utf-8'><title>ToyWorld: {' vs '.join(arms)}</title>
<style>body{{font-family:sans-serif;margin:20px;max-width:1400px}} .chart{{display:inline-block;margin:6px}} table{{border-collapse:collapse}}
td{{border:1px solid #ccc;padding:2px 6px;font-size:13px}} pre{{white-space:pre-wrap;font-size:12px;background:#f6f6f6;padding:6px}}</style></head><body>
<h1>ToyWorld: held-out (unseen) tools, base model {html.escape(str(r.get('model')))}</h1>
<p><b>{html.escape(_verdict(r))}</b> Seeds: {r['seeds']}; held-out tasks per seed: {r['heldout_tasks_per_seed']}.
Arms ({legend}): direct (SFT on the gold call, GRPO trial_mode off), selfcorrect (SFT on a documented call that may fail
and its correction from the error, GRPO trial_mode off), trial (SFT on probes, the corrected execution and the answer, GRPO
trial_mode on). Accuracy: greedy validation on the seed's held-out tool catalogue, after SFT (GRPO step 0) and after GRPO.</p>
<h2>Pre-registered verdicts (after GRPO; 95% cluster-bootstrap interval: seeds, then tasks within a seed, resampled)</h2>
<table><tr><td>verdict</td><td>levels</td><td>seeds</td><td>tasks</td><td>mean difference</td><td>95% interval</td><td>reads</td></tr>{verdict_rows}</table>
<h2>GRPO signal: share of groups with zero reward spread, and with mixed answers, per step (mean over seeds)</h2>
<table><tr><td>arm</td><td>zero spread</td><td>answers mixed</td></tr>{spread_rows}</table>
<h2>Held-out accuracy (mean, 95% t-interval over seeds, seeds as dots)</h2>{_svg_bars(r)}
<table><tr><td>arm</td><td>after</td><td>mean</td><td>std</td><td>95% CI</td><td>per seed</td></tr>{acc_rows}</table>
<h2>Held-out accuracy by level</h2><table><tr><td>arm</td><td>after</td><td>level</td><td>mean</td><td>95% CI</td><td>per seed</td></tr>{level_rows}</table>
<h2>Held-out tasks of all seeds pooled (solved / tasks, 95% Wilson interval; tasks as units)</h2>
<table><tr><td>arm</td><td>after</td><td>level</td><td>solved</td><td>accuracy</td><td>95% CI</td></tr>{pooled_rows}</table>
<h2>Trial against the other arms on the same held-out tasks (paired, pooled over seeds)</h2>
<p>Mean of the per-task difference in accuracy (1, 0 or -1) with its 95% t-interval; a verdict needs the interval to
exclude 0. trial only / other only: tasks solved by one arm and not the other.</p>
<table><tr><td>comparison</td><td>after</td><td>level</td><td>tasks</td><td>mean difference</td><td>95% CI</td><td>trial only</td>
<td>other only</td><td>verdict</td></tr>{paired_rows}</table>
<h2>Cluster-bootstrap differences (seeds as clusters), per level group</h2>
<table><tr><td>difference</td><td>after</td><td>levels</td><td>seeds</td><td>tasks</td><td>mean</td><td>95% interval</td></tr>{cluster_rows}</table>
<h2>Learning curves (mean over seeds bold, each seed faint)</h2>{charts}
<h2>Diagnostics on the held-out tasks (means per task over seeds)</h2>
<p>answer_seen: the right call was made; target_called: the task's tool was called; first_call_real / first_call_documented:
the first call of the task's tool used the real / the stale documented parameter names (documented: only where the docs are
stale); solved_after_an_error: accuracy among tasks with a failed call; failed: share of all tasks failed because no tool was
called, the task's tool never was, its calls all failed, or its result was seen but the answer was wrong.</p>
<table>{diag_head}{diag_rows}</table>
<h2>Budgets (equal for every arm)</h2><table>{budget_rows}</table>
<h2>Held-out trajectories</h2>{_trajectories(r)}
<h2>Stages</h2><p>Wall time of the whole run: {total_wall / 60:.1f} min. cpu_s: user+sys seconds of the stage's process tree
as reported by /usr/bin/time.</p>
<table><tr><td>stage</td><td>wall s</td><td>cpu s</td><td>rc</td></tr>{timing_rows}</table>
</body></html>"""
