"""Facts about the machine a benchmark runs on: CPU model, cores used, governor, temperatures.

Standard library only: this module runs on boards as part of the on-device agent.
"""

from __future__ import annotations

import glob
import os
import platform
import re
import socket
from pathlib import Path
from typing import Any


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip()
    except OSError:
        return None


def cpu_model() -> str | None:
    """The CPU's marketing name; on ARM boards, the board or SoC name when the CPU has none."""
    info = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", info, re.MULTILINE)
        if m:
            return m.group(1).strip()
    # ARM kernels often only list implementer/part numbers; the device tree names the board.
    dt = _read("/proc/device-tree/model")
    if dt:
        return dt.rstrip("\x00")
    return platform.processor() or None


def board_model() -> str | None:
    """The board's name from the device tree (Raspberry Pi, Jetson, …) where it exists."""
    dt = _read("/proc/device-tree/model") or _read("/sys/firmware/devicetree/base/model")
    return dt.rstrip("\x00") if dt else None


def parse_cpu_list(text: str) -> list[int]:
    """'0-3,6' → [0, 1, 2, 3, 6] (the kernel's and taskset's CPU list syntax)."""
    cores: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"bad CPU list element {part!r}")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if hi < lo:
            raise ValueError(f"bad CPU range {part!r}")
        cores.update(range(lo, hi + 1))
    if not cores:
        raise ValueError("empty CPU list")
    return sorted(cores)


def cores_used() -> list[int]:
    """CPUs this process may run on (its affinity mask)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def cpufreq(cores: list[int]) -> dict[str, Any]:
    """Governor and current/max frequency (kHz) of each core where the kernel exposes cpufreq."""
    out: dict[str, Any] = {}
    for c in cores:
        base = f"/sys/devices/system/cpu/cpu{c}/cpufreq"
        gov = _read(f"{base}/scaling_governor")
        if gov is None:
            continue
        cur = _read(f"{base}/scaling_cur_freq")
        mx = _read(f"{base}/cpuinfo_max_freq")
        out[str(c)] = {
            "governor": gov,
            "cur_khz": int(cur) if cur and cur.isdigit() else None,
            "max_khz": int(mx) if mx and mx.isdigit() else None,
        }
    return out


def temperatures() -> dict[str, float]:
    """Readable temperatures in °C: thermal zones and hwmon sensors, keyed by their type/label."""
    temps: dict[str, float] = {}
    for zone in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
        raw = _read(f"{zone}/temp")
        if raw is None or not raw.lstrip("-").isdigit():
            continue
        kind = _read(f"{zone}/type") or Path(zone).name
        temps[f"{Path(zone).name}:{kind}"] = millideg_to_c(int(raw))
    for hw in sorted(glob.glob("/sys/class/hwmon/hwmon*")):
        name = _read(f"{hw}/name") or Path(hw).name
        for f in sorted(glob.glob(f"{hw}/temp*_input")):
            raw = _read(f)
            if raw is None or not raw.lstrip("-").isdigit():
                continue
            label = _read(f.replace("_input", "_label")) or Path(f).name.replace("_input", "")
            temps[f"{Path(hw).name}:{name}:{label}"] = millideg_to_c(int(raw))
    return temps


def millideg_to_c(v: int | float) -> float:
    """Kernel sensors report m°C; a few Android zones report °C or d°C directly."""
    v = float(v)
    if abs(v) >= 1000:
        return v / 1000.0
    if abs(v) >= 200:  # deci-degrees on some vendor kernels
        return v / 10.0
    return v


def host_facts() -> dict[str, Any]:
    """What a reader needs to judge a latency figure measured on this machine."""
    used = cores_used()
    freq = cpufreq(used)
    govs = sorted({v["governor"] for v in freq.values()})
    return {
        "kind": "host",
        "hostname": socket.gethostname(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "board": board_model(),
        "cores_total": os.cpu_count(),
        "cores_used": used,
        "governor": govs[0] if len(govs) == 1 else (govs or None),
        "cpufreq": freq or None,
        "python": platform.python_version(),
        "temperatures_c": {"before": temperatures()},
    }
