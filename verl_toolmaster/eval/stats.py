"""Intervals shared by the reports (the eval harness's main-job report and the ToyWorld experiment's)."""

from __future__ import annotations

import math
import statistics
from typing import Any

# two-sided 95% Student t quantiles by degrees of freedom (1..30); larger samples use the normal quantile
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110,
        2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def summary(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation and 95% t-interval of values (per seed, or per paired task)."""
    n = len(values)
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if n > 1 else 0.0
    half = (_T95[n - 2] if n - 1 <= len(_T95) else 1.96) * sd / math.sqrt(n) if n > 1 else float("nan")
    return {"n": n, "values": values, "mean": mean, "std": sd, "ci95": [mean - half, mean + half]}


def wilson(k: int, n: int) -> list[float]:
    """95% Wilson score interval of a proportion k/n."""
    z = 1.96
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]
