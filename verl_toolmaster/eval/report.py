"""``report.html``: one static, self-contained page with inline SVG plots and a trajectory viewer.

No scripts and no external resources (the page's Content-Security-Policy forbids both), so it opens offline.
All model and tool text is untrusted: it reaches the page only through Jinja2's autoescaping or
:func:`markupsafe.escape` (SVG labels), never as markup.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Iterable, Sequence

from markupsafe import Markup, escape

PHASE_COLORS = {  # span label -> colour, shared by the viewer, its legend and the calls plot
    "trial": "#f3c46b",
    "execute": "#7db7e8",
    "answer": "#8fd19e",
    "observation": "#dedede",
    "untagged": "#f2a0a0",
}
SUMMARY_KEYS = ("n", "answer", "acc", "score", "format", "trial_calls", "execute_calls", "self_corrections", "tool_error_rate", "turns", "no_gold", "bad_gold")
MAX_SEGMENT_CHARS = 4000  # longer span texts show their head and tail
_BAR = "#5b8def"


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _clip(text: str, limit: int = MAX_SEGMENT_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… {len(text) - 2 * half} characters omitted …\n{text[-half:]}"


def _label(text: str, limit: int = 34) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def hbar_chart(title: str, items: Sequence[tuple[str, float | None]], *, vmax: float | None = None, fmt: str = "{:.2f}", color: str = _BAR) -> Markup:
    """Horizontal bars, one per (label, value); None values are drawn as 'n/a'."""
    values = [v for _, v in items if v is not None]
    top = vmax if vmax is not None else (max(values) if values else 1.0) or 1.0
    label_w, bar_w, row_h, pad = 230, 330, 22, 28
    height = pad + row_h * max(1, len(items)) + 8
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 70}" height="{height}" role="img" aria-label="{escape(title)}">',
             f'<text x="4" y="16" class="chart-title">{escape(title)}</text>']
    for i, (label, value) in enumerate(items):
        y = pad + i * row_h
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" class="chart-label"><title>{escape(label)}</title>{escape(_label(label))}</text>')
        if value is None:
            parts.append(f'<text x="{label_w + 4}" y="{y + 15}" class="chart-value">n/a</text>')
            continue
        w = max(0.0, min(1.0, value / top)) * bar_w
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{color}"/>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 15}" class="chart-value">{escape(fmt.format(value))}</text>')
    if not items:
        parts.append(f'<text x="{label_w}" y="{pad + 15}" class="chart-value">no data</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def grouped_chart(title: str, groups: Sequence[tuple[str, Sequence[tuple]]], colors: dict[str, str], *, vmax: float | None = None) -> Markup:
    """Horizontal grouped bars: per group label, one bar per series, with a legend. A series item is
    ``(series, value)`` or ``(series, value, (lo, hi))``: the interval is drawn as a whisker."""
    series = [item[0] for item in groups[0][1]] if groups else []
    values = [item[1] for _, row in groups for item in row if item[1] is not None]
    top = vmax if vmax is not None else (max(values) if values and max(values) > 0 else 1.0)
    label_w, bar_w, bar_h, pad = 230, 330, 14, 44
    group_h = bar_h * max(1, len(series)) + 10
    height = pad + group_h * max(1, len(groups)) + 8
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 70}" height="{height}" role="img" aria-label="{escape(title)}">',
             f'<text x="4" y="16" class="chart-title">{escape(title)}</text>']
    for k, s in enumerate(series):
        x = label_w + k * 110
        parts.append(f'<rect x="{x}" y="24" width="12" height="12" fill="{colors.get(s, _BAR)}"/><text x="{x + 16}" y="34" class="chart-value">{escape(s)}</text>')
    for i, (label, row) in enumerate(groups):
        y0 = pad + i * group_h
        parts.append(f'<text x="{label_w - 6}" y="{y0 + group_h / 2 + 2:.1f}" text-anchor="end" class="chart-label"><title>{escape(label)}</title>{escape(_label(label))}</text>')
        for k, (s, value, *interval) in enumerate(row):
            y = y0 + k * bar_h
            w = 0.0 if value is None else max(0.0, min(1.0, value / top)) * bar_w
            parts.append(f'<rect x="{label_w}" y="{y + 1}" width="{w:.1f}" height="{bar_h - 2}" fill="{colors.get(s, _BAR)}"/>')
            text_x = label_w + w + 4
            if interval and interval[0] is not None:
                lo, hi = (label_w + max(0.0, min(1.0, b / top)) * bar_w for b in interval[0])
                parts.append(f'<line x1="{lo:.1f}" x2="{hi:.1f}" y1="{y + bar_h / 2:.1f}" y2="{y + bar_h / 2:.1f}" stroke="#222"/>')
                text_x = max(text_x, hi + 4)
            parts.append(f'<text x="{text_x:.1f}" y="{y + bar_h - 3}" class="chart-value">{escape(_fmt(value))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(title: str, series: dict[str, Sequence[tuple[float, float]]], colors: dict[str, str], *, xlabel: str = "step",
               ymin: float | None = None, ymax: float | None = None) -> Markup:
    """Lines (with points) of (x, y) per series, with axes' end values and a legend; a series with one point is a
    dot. ``ymin``/``ymax`` fix the y range (e.g. 0..1 for shares), otherwise it is the data's."""
    width, height, left, right, top, bottom = 540, 230, 46, 12, 44, 28
    series = {name: line for name, line in series.items() if line}
    pts = [p for line in series.values() for p in line]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
             f'<text x="4" y="16" class="chart-title">{escape(title)}</text>']
    step = min(160, (width - left) // max(1, len(series)))  # the legend fits the chart's width
    for k, name in enumerate(series):
        x = left + k * step
        parts.append(f'<rect x="{x}" y="24" width="12" height="4" fill="{colors.get(name, _BAR)}"/><text x="{x + 16}" y="30" class="chart-value">{escape(_label(name, (step - 20) // 7))}</text>')
    if not pts:
        parts.append(f'<text x="{left}" y="{top + 20}" class="chart-value">no data</text></svg>')
        return Markup("".join(parts))
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0 = ymin if ymin is not None else min(p[1] for p in pts)
    y1 = ymax if ymax is not None else max(p[1] for p in pts)
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 0.5, y1 + 0.5
    if x1 == x0:  # one step: centred
        x0, x1 = x0 - 1, x1 + 1

    def xy(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (width - left - right), top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom))

    parts += [f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" fill="none" stroke="#ccc"/>',
              f'<text x="{left - 4}" y="{top + 9}" text-anchor="end" class="chart-value">{escape(_num(y1))}</text>',
              f'<text x="{left - 4}" y="{height - bottom}" text-anchor="end" class="chart-value">{escape(_num(y0))}</text>',
              f'<text x="{left}" y="{height - 10}" class="chart-value">{escape(xlabel)} {escape(_num(x0))}</text>',
              f'<text x="{width - right}" y="{height - 10}" text-anchor="end" class="chart-value">{escape(_num(x1))}</text>']
    for name, line in series.items():
        color = colors.get(name, _BAR)
        coords = [xy(x, y) for x, y in sorted(line)]
        if len(coords) > 1:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in coords)}"/>')
        for (a, b), (x, y) in zip(coords, sorted(line)):
            parts.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{color}"><title>{escape(name)}: {escape(xlabel)} {escape(_num(x))}, {escape(_num(y))}</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _num(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() and abs(v) >= 1 else f"{v:.3g}"


def plots(body: dict[str, Any]) -> list[Markup]:
    """Accuracy by source and by perturbation level, calls per phase, termination reasons."""
    by_source, by_level, overall = body["by_source"], body["by_level"], body["overall"]
    ran = {k: v for k, v in by_source.items() if v["n"]}
    return [
        hbar_chart("Accuracy (answer) by data source", [(f"{k} (n={v['n']})", v["answer"]) for k, v in ran.items()], vmax=1.0),
        hbar_chart("Accuracy (answer) by perturbation level", [(f"{k} (n={v['n']})", v["answer"]) for k, v in by_level.items() if v["n"]], vmax=1.0),
        grouped_chart(
            "Tool calls per row, by phase",
            [(k, [("trial", v["trial_calls"]), ("execute", v["execute_calls"])]) for k, v in ran.items()],
            PHASE_COLORS,
        ),
        hbar_chart("Termination reasons (rows)", sorted(overall["terminations"].items(), key=lambda kv: -kv[1]), fmt="{:.0f}", color="#9b8fd1"),
    ]


def _viewer_items(trajs: Iterable[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], int]:
    ran = sorted((t for t in trajs if t.get("status") == "ok"), key=lambda t: (float(t["reward"].get("answer") or 0.0), t["id"]))
    shown = ran[:limit]  # failures first: they are what a reader opens the viewer for
    items = []
    for t in shown:
        items.append({
            "id": t["id"],
            "source": t["data_source"],
            "split": t["split"],
            "level": t["level"],
            "answer": _fmt(t["reward"].get("answer")),
            "score": _fmt(t["score"]),
            "format": _fmt(t["reward"].get("format")),
            "reason": str(t["reward"].get("reason")),
            "termination": str(t.get("termination")),
            "prompt_truncated": bool(t.get("prompt_truncated")),
            "messages": [{"role": str(m.get("role")), "content": _clip(str(m.get("content") or ""), 2000)} for m in t.get("messages") or []],
            "turns": [
                {
                    "index": u.get("index"),
                    "phase": str(u.get("phase") or "untagged"),
                    "user_turn": u.get("user_turn"),
                    "violation": u.get("violation"),
                    "calls": [
                        {"name": str(c.get("called_name") or c.get("name")), "ok": bool(c.get("ok")), "error_kind": c.get("error_kind"),
                         "arguments": _clip(_json(c.get("called_arguments", c.get("arguments"))), 600), "text": _clip(str(c.get("text") or ""), 600)}
                        for c in u.get("calls") or []
                    ],
                }
                for u in t.get("turns") or []
            ],
            "calls_aligned": t.get("calls_aligned", True),
            "segments": [{"label": str(label), "text": _clip(str(text))} for label, text in t.get("segments") or []],
        })
    return items, len(ran) - len(shown)


def _json(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def render(body: dict[str, Any], trajs: list[dict[str, Any]], *, title: str, max_trajectories: int = 300) -> str:
    """The report page as a string."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("verl_toolmaster.eval", "templates"), autoescape=select_autoescape(default=True, default_for_string=True))
    items, omitted = _viewer_items(trajs, max_trajectories)
    summary_rows = [("overall", body["overall"])] + [(f"source: {k}", v) for k, v in body["by_source"].items()]
    split_rows = [(f"split: {k}", v) for k, v in body["by_split"].items()] + [(f"level: {k}", v) for k, v in body["by_level"].items()]
    keys = [k for k in SUMMARY_KEYS if k in body["overall"]]
    not_run = [{"id": t["id"], "source": t["data_source"], "status": t["status"], "detail": t.get("detail", "")}
               for t in trajs if t.get("status") not in ("ok", "no_gold")]
    return env.get_template("report.html.j2").render(
        title=title,
        generated=_dt.datetime.now().isoformat(timespec="seconds"),
        run=body.get("run", {}),
        keys=keys,
        summary_rows=[(name, [_fmt(m.get(k)) for k in keys]) for name, m in summary_rows],
        split_rows=[(name, [_fmt(m.get(k)) for k in keys]) for name, m in split_rows],
        plots=plots(body),
        colors=PHASE_COLORS,
        trajectories=items,
        omitted=omitted,
        not_run=not_run,
    )


def write_report(path: Path, body: dict[str, Any], trajs: list[dict[str, Any]], *, title: str, max_trajectories: int = 300) -> None:
    tmp = Path(path).with_suffix(".html.tmp")
    tmp.write_text(render(body, trajs, title=title, max_trajectories=max_trajectories), encoding="utf-8")
    tmp.replace(path)
