"""ExecuTorch in an app bundle: `--bundle` (the .pte, labels, manifest, README with Kotlin and Swift),
`--bundled-io` (the .bpte with the parity inputs and PyTorch's outputs) and `verify X.bpte`, and a CLI whose
stderr carries none of ExecuTorch's C++ info lines.

One small `.pt2` (a conv, BatchNorm, pooling, 10 classes at 32×32) keeps lowering to seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("executorch", reason="the executorch extra is not installed")

from test_bundle_readme import _check_kotlin_compiles_as_pasted, _code_blocks  # noqa: E402

from mobiledeploy.cli import main  # noqa: E402
from mobiledeploy.exporters import executorch_bundled as EB  # noqa: E402
from mobiledeploy.exporters.bundle import AppFacts, readme  # noqa: E402
from mobiledeploy.manifest import Manifest  # noqa: E402

pytestmark = pytest.mark.timeout(600)

NOISE = ("[cpuinfo_utils.cpp:", "[threadpool.cpp:")
MEAN, STD = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)


def _tiny_module() -> torch.nn.Module:
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10))
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        m[1].running_mean.uniform_(-0.5, 0.5)
        m[1].running_var.uniform_(0.5, 2.0)
    return m.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    """`export tiny.pt2 -t executorch --bundle --bundled-io --labels labels.txt` through the CLI."""
    d = tmp_path_factory.mktemp("et-bundle")
    module = _tiny_module()
    torch.export.save(torch.export.export(module, (torch.randn(1, 3, 32, 32),)), str(d / "tiny.pt2"))
    labels = [f"class{i}" for i in range(10)]
    (d / "labels.txt").write_text("\n".join(labels) + "\n")
    out = d / "out"
    rc = main(["export", str(d / "tiny.pt2"), "-t", "executorch", "--bundle", "--bundled-io", "--labels",
               str(d / "labels.txt"), "--out", str(out), "--json"])
    assert rc == 0
    return {"dir": d, "out": out, "module": module, "labels": labels,
            "manifest": json.loads((out / "tiny.pte.json").read_text())}


def test_bundle_holds_the_pte_bpte_labels_manifest_and_readme(exported):
    m, out = exported["manifest"], exported["out"]
    bundle = out / "tiny_executorch_bundle"
    assert sorted(p.name for p in bundle.iterdir()) == ["README.md", "labels.txt", "tiny.bpte", "tiny.pte",
                                                        "tiny.pte.json"]
    assert (bundle / "labels.txt").read_text().splitlines() == exported["labels"]
    assert (bundle / "tiny.pte").read_bytes() == (out / "tiny.pte").read_bytes()
    assert (bundle / "tiny.bpte").read_bytes() == (out / "tiny.bpte").read_bytes()
    inner = json.loads((bundle / "tiny.pte.json").read_text())
    assert inner["sha256"] == m["sha256"] and "tiny.bpte" in inner["bundle"]["files"]

    text = (bundle / "README.md").read_text()
    # A bundle's input defaults to NHWC pixels with the normalisation inside the graph.
    assert m["inputs"][0]["shape"] == [1, 32, 32, 3] and "`[1, 32, 32, 3]` (NHWC" in text
    (kotlin,) = _code_blocks(text, "kotlin")
    _check_kotlin_compiles_as_pasted(kotlin)
    for api in ("import org.pytorch.executorch.Module", "Module.load(file.absolutePath)",
                "Tensor.fromBlob(input, longArrayOf(1L, 32L, 32L, 3L))", "module.forward(EValue.from(tensor))",
                ".toTensor().dataAsFloatArray", 'context.assets.open("tiny.pte")'):
        assert api in kotlin, api
    (swift,) = _code_blocks(text, "swift")
    for api in ("import ExecuTorch", 'Module(filePath: Bundle.main.path(forResource: "tiny", ofType: "pte")!)',
                "Tensor<Float>(input, shape: [1, 32, 32, 3])", "input[i * 3 + c]", "swiftpm-<version>"):
        assert api in swift, api
    assert "mobiledeploy verify tiny.bpte" in text


def test_snippets_carry_a_normalised_nchw_input():
    """Without --layout the .pte takes the normalised NCHW tensor: the snippets normalise in pixel units."""
    f = AppFacts(target="executorch", artifact="g.pte", model="g", input_name="x", shape=[1, 3, 64, 48],
                 layout="nchw", output_name="logits", num_classes=7, mean=[123.675, 116.28, 103.53],
                 std=[58.395, 57.12, 57.375], normalization_in_graph=False)
    text = readme(f, Manifest(), has_labels=True)
    (kotlin,) = _code_blocks(text, "kotlin")
    _check_kotlin_compiles_as_pasted(kotlin)
    assert "floatArrayOf(123.675f, 116.28f, 103.53f)" in kotlin and "longArrayOf(1L, 3L, 64L, 48L)" in kotlin
    assert "input[c * 64 * 48 + i] = (v - mean[c]) / std[c]" in kotlin and "var k" not in kotlin
    (swift,) = _code_blocks(text, "swift")
    assert "Tensor<Float>(input, shape: [1, 3, 64, 48])" in swift and "input[c * 3072 + i]" in swift
    assert 'output "logits": 7 scores' in kotlin and '"logits"' in swift


def test_bpte_holds_the_parity_inputs_and_pytorch_outputs(exported):
    m, out = exported["manifest"], exported["out"]
    rec = m["target_info"]["bundled_io"]
    data = (out / "tiny.bpte").read_bytes()
    assert rec["sha256"] == __import__("hashlib").sha256(data).hexdigest()
    program, cases = EB.read(data)
    assert program == (out / "tiny.pte").read_bytes()  # the very program the manifest describes
    # The parity check's inputs, case for case: three seeded random images and the three photos.
    assert rec["inputs"] == [s["input"] for s in m["parity"]["per_sample"]] and len(cases) == rec["test_cases"] == 6
    for (inputs, expected), name in zip(cases, rec["inputs"]):
        (px,) = inputs
        assert px.shape == (1, 32, 32, 3) and px.dtype == np.float32 and 0 <= px.min() and px.max() <= 255
        x = torch.from_numpy(((px / 255.0 - MEAN) / STD).transpose(0, 3, 1, 2).astype(np.float32))
        with torch.no_grad():
            ref = exported["module"](x).numpy()
        (got,) = expected
        assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-6, name


def _verify(path: Path, capsys) -> tuple[int, dict | None, str]:
    rc = main(["verify", str(path), "--json"])
    cap = capsys.readouterr()
    return rc, json.loads(cap.out) if cap.out.strip() else None, cap.err


def _copy_export(exported, dest: Path) -> Path:
    """The .pte and its manifest in another folder, for a .bpte written by the test beside them."""
    dest.mkdir()
    for name in ("tiny.pte", "tiny.pte.json"):
        shutil.copyfile(exported["out"] / name, dest / name)
    return dest


def test_verify_bpte_passes_and_a_perturbed_expected_output_fails(exported, tmp_path, capsys):
    rc, res, _ = _verify(exported["out"] / "tiny.bpte", capsys)
    assert rc == 0 and res["verified"] is True and res["parity"]["n_samples"] == 6
    assert res["parity"]["rel_l2"] <= 1e-5 and res["parity"]["inputs"] == exported["manifest"]["parity"]["inputs"]

    _, cases = EB.read((exported["out"] / "tiny.bpte").read_bytes())
    named = [(f"case{i}", tuple(ins), outs) for i, (ins, outs) in enumerate(cases)]
    d = _copy_export(exported, tmp_path / "same")
    # Control: read back and written again, unchanged, it still passes (the reader and writer are faithful).
    (d / "tiny.bpte").write_bytes(EB.serialize(d / "tiny.pte", named))
    rc, res, _ = _verify(d / "tiny.bpte", capsys)
    assert rc == 0 and res["verified"] is True

    # One expected output off by a relative 1e-3: far below a visible change, far above the fp32 bar (1e-5).
    bad = list(named)
    name, ins, (logits,) = bad[4]
    bad[4] = (name, ins, [logits + np.float32(1e-3) * np.linalg.norm(logits) / np.sqrt(logits.size)])
    d = _copy_export(exported, tmp_path / "bad")
    (d / "tiny.bpte").write_bytes(EB.serialize(d / "tiny.pte", bad))
    rc, res, err = _verify(d / "tiny.bpte", capsys)
    assert rc != 0 and res["verified"] is False
    assert 9e-4 < res["parity"]["rel_l2"] < 2e-3, res["parity"]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: tiny.bpte fails the fp32 parity check"), err


def test_a_bpte_of_another_program_is_refused(exported, tmp_path, capsys):
    d = _copy_export(exported, tmp_path / "other")
    other = tmp_path / "other.pte"
    other.write_bytes((d / "tiny.pte").read_bytes() + b"\0")  # another file than the manifest's
    _, cases = EB.read((exported["out"] / "tiny.bpte").read_bytes())
    (d / "tiny.bpte").write_bytes(EB.serialize(other, [("c", tuple(i), o) for i, o in cases]))
    rc, res, err = _verify(d / "tiny.bpte", capsys)
    assert rc != 0 and res is None
    assert err.count("\n") == 1 and "bundles another program than the tiny.pte its manifest describes" in err

    (d / "tiny.bpte").write_bytes((d / "tiny.pte").read_bytes())  # a .pte renamed: not a bundled program
    rc, res, err = _verify(d / "tiny.bpte", capsys)
    assert rc != 0 and res is None and err.count("\n") == 1 and "is not an ExecuTorch bundled program" in err


def test_int8_bpte_is_judged_as_the_export_was(exported, tmp_path, capsys):
    """int8: the bundle holds the crops too, and verify judges the photos and crops (median image) by the
    recorded input names, as the export's parity check did: the same figures, from the same runtime."""
    out = tmp_path / "int8"
    rc = main(["export", str(exported["dir"] / "tiny.pt2"), "-t", "executorch", "--precision", "int8",
               "--bundled-io", "--out", str(out)])
    assert rc == 0
    m = json.loads((out / "tiny_int8.pte.json").read_text())
    rec, parity = m["target_info"]["bundled_io"], m["parity"]
    assert rec["test_cases"] == len(parity["per_sample"]) == 12 and parity["n_samples"] == 9
    capsys.readouterr()
    rc, res, _ = _verify(out / "tiny_int8.bpte", capsys)
    assert rc == 0 and res["precision"] == "int8"
    got = res["parity"]
    assert got["inputs"] == parity["inputs"] and got["tolerance"] == parity["tolerance"]
    assert got["rel_l2"] == pytest.approx(parity["rel_l2"], rel=1e-6, abs=1e-9)


def test_force_without_bundled_io_removes_the_stale_bpte(exported, tmp_path):
    """A --force re-export without --bundled-io replaces the program: the old .bpte would bundle the old one."""
    out = tmp_path / "again"
    for extra in (["--bundled-io"], ["--force"]):
        assert main(["export", str(exported["dir"] / "tiny.pt2"), "-t", "executorch", "--out", str(out),
                     *extra]) == 0
        assert (out / "tiny.bpte").exists() == (extra == ["--bundled-io"])
    assert (out / "tiny.pte").exists()


def test_bundled_io_is_an_executorch_option(exported, capsys):
    rc = main(["export", str(exported["dir"] / "tiny.pt2"), "-t", "onnx", "--bundled-io", "--out",
               str(exported["dir"] / "onnx")])
    err = capsys.readouterr().err
    assert rc != 0 and err.count("\n") == 1 and "--bundled-io is an ExecuTorch option" in err
    assert not (exported["dir"] / "onnx").exists()


def test_filtered_lines_go_whether_native_code_writes_to_fd_2_or_to_sys_stderr(capfd):
    """ExecuTorch's bindings print their C++ log lines through Python's sys.stderr, LiteRT on fd 2: both are
    filtered, and every other line on either side is passed on."""
    from mobiledeploy.errors import quiet_native_stderr

    with quiet_native_stderr(*NOISE):
        os.write(2, b"[threadpool.cpp:66] Resetting threadpool to 1 threads.\nnative error\n")
        print("[cpuinfo_utils.cpp:71] Reading file /sys/devices/soc0/image_version", file=sys.stderr)
        print("python error", file=sys.stderr)
    assert capfd.readouterr().err.splitlines() == ["native error", "python error"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mobiledeploy", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_executorch_runtime_info_lines_stay_out_of_stderr(exported):
    # Control: ExecuTorch itself prints them here when its thread pool is set, so their absence below means
    # they were filtered, not that this machine never produces them.
    raw = subprocess.run([sys.executable, "-c", "from executorch.extension.pybindings.portable_lib import "
                          "_unsafe_reset_threadpool as r; r(1); r(2)"], capture_output=True, text=True, timeout=300)
    assert any(ln.startswith(NOISE[0]) for ln in raw.stderr.splitlines()), raw.stderr
    assert sum(ln.startswith(NOISE[1]) for ln in raw.stderr.splitlines()) == 2, raw.stderr

    pte = exported["out"] / "tiny.pte"
    again = str(exported["dir"] / "again")
    for args in (("export", str(exported["dir"] / "tiny.pt2"), "-t", "executorch", "--out", again),
                 ("verify", str(pte)), ("verify", str(pte.with_suffix(".bpte"))),
                 ("bench", str(pte), "--runs", "3", "--warmup", "1", "--threads", "2")):
        r = _cli(*args)
        assert r.returncode == 0, r.stderr
        assert not [ln for ln in r.stderr.splitlines() if ln.startswith(NOISE)], (args, r.stderr)
        # Nor torch's log line on torchao's import (executorch imports it): a verify or bench says nothing.
        assert "_pytree" not in r.stderr and (r.stderr == "" or args[0] == "export"), (args, r.stderr)
