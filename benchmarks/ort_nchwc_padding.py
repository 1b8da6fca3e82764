"""Experiment: pad channel counts to onnxruntime's NCHWc block so its blocked layout survives concats.

    .venv/bin/python benchmarks/ort_nchwc_padding.py [--runs 400] [--sessions 3] [--ratio 1.5] [--write-md]

On x86, onnxruntime runs convolutions in a blocked layout (NCHWc, 16 channels per block with
AVX-512) but keeps a channel Concat blocked only when every input's channel count is a multiple of
the block. GhostNet's ghost modules concatenate two halves of 8-480 channels, so at most of them
onnxruntime converts to plain NCHW and back (GhostNetV2: 73 ReorderOutput + 36 ReorderInput nodes).
This script rewrites our exported ONNX graphs so every tensor whose channels are not a multiple of
16 carries zero channels up to the next multiple (weights and biases of the pad slots are zero, so
the real channels compute the same numbers), when that costs at most `--ratio` times the channels,
and times both graphs interleaved on onnxruntime, 1 thread, with devicebench.

It is an experiment, not a rewrite of the exporter: the padding only pays where onnxruntime has a
blocked layout (x86), and on a phone's CPU it is extra work. Results: BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _mdsection import write_section  # noqa: E402  (benchmarks/ is the script's folder)

BLOCK = 16  # MLAS's NCHWc block with AVX-512 (8 with AVX2)
UNARY = {"Relu", "Sigmoid", "HardSigmoid", "Clip", "HardSwish", "LeakyRelu", "Tanh", "Resize"}
SECTION = "## onnxruntime: padding channels to its NCHWc block (experiment, not adopted)"


def pad_channels(model, ratio: float):
    """A copy of `model` with channels padded to BLOCK where the padded count is ≤ ratio × the real one."""
    import onnx
    from onnx import numpy_helper, shape_inference

    m = shape_inference.infer_shapes(model)
    g = m.graph
    init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*g.value_info, *g.input, *g.output]}
    chan = {t: s[1] for t, s in shapes.items() if len(s) >= 2}
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    def depthwise(n) -> bool:
        w = init.get(n.input[1])
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        return w is not None and group > 1 and w.shape[1] == 1 and group == w.shape[0] == chan.get(n.input[0])

    # Tensors that must share one channel layout: elementwise ops, depthwise convs, spatial means.
    fixed = {v.name for v in [*g.input, *g.output]}
    concats: dict[str, list[str]] = {}
    for n in g.node:
        acts = [i for i in n.input if i and i not in init]
        if n.op_type == "Conv":
            group = next((a.i for a in n.attribute if a.name == "group"), 1)
            if depthwise(n):
                union(n.input[0], n.output[0])
            elif group > 1:
                fixed.update([n.input[0], n.output[0]])
        elif n.op_type in UNARY:
            union(n.input[0], n.output[0])
        elif n.op_type in ("Add", "Mul") and len(acts) == 2 and shapes.get(acts[0], [])[:2] == shapes.get(acts[1], [0])[:2]:
            union(acts[0], n.output[0])
            union(acts[1], n.output[0])
        elif n.op_type == "ReduceMean" and len(n.input) > 1 and n.input[1] in init and \
                not {1, -3} & set(init[n.input[1]].tolist()):
            union(n.input[0], n.output[0])
        elif n.op_type == "Concat" and next(a.i for a in n.attribute if a.name == "axis") == 1:
            concats[n.output[0]] = list(n.input)
        else:
            fixed.update([*acts, *n.output])
    fixed_roots = {find(t) for t in fixed}
    concat_roots = collections.defaultdict(list)
    for t, ins in concats.items():
        concat_roots[find(t)].append(ins)
    changed = True
    while changed:  # a concat whose output keeps the plain layout needs plain inputs
        changed = False
        for root, lists in concat_roots.items():
            for ins in (lists if root in fixed_roots else []):
                for i in ins:
                    if find(i) not in fixed_roots:
                        fixed_roots.add(find(i))
                        changed = True
    layouts: dict[str, list[int | None]] = {}

    def layout(t: str) -> list[int | None]:
        """Slot → real channel (None: a zero pad slot) of tensor t."""
        root = find(t)
        if root not in layouts:
            c = chan[t]
            if root in fixed_roots:
                lay = list(range(c))
            elif root in concat_roots:
                options = []
                for ins in concat_roots[root]:
                    lay, off = [], 0
                    for i in ins:
                        lay += [None if s is None else s + off for s in layout(i)]
                        off += chan[i]
                    options.append(lay)
                if any(o != options[0] for o in options):
                    raise ValueError(f"concats of one layout group disagree at {t}")
                lay = options[0]
            else:
                p = -(-c // BLOCK) * BLOCK
                lay = list(range(c)) + [None] * (p - c) if p <= ratio * c else list(range(c))
            layouts[root] = lay
        return layouts[root]

    new = {}
    for n in g.node:
        if n.op_type == "Resize" and len(n.input) > 3 and n.input[3] in init:
            sizes = init[n.input[3]].copy()
            sizes[1] = len(layout(n.input[0]))
            n.input[3] = n.output[0] + "_padded_sizes"
            new[n.input[3]] = sizes
        if n.op_type != "Conv":
            continue
        w = init[n.input[1]]
        lo, li = layout(n.output[0]), layout(n.input[0])
        if lo == list(range(w.shape[0])) and li == list(range(chan[n.input[0]])):
            continue
        if depthwise(n):
            w2 = np.zeros((len(lo), *w.shape[1:]), w.dtype)
            for s, c in enumerate(lo):
                if c is not None:
                    w2[s] = w[c]
            next(a for a in n.attribute if a.name == "group").i = len(lo)
        else:
            w2 = np.zeros((len(lo), len(li), *w.shape[2:]), w.dtype)
            rows = [(s, c) for s, c in enumerate(lo) if c is not None]
            cols = [(s, c) for s, c in enumerate(li) if c is not None]
            w2[np.ix_([s for s, _ in rows], [s for s, _ in cols])] = w[np.ix_([c for _, c in rows], [c for _, c in cols])]
        n.input[1] = n.output[0] + "_padded_w"
        new[n.input[1]] = w2
        if len(n.input) > 2 and n.input[2]:
            b, b2 = init[n.input[2]], np.zeros(len(lo), init[n.input[2]].dtype)
            for s, c in enumerate(lo):
                if c is not None:
                    b2[s] = b[c]
            n.input[2] = n.output[0] + "_padded_b"
            new[n.input[2]] = b2
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep + [numpy_helper.from_array(a, k) for k, a in new.items()])
    del g.value_info[:]
    m = shape_inference.infer_shapes(m)
    onnx.checker.check_model(m)
    return m


def reorders(path: Path) -> int:
    """Layout conversions (ReorderInput/ReorderOutput) in onnxruntime's optimised graph of `path`."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as d:
        so = ort.SessionOptions()
        so.optimized_model_filepath = str(Path(d) / "opt.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return sum(n.op_type.startswith("Reorder") for n in onnx.load(so.optimized_model_filepath).graph.node)


def rel_l2(a: Path, b: Path) -> float:
    """Worst relative L2 distance between the two graphs' outputs over 3 seeded random inputs."""
    import onnxruntime as ort

    from mobiledeploy.exporters.parity import compare

    sa, sb = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (a, b))
    name = sa.get_inputs()[0].name
    worst = 0.0
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal(sa.get_inputs()[0].shape).astype(np.float32)
        worst = max(worst, compare(sa.run(None, {name: x}), sb.run(None, {name: x}))["rel_l2"])
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="ghostnet_100,ghostnetv2_100")
    ap.add_argument("--runs", type=int, default=400, help="timed runs per artifact, over its sessions")
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--ratio", type=float, default=1.5, help="pad only where padded ≤ ratio × real channels")
    ap.add_argument("--write-md", action="store_true", help=f"replace the '{SECTION}' section of BENCHMARKS.md")
    args = ap.parse_args()

    import onnx
    import onnxruntime as ort

    from mobiledeploy import pipeline
    from mobiledeploy.devicebench.protocol import Protocol, measure

    names = args.models.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths, rows = [], []
        for name in names:
            print(f"exporting {name}", flush=True)
            plain = pipeline.export(pipeline.ExportOptions(name, "onnx", out_dir=folder, verify=False)).artifact
            padded = folder / f"{name}.padded.onnx"
            onnx.save(pad_channels(onnx.load(str(plain)), args.ratio), str(padded))
            rows.append({"model": name, "rel_l2": rel_l2(plain, padded),
                         "reorders": (reorders(plain), reorders(padded))})
            paths += [str(plain), str(padded)]
        print("timing (interleaved)", flush=True)
        run = measure(paths, "onnxruntime", Protocol(runs=args.runs, sessions=args.sessions, threads=1, warmup=20))
    med = [r["latency_ms"]["median"] for r in run["results"]]
    for i, row in enumerate(rows):
        row["ms"] = (med[2 * i], med[2 * i + 1])
    dev = run["device"]
    lines = [SECTION, "", f"Run {time.strftime('%Y-%m-%d')} on {dev['cpu']} ({dev['os']}, {dev['cores_total']} cores "
             f"visible), Python {dev['python']}, onnxruntime {ort.__version__}, onnx {onnx.__version__}, 1 thread, "
             f"{args.sessions} sessions per artifact pooled, {args.runs} interleaved runs each. Command: "
             f"`.venv/bin/python benchmarks/ort_nchwc_padding.py --runs {args.runs} --sessions {args.sessions} "
             f"--ratio {args.ratio} --write-md`.", "",
             "| model | ours ms | padded ms | padded/ours | layout conversions ours → padded | rel L2 padded vs ours |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['ms'][0]:.2f} | {r['ms'][1]:.2f} | {r['ms'][1] / r['ms'][0]:.3f} | "
                     f"{r['reorders'][0]} → {r['reorders'][1]} | {r['rel_l2']:.1e} |")
    if len(rows) == 2:
        lines += ["", f"GhostNetV2/GhostNetV1: ours {rows[1]['ms'][0] / rows[0]['ms'][0]:.3f}, "
                      f"padded {rows[1]['ms'][1] / rows[0]['ms'][1]:.3f}."]
    text = "\n".join(lines)
    print(text)
    if args.write_md:
        write_section(Path(__file__).resolve().parents[1] / "BENCHMARKS.md", SECTION, text)


if __name__ == "__main__":
    sys.exit(main())
