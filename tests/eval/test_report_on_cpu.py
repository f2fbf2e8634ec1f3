"""report.html opens in headless Chromium (Debian's ``chromium``) without console messages, and untrusted model
and tool text never becomes markup."""

from __future__ import annotations

import json
from pathlib import Path

from eval_helpers import Parsed, load, needs_chromium, prepare, run_cli

from verl_toolmaster.eval import metrics as metrics_mod
from verl_toolmaster.eval.report import write_report

HOSTILE = '<script>alert("x")</script><img src=x onerror="alert(1)">&amp; </pre></details><marquee>moving</marquee>'


@needs_chromium
def test_the_console_check_sees_errors(tmp_path):
    """The check below can fail: a page with a script error and a blocked load does produce console lines."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="default-src \'none\'">'
                    "</head><body><script>nope()</script></body></html>")
    _, console = load(page)
    assert console and any("Content Security Policy" in line for line in console)


def hostile_toolhop(path: Path) -> Path:
    """Two ToolHop-format records whose question, tool docs, observations and answers carry markup."""
    records = []
    for i in range(2):
        word = f"{HOSTILE}{i}"
        src = "def shout(text):\n    return text + '!'\n"
        records.append({
            "id": f"hostile-{i}", "question": f"Shout {word} please", "answer": word + "!", "answer_type": "string",
            "sub_task": {f"shout {HOSTILE}?": word + "!"},
            "tools": {f"shout {HOSTILE}?": {"name": "shout", "description": f"Shout it {HOSTILE}",
                                            "parameters": {"type": "object", "properties": {"text": {"type": "string", "description": HOSTILE}}, "required": ["text"]}}},
            "functions": [src], "gold_calls": [f"shout({word!r})"],
        })
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@needs_chromium
def test_report_opens_without_console_errors_and_escapes_untrusted_text(tmp_path, capsys, eval_cache):
    parquet = prepare("toolhop", hostile_toolhop(tmp_path / "hostile.jsonl"), tmp_path / "hostile.parquet")
    out = tmp_path / "out"
    run = run_cli(capsys, parquet, out, "--policy", "gold", cache=eval_cache)
    assert run.code == 0, run.stderr
    trajs = run.trajectories()
    assert all(t["reward"]["answer"] == 1.0 for t in trajs)
    assert any(HOSTILE in c["text"] for t in trajs for u in t["turns"] for c in u["calls"])  # the observation carries it
    # hostile group names too: they end up in table cells and SVG labels
    for k, t in enumerate(trajs):
        t["data_source"], t["level"], t["split"], t["termination"] = f"src{k}{HOSTILE}", f"lvl{HOSTILE}", HOSTILE, f"end{HOSTILE}"
    body = metrics_mod.compute(trajs, gold=True)
    body["run"] = {"complete": False, "done": 2, "selected": 3, "pending": 1, "errors": 0, "fatal": f"fatal {HOSTILE}"}
    page = out / "hostile_report.html"
    write_report(page, body, trajs, title=f"title {HOSTILE}")

    for report in (out / "report.html", page):
        dom, console = load(report)
        assert console == [], console
        parsed = Parsed(dom)
        names = [tag for tag, _ in parsed.tags]
        assert not {"script", "img", "iframe", "object", "embed"} & set(names)
        assert not [a for _, attrs in parsed.tags for a, _ in attrs if a.startswith("on")]
        assert names.count("svg") == 4 and names.count("details") == 2 and "marquee" not in names
        text = "".join(parsed.text)
        assert HOSTILE in text  # shown as text, not run
    assert "".join(Parsed(load(page)[0]).text).count(HOSTILE) >= 10  # ids, groups, SVG labels, messages, spans
