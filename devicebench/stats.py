"""Latency statistics: robust summaries of per-call samples, and merging of summaries the device tools report."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

# Trim this fraction from each tail for the trimmed mean: it ignores rare scheduler hiccups
# without hiding a slow mode that happens on every tenth call.
TRIM = 0.1


def summarize(samples_ms: Sequence[float], *, keep_raw: bool = True) -> dict[str, Any]:
    """Mean, median, p90, p99, min, max, std, cv, trimmed mean (all in ms) of per-call samples."""
    x = np.asarray(samples_ms, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no samples to summarize")
    mean = float(x.mean())
    # Sample std (ddof=1): the runs are a sample of the device's behaviour, not the population.
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    out: dict[str, Any] = {
        "count": int(x.size),
        "mean": mean,
        "median": float(np.median(x)),
        "p90": float(np.percentile(x, 90)),
        "p99": float(np.percentile(x, 99)),
        "min": float(x.min()),
        "max": float(x.max()),
        "std": std,
        "cv": std / mean if mean > 0 else float("nan"),
        "trimmed_mean": trimmed_mean(x, TRIM),
    }
    if keep_raw:
        out["raw"] = [float(v) for v in x]
    return out


def trimmed_mean(x: Iterable[float], fraction: float = TRIM) -> float:
    """Mean after dropping `fraction` of the samples from each end (scipy.stats.trim_mean's rule)."""
    a = np.sort(np.asarray(list(x) if not isinstance(x, np.ndarray) else x, dtype=np.float64))
    if a.size == 0:
        raise ValueError("no samples")
    cut = int(fraction * a.size)
    return float(a[cut : a.size - cut].mean())


def merge_summaries(parts: Sequence[dict[str, float]]) -> dict[str, Any]:
    """Pool (count, mean, std, min, max) summaries of disjoint sample sets, e.g. interleaved device rounds.

    Percentiles cannot be pooled from summaries; they are left out rather than guessed.
    Each part's std is a population std (what benchmark_model prints).
    """
    if not parts:
        raise ValueError("nothing to merge")
    n = sum(int(p["count"]) for p in parts)
    mean = sum(p["count"] * p["mean"] for p in parts) / n
    # E[x^2] per part is var + mean^2; pooled population variance follows.
    ex2 = sum(p["count"] * (p["std"] ** 2 + p["mean"] ** 2) for p in parts) / n
    std = math.sqrt(max(ex2 - mean * mean, 0.0))
    return {
        "count": n,
        "mean": mean,
        "min": min(p["min"] for p in parts),
        "max": max(p["max"] for p in parts),
        "std": std,
        "cv": std / mean if mean > 0 else float("nan"),
    }
