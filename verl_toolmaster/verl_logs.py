"""Read the step metrics verl's console logger prints (``step:N - key:value - ...``) back into numbers."""

from __future__ import annotations

import re

_STEP = re.compile(r"step:(\d+) - (.*)$")
_METRIC = re.compile(r"(?:^| - )([A-Za-z_][\w/@.\-]*):(np\.\w+\()?(-?[0-9.]+(?:e[-+]?[0-9]+)?|nan|inf)\)?")


def parse_steps(log: str) -> dict[int, dict[str, float]]:
    """{step: {metric: value}} from a trainer's output; a step printed twice keeps the union (last value wins)."""
    steps: dict[int, dict[str, float]] = {}
    for line in log.splitlines():
        m = _STEP.search(line)
        if m:
            metrics = {k: float(v) for k, _, v in _METRIC.findall(" - " + m.group(2))}
            steps.setdefault(int(m.group(1)), {}).update(metrics)
    return steps
