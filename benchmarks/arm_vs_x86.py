"""ARM vs x86 numerics: each artifact verified on the host and on an ARM board (the same inputs), side by side.

    python benchmarks/arm_vs_x86.py --device ssh://arm-board --ssh-config STATE/ssh_config A.tflite B.onnx …
    [--write]  (replaces the "ARM64 vs x86-64 numerics" section of BENCHMARKS.md)

Correctness figures only: the emulated board's latency is qemu's, not a phone's, and is not reported.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

HEADING = "## ARM64 vs x86-64 numerics (emulated board)"


def main(argv: list[str] | None = None) -> int:
    """Verify each artifact on host and device; print (and optionally write) a markdown table."""
    from _mdsection import write_section

    from mobiledeploy.devicebench.remote_verify import DeviceOptions, verify_on_device
    from mobiledeploy.devicebench.ssh import SSHOptions
    from mobiledeploy.versions import dist_version

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", nargs="+")
    ap.add_argument("--device", required=True)
    ap.add_argument("--ssh-config", default=None)
    ap.add_argument("--random", type=int, default=3)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args(argv)
    opts = DeviceOptions(ssh=SSHOptions(config=a.ssh_config))
    rows, facts = [], None
    for art in a.artifacts:
        res = verify_on_device(Path(art), a.device, n_random=a.random, opts=opts)
        h, d, vs = res["host"]["report"], res["device"]["report"], res["device_vs_host"] or {}
        facts = facts or (res["host"]["facts"], res["device"]["facts"], res["host"]["runtime"], res["device"]["runtime"])
        m = res["manifest"]
        rows.append(f"| {m.model.spec} {m.model.input_size[-1]}px | {m.target} {m.precision} | "
                    f"{h.rel_l2:.1e} | {d.rel_l2:.1e} | {vs.get('rel_l2', float('nan')):.1e} | "
                    f"{vs.get('max_abs', float('nan')):.1e} | {vs.get('top1_agreement', float('nan')):.2f} | "
                    f"{'yes' if vs.get('bit_identical') else 'no'} | {'pass' if d.passed else 'FAIL'} |")
        print(rows[-1], flush=True)
    hf, df, _, _ = facts
    text = "\n".join([
        HEADING, "",
        f"Host: {hf['machine']} {hf['cpu']} ({hf['vector_path']}). Board: `{a.device}`, {df['machine']} "
        f"{df['cpu']} under qemu-user, QEMU_CPU={df['emulated_cpu']} (HWCAP: {' '.join(df['features'] or [])}; "
        f"{df['vector_path']} path). Runtimes on both: ai-edge-litert {dist_version('ai-edge-litert', missing='?')}, "
        f"onnxruntime {dist_version('onnxruntime', missing='?')}, 1 thread; PyTorch "
        f"{dist_version('torch', missing='?')} on the host is the reference. Inputs: {a.random} seeded random + "
        "3 photos (+ 6 crops for int8), identical on both. Made by `benchmarks/arm_vs_x86.py` "
        f"(python {platform.python_version()}).", "",
        "| model | target | host vs PyTorch (rel L2) | ARM vs PyTorch | ARM vs host | ARM vs host max abs | "
        "top-1 ARM=host | bit-identical | ARM verdict |",
        "|---|---|---|---|---|---|---|---|---|", *rows, "",
        "Emulated latency says nothing about a phone: qemu translates every instruction (a GhostNetV2 "
        "inference takes seconds), so the board is for numerics and for testing the SSH path, never for timing. "
        "The board runs the NEON kernels XNNPACK and onnxruntime pick for an ARMv8.2 core with dot product "
        "(Cortex-A76-class big cores, Graviton2); the i8mm, SVE and SME kernels of newer phones are not "
        "exercised by this CPU model, nor is XNNPACK's fp16 inference (LiteRT runs these models in fp32).", ""])
    print(text)
    if a.write:
        write_section(Path(__file__).resolve().parents[1] / "BENCHMARKS.md", HEADING, text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
