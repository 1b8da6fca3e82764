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
    arm = arm_cores(info)
    if arm:
        return arm
    # ARM kernels often only list implementer/part numbers; the device tree names the board.
    dt = _read("/proc/device-tree/model")
    if dt:
        return dt.rstrip("\x00")
    return platform.processor() or None


# Arm Ltd. (implementer 0x41) CPU part numbers, from the cores' technical reference manuals.
_ARM_PARTS = {0xd03: "Cortex-A53", 0xd04: "Cortex-A35", 0xd05: "Cortex-A55", 0xd07: "Cortex-A57", 0xd08: "Cortex-A72",
              0xd09: "Cortex-A73", 0xd0a: "Cortex-A75", 0xd0b: "Cortex-A76", 0xd0c: "Neoverse-N1", 0xd0d: "Cortex-A77",
              0xd40: "Neoverse-V1", 0xd41: "Cortex-A78", 0xd44: "Cortex-X1", 0xd46: "Cortex-A510", 0xd47: "Cortex-A710",
              0xd48: "Cortex-X2", 0xd49: "Neoverse-N2", 0xd4d: "Cortex-A715", 0xd4e: "Cortex-X3", 0xd4f: "Neoverse-V2",
              0xd80: "Cortex-A520", 0xd81: "Cortex-A720", 0xd82: "Cortex-X4"}


def arm_cores(cpuinfo: str) -> str | None:
    """'2x Neoverse-N1' or '4x Cortex-A55 + 4x Cortex-A76' from an ARM /proc/cpuinfo's implementer/part lines."""
    parts = re.findall(r"^CPU implementer\s*:\s*(0x[0-9a-fA-F]+)[\s\S]*?^CPU part\s*:\s*(0x[0-9a-fA-F]+)",
                       cpuinfo, re.MULTILINE)
    if not parts:
        return None
    counts: dict[str, int] = {}
    for impl, part in parts:
        name = _ARM_PARTS.get(int(part, 16)) if int(impl, 16) == 0x41 else None
        name = name or f"implementer {impl} part {part}"
        counts[name] = counts.get(name, 0) + 1
    return " + ".join(f"{n}x {name}" for name, n in counts.items())


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


# Linux arm64 HWCAP/HWCAP2 bits (arch/arm64/include/uapi/asm/hwcap.h): the features the kernel (or
# qemu-user) tells programs about. XNNPACK and onnxruntime choose their kernels from these.
_HWCAP = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc "
          "dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg").split()
_HWCAP2 = ("dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svef32mm svef64mm "
           "svebf16 i8mm bf16 dgh rng bti mte ecv afp rpres mte3 sme sme_i16i64 sme_f64f64 sme_i8i32 "
           "sme_f16f32 sme_b16f32 sme_f32f32 sme_fa64 wfxt ebf16 sve_ebf16 cssc rprfm sve2p1 sme2 sme2p1").split()
_AT_HWCAP, _AT_HWCAP2 = 16, 26


def _auxv() -> dict[int, int]:
    """This process's ELF auxiliary vector (qemu-user answers with the emulated CPU's values)."""
    import struct

    try:
        raw = Path("/proc/self/auxv").read_bytes()
    except OSError:
        return {}
    fmt = "<QQ" if struct.calcsize("P") == 8 else "<II"
    return {k: v for k, v in struct.iter_unpack(fmt, raw[: len(raw) - len(raw) % struct.calcsize(fmt)])}


def _bits(value: int, names: list[str]) -> list[str]:
    return [n for i, n in enumerate(names) if value >> i & 1]


def isa_facts() -> dict[str, Any]:
    """Instruction-set features this process sees and the vector path runtimes will take (NEON/SVE/SME, AVX…)."""
    machine = platform.machine().lower()
    info = _read("/proc/cpuinfo") or ""
    m = re.search(r"^(?:Features|flags)\s*:\s*(.+)$", info, re.MULTILINE)
    listed = m.group(1).split() if m else []
    out: dict[str, Any] = {"machine": machine, "cpuinfo_features": listed or None,
                           # qemu-user reads its CPU model from here; a real board has none.
                           "emulated_cpu": os.environ.get("QEMU_CPU")}
    if machine in ("aarch64", "arm64"):
        aux = _auxv()
        feats = _bits(aux.get(_AT_HWCAP, 0), _HWCAP) + _bits(aux.get(_AT_HWCAP2, 0), _HWCAP2)
        out["hwcap"] = feats if aux else None
        have = set(feats if aux else listed)
        out["vector_path"] = ("SME" if "sme" in have else "SVE" if "sve" in have else
                              "NEON" if "asimd" in have else "none")
        out["dotprod"] = "asimddp" in have
        out["fp16_arith"] = "asimdhp" in have
    elif machine in ("x86_64", "amd64", "i686", "x86"):
        have = set(listed)
        out["vector_path"] = ("AVX-512" if "avx512f" in have else "AVX2" if "avx2" in have else
                              "AVX" if "avx" in have else "SSE" if "sse2" in have else "unknown")
        out["cpuinfo_features"] = sorted(have & {"sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw",
                                                 "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile"}) or None
    else:
        out["vector_path"] = "unknown"
    return out


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
        "isa": isa_facts(),
        "temperatures_c": {"before": temperatures()},
    }
