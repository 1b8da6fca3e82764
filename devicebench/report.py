"""Reports of a bench run: a rich table with ratios to the first artifact, the JSON file, a PNG plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mobiledeploy import fsio
from mobiledeploy.errors import UserError


def _ms(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.3f}" if v < 10 else f"{v:.2f}" if v < 100 else f"{v:.1f}"


def table(run: dict[str, Any]):
    """A rich Table of one run: latency summary per artifact, ratio to the first, runtime facts."""
    from rich.table import Table

    dev = run.get("device") or {}
    proto = run.get("protocol") or {}
    where = dev.get("board") or dev.get("model") or dev.get("hostname") or "?"
    title = (f"mobiledeploy bench · {where} · {dev.get('cpu') or '?'} · threads {proto.get('threads')} · "
             f"cores {_cores(dev.get('cores_used'))} · {_count(proto.get('runs'), 'run')}"
             + (" interleaved" if proto.get("interleaved") else "")
             + (f" · {proto['sessions']} loads each, pooled" if (proto.get("sessions") or 1) > 1 else ""))
    spreads = [max(m) / min(m) - 1 for r in run.get("results", [])
               if len(m := (r.get("latency_ms") or {}).get("session_medians") or []) > 1 and min(m) > 0]
    caption = (f"loads of the same artifact differed by up to {100 * max(spreads):.1f} % in median: "
               "read smaller ratios as noise" if spreads else None)
    t = Table(title=title, caption=caption)
    cols = [("artifact", "left"), ("runtime", "left"), ("init ms", "right"), ("first ms", "right"),
            ("median ms", "right"), ("p90", "right"), ("p99", "right"), ("mean", "right"), ("std", "right"),
            ("cv %", "right"), ("min", "right"), ("ratio", "right"), ("partitions", "right"),
            ("load Δ MB", "right"), ("run Δ MB", "right")]
    for name, just in cols:
        t.add_column(name, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for r in run.get("results", []):
        lat = r.get("latency_ms") or {}
        rt = r.get("runtime") or {}
        mem = r.get("memory_mb") or {}
        parts = rt.get("partitions")
        if parts is not None and rt.get("delegated_nodes") is not None:
            parts = f"{parts} ({rt['delegated_nodes']}/{rt['total_nodes']} nodes)"
        ratio = r.get("ratio_to_first")
        ratio_s = "—" if ratio is None else f"{ratio:.2f}×" + ("" if r.get("ratio_stat") == "median" else " (mean)")
        cv = lat.get("cv")
        t.add_row(
            r.get("label") or (r.get("artifact") or {}).get("name", "?"),
            f"{rt.get('name')} {rt.get('version') or ''}".strip(),
            _ms(lat.get("init")), _ms(lat.get("first")), _ms(lat.get("median")),
            _ms(lat.get("p90")), _ms(lat.get("p99")),
            _ms(lat.get("mean")), _ms(lat.get("std")),
            "—" if cv is None else f"{100 * cv:.1f}",
            _ms(lat.get("min")), ratio_s, "—" if parts is None else str(parts),
            # What this artifact adds, not the process peak (that is the same on every row: JSON only).
            _mb(mem.get("rss_load_delta")), _mb(mem.get("rss_run_delta_max")),
        )
    return t


def ops_table(run: dict[str, Any]):
    """Per op family, ms per run and share for each artifact that has an op profile."""
    from rich.table import Table

    profiled = [r for r in run.get("results", []) if (r.get("ops") or {}).get("available")]
    totals: list[dict[str, tuple[float, float]]] = []
    for r in profiled:
        fam: dict[str, tuple[float, float]] = {}
        for row in r["ops"]["table"]:
            ms, pct = fam.get(row.get("kind") or row["op"], (0.0, 0.0))
            fam[row.get("kind") or row["op"]] = (ms + row["ms_per_run"], pct + row["percent"])
        totals.append(fam)
    kinds = sorted({k for fam in totals for k in fam}, key=lambda k: -max(f.get(k, (0, 0))[0] for f in totals))
    t = Table(title="per-op time (ms per run, op families; profiled in a separate pass)")
    t.add_column("op family")
    for r in profiled:
        t.add_column(f"{r.get('label')} ({(r.get('runtime') or {}).get('name')})", justify="right")
    for k in kinds:
        cells = []
        for fam in totals:
            ms, pct = fam.get(k, (None, None))
            cells.append("—" if ms is None else f"{ms:.3f} ({pct:.0f}%)")
        t.add_row(k, *cells)
    return t


def _mb(v: float | None) -> str:
    return "—" if v is None else f"{v:+.1f}"


def _count(n: Any, noun: str) -> str:
    """'1 run', '50 runs' ('? runs' when unknown)."""
    return f"{n} {noun}" if n == 1 else f"{'?' if n is None else n} {noun}s"


def _cores(cores: Any) -> str:
    if not cores:
        return "?"
    if isinstance(cores, str):
        return cores
    return ",".join(str(c) for c in cores)


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, then rename: no half-written file ever looks complete."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise UserError(f"folder does not exist: {path.parent}", "create it or pick another path")
    fsio.atomic_write(path, data)


def write_json(run: dict[str, Any], path: str | Path) -> None:
    """Save the run result as indented JSON."""
    fsio.write_json(path, run)


def plot(run: dict[str, Any], path: str | Path) -> None:
    """PNG of the latency distributions: one box + jittered points per artifact (summary bars where no raw samples)."""
    from mobiledeploy.errors import require

    require("matplotlib", "bench")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    results = run.get("results", [])
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(results) + 2), 4.2), dpi=120)
    rng = np.random.default_rng(0)
    labels = []
    for i, r in enumerate(results, start=1):
        lat = r.get("latency_ms") or {}
        raw = lat.get("raw")
        labels.append(r.get("label") or f"#{i}")
        if raw:
            ax.boxplot([raw], positions=[i], widths=0.5, showfliers=False)
            ax.scatter(i + rng.uniform(-0.18, 0.18, len(raw)), raw, s=6, alpha=0.5)
        elif lat.get("mean") is not None:
            # Device tools report summaries only: show mean ± std and the min–max range, labelled as such.
            ax.errorbar([i], [lat["mean"]], yerr=[[lat.get("std") or 0], [lat.get("std") or 0]], fmt="o", capsize=6)
            ax.vlines(i, lat.get("min", lat["mean"]), lat.get("max", lat["mean"]), alpha=0.4)
            ax.annotate("summary only", (i, lat["mean"]), textcoords="offset points", xytext=(8, 0), fontsize=7)
    ax.set_xticks(range(1, len(labels) + 1))
    ax.set_xticklabels(labels, rotation=15, ha="right", fontsize=8)
    meds = [(r.get("latency_ms") or {}).get("median") or (r.get("latency_ms") or {}).get("mean") for r in results]
    meds = [m for m in meds if m]
    log = bool(meds) and max(meds) / min(meds) > 20
    if log:  # artifacts of very different cost stay readable side by side
        ax.set_yscale("log")
    ax.set_ylabel("latency per call (ms" + (", log scale)" if log else ")"))
    dev = run.get("device") or {}
    proto = run.get("protocol") or {}
    ax.set_title(f"{dev.get('board') or dev.get('model') or dev.get('hostname') or ''} · "
                 f"threads {proto.get('threads')} · {_count(proto.get('runs'), 'run')}", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write(path, buf.getvalue())
