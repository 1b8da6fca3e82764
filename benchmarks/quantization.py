"""fp32 vs int8, side by side, through the real CLI: size, held-out accuracy, agreement, latency.

1. The trained digits classifier (benchmarks/train_small.py; 360 held-out images): each target's
   fp32 and int8 artifacts from `mobiledeploy export`, held-out top-1 of both, top-1 agreement.
2. MobileNetV2 1.0 at 224×224 (random weights, ImageNet head): size and latency, where the
   latency difference means something (the digits model is ~1 M MACs).
Latency is `mobiledeploy bench` on both artifacts of a pair in one call, 1 thread.

    python benchmarks/quantization.py --out out/quant      # ~10 CPU minutes
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
MD = [sys.executable, "-m", "mobiledeploy"]


def sh(*args: str) -> None:
    """Run a CLI command, failing loudly."""
    r = subprocess.run([*MD, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"failed: mobiledeploy {' '.join(args)}\n{r.stderr[-3000:]}")


def export(out: Path, *args: str) -> dict:
    """`mobiledeploy export … --json` and its manifest."""
    r = subprocess.run([*MD, "export", *args, "--out", str(out), "--force", "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"failed: export {' '.join(args)}\n{r.stderr[-3000:]}")
    return json.loads(r.stdout)


def bench(paths: list[Path], runs: int) -> dict[str, float]:
    """Median latency (ms) of each artifact from one `mobiledeploy bench` call."""
    js = paths[0].parent / f"bench_{paths[0].stem}.json"
    sh("bench", *map(str, paths), "--threads", "1", "--runs", str(runs), "--warmup", "20", "--json", str(js))
    data = json.loads(js.read_text())
    results = data if isinstance(data, list) else data.get("results", [data])
    out = {}
    for r in results:
        art = r.get("artifact", {})
        name = Path(art.get("path", art) if isinstance(art, dict) else art).name
        out[name] = float(r["latency_ms"]["median"])
    return out


def accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    from mobiledeploy.exporters import quantize as Q

    run = Q.RUNNERS["tflite" if path.suffix == ".tflite" else "onnx"]
    logits = run(path, x)
    return float((logits.argmax(1) == y).mean()), logits


def coreml_logits(path: Path, px_nhwc: np.ndarray, x_nchw: np.ndarray) -> np.ndarray:
    """Core ML logits through the reference interpreter; compressed weights decoded by coremltools first.

    An image input gets 8-bit pixels (what a CVPixelBuffer holds), a tensor input the normalised tensor.
    """
    import tempfile

    import coremltools as ct
    from coremltools.optimize.coreml import decompress_weights

    from mobiledeploy.exporters.mlinterp import CoreMLModel

    with tempfile.TemporaryDirectory() as d:
        dec = Path(d) / "decoded.mlpackage"
        decompress_weights(ct.models.MLModel(str(path), skip_model_load=True)).save(str(dec))
        m = CoreMLModel(dec)
        name = next(iter(m.program.inputs))
        outs = [o.name for o in m.description.output]
        key = "logits" if "logits" in outs else outs[0]
        xs = px_nhwc.round() if name in m.image_inputs else x_nchw
        return np.concatenate([np.asarray(m.predict({name: xi if name in m.image_inputs else xi[None]})[key])
                               for xi in xs])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("out/quant"))
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--skip-large", action="store_true", help="skip MobileNetV2 1.0 at 224")
    a = ap.parse_args()
    import torch

    import train_small as ts

    torch.set_num_threads(1)
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    tm = ts.load_or_train(out / "digits")
    _, _, x_te, y_te = ts.digits_split(tm.size)
    x_tr = ts.digits_split(tm.size)[0]
    px_test = (x_te.permute(0, 2, 3, 1) * 255).numpy()
    y = y_te.numpy()
    (out / "labels.txt").write_text("\n".join(tm.labels) + "\n")
    calib = out / "calib"
    calib.mkdir(exist_ok=True)
    from skimage import io

    for i, img in enumerate((x_tr[:128].permute(0, 2, 3, 1) * 255).round().byte().numpy()):
        io.imsave(str(calib / f"{i:03d}.png"), img, check_contrast=False)
    common = ["mobilenetv2_035", "--weights", str(tm.checkpoint), "--input-size", str(tm.size),
              "--labels", str(out / "labels.txt")]
    rows = []
    for target in ("tflite", "onnx"):
        d = out / f"digits_{target}"
        m32 = export(d, *common, "-t", target, "--layout", "nhwc")
        m8 = export(d, *common, "-t", target, "--layout", "nhwc", "--precision", "int8", "--calibration", str(calib))
        p32, p8 = d / m32["artifact"], d / m8["artifact"]
        acc32, l32 = accuracy(p32, px_test, y)
        acc8, l8 = accuracy(p8, px_test, y)
        lat = bench([p32, p8], a.runs)
        rows.append({"model": f"digits mobilenetv2_035 @{tm.size}", "target": target,
                     "int8": m8["target_info"]["quantization"]["method"],
                     "fp32_bytes": m32["size_bytes"], "int8_bytes": m8["size_bytes"],
                     "acc_fp32": acc32, "acc_int8": acc8, "agreement": float((l32.argmax(1) == l8.argmax(1)).mean()),
                     "ms_fp32": lat.get(p32.name), "ms_int8": lat.get(p8.name)})
        print(rows[-1], flush=True)
    # Core ML: weight compression; accuracy from the weights as coremltools decodes them (no Core ML runtime here).
    d = out / "digits_coreml"
    x_nchw = ((x_te.numpy() - np.array(tm.mean, np.float32).reshape(1, 3, 1, 1))
              / np.array(tm.std, np.float32).reshape(1, 3, 1, 1)).astype(np.float32)
    from mobiledeploy.exporters import quantize as Q
    from mobiledeploy.models import create_model  # noqa: F401 - registry import for the pipeline

    m32 = export(d, *common, "-t", "coreml", "--name", "digits_fp32", "--no-verify")
    p32 = d / m32["artifact"]
    try:
        l32 = coreml_logits(p32, px_test, x_nchw)
        acc32 = float((l32.argmax(1) == y).mean())
    except Exception as e:  # noqa: BLE001 - report what the interpreter could not run
        l32, acc32 = None, f"not verified ({type(e).__name__})"
    for mode in ("linear8", "palettize6"):
        p8 = d / f"digits_{mode}.mlpackage"
        Q.compress_coreml(p32, p8, mode)
        try:
            l8 = coreml_logits(p8, px_test, x_nchw)
            acc8 = float((l8.argmax(1) == y).mean())
            agree = float((l32.argmax(1) == l8.argmax(1)).mean()) if l32 is not None else None
        except Exception as e:  # noqa: BLE001
            acc8, agree = f"not verified ({type(e).__name__})", None
        rows.append({"model": f"digits mobilenetv2_035 @{tm.size}", "target": "coreml", "int8": f"coremltools {mode}",
                     "fp32_bytes": Q._size(p32), "int8_bytes": Q._size(p8), "acc_fp32": acc32, "acc_int8": acc8,
                     "agreement": agree, "ms_fp32": None, "ms_int8": None})
        print(rows[-1], flush=True)
    if not a.skip_large:
        for target in ("tflite", "onnx"):
            d = out / f"mnv2_{target}"
            big = ["mobilenetv2_100", "-t", target, "--layout", "nhwc"]
            m32 = export(d, *big)
            m8 = export(d, *big, "--precision", "int8")
            p32, p8 = d / m32["artifact"], d / m8["artifact"]
            lat = bench([p32, p8], a.runs)
            q = m8["target_info"]["quantization"]
            rows.append({"model": "mobilenetv2_100 @224 (random weights)", "target": target, "int8": q["method"],
                         "fp32_bytes": m32["size_bytes"], "int8_bytes": m8["size_bytes"], "acc_fp32": None,
                         "acc_int8": None, "agreement": q["vs_fp32"]["top1_agreement"],
                         "ms_fp32": lat.get(p32.name), "ms_int8": lat.get(p8.name)})
            print(rows[-1], flush=True)
    versions = {}
    from importlib.metadata import version

    for dist in ("torch", "litert-torch", "ai-edge-litert", "ai-edge-quantizer", "onnxruntime", "coremltools"):
        try:
            versions[dist] = version(dist)
        except Exception:  # noqa: BLE001
            versions[dist] = "?"
    report = {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
              "versions": versions, "train": {"test_accuracy": tm.test_accuracy, "seconds": tm.train_seconds},
              "rows": rows}
    (out / "quantization.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
