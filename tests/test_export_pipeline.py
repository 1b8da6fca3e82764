"""The export pipeline and the `export` / `verify` commands on small models: manifests, parity, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mobiledeploy import manifest as mf
from mobiledeploy import pipeline
from mobiledeploy.cli import main
from mobiledeploy.errors import VerificationError
from mobiledeploy.exporters.rewrites import RewriteContext, register_rewrite
from mobiledeploy.exporters.rewrites._graph import call_nodes, finish, insert
from mobiledeploy.exporters.targets import _TARGETS, get_target, register_target

aten = torch.ops.aten


class TinyDFC(torch.nn.Module):
    """A GhostNetV2-like block at 14×14: a 7×7 map gated by a 3×3 attention map upsampled 3→7."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, 2, 1)
        self.short = torch.nn.Conv2d(8, 8, 1)
        self.head = torch.nn.Linear(8, 10)

    def forward(self, x):
        y = torch.relu(self.stem(x))
        gate = torch.sigmoid(self.short(F.avg_pool2d(y, 2, 2)))
        y = y * F.interpolate(gate, size=y.shape[-2:], mode="nearest")
        return self.head(y.mean((2, 3)))


@pytest.fixture(scope="module")
def tiny_pt2(tmp_path_factory) -> Path:
    torch.manual_seed(1)
    model = TinyDFC().eval()
    ep = torch.export.export(model, (torch.randn(2, 3, 14, 14),),
                             dynamic_shapes=({0: torch.export.Dim("batch", max=16)},), strict=False)
    path = tmp_path_factory.mktemp("pt2") / "tiny_dfc.pt2"
    torch.export.save(ep, str(path))
    return path


def _run(args, capsys) -> tuple[int, str, str]:
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_export_onnx_writes_manifest_and_verifies(tmp_path, capsys):
    rc, out, err = _run(["export", "ghostnet_050", "--target", "onnx", "--input-size", "64", "--out",
                         str(tmp_path), "--json"], capsys)
    assert rc == 0, err
    shown = json.loads(out)
    art = tmp_path / "ghostnet_050_64.onnx"
    assert Path(shown["artifact_path"]) == art and _files(tmp_path) == [art.name, art.name + ".json"]
    assert json.loads(mf.manifest_path(art).read_text())["schema"] == mf.SCHEMA
    m = mf.read(mf.manifest_path(art))
    assert m.schema == mf.SCHEMA and m.target == "onnx" and m.artifact == art.name
    assert m.sha256 == mf.sha256(art) and m.precision == "fp32" and m.verified is True
    (inp,) = m.inputs
    assert inp.shape == [1, 3, 64, 64] and inp.layout == "NCHW" and inp.dtype == "float32"
    assert inp.normalization.mean == [0.485, 0.456, 0.406] and inp.value_range == [0.0, 1.0]
    assert m.outputs[0].shape == [1, 1000] and len(m.labels) == 1000
    p = m.parity
    assert p.passed and p.rel_l2 <= 1e-5 and p.top1_agreement == 1.0 and p.cosine > 0.99999
    assert p.n_samples == 6 and {"photo:chelsea", "photo:astronaut", "photo:coffee"} <= set(p.inputs)
    assert m.versions.torch == torch.__version__ and m.versions.runtime.name == "onnxruntime"
    assert m.target_info["opset"] >= 17
    assert {"alias_cleanup"} <= {r["name"] for r in m.rewrites}
    assert m.model.init.startswith("random") and m.model.weights is None
    assert shown["parity"] == p.to_json() and shown["model"] == m.model.to_json()  # --json prints the manifest

    rc, out, err = _run(["verify", str(art)], capsys)
    assert rc == 0 and "verified" in out and "rel_l2" in out, (out, err)


def test_existing_output_needs_force_and_changed_artifacts_fail_verify(tiny_pt2, tmp_path, capsys):
    args = ["export", str(tiny_pt2), "--target", "onnx", "--out", str(tmp_path)]
    rc, out, err = _run(args, capsys)
    assert rc == 0 and "verified" in out and "tiny_dfc.onnx" in out, err
    art = tmp_path / "tiny_dfc.onnx"
    rc, out, err = _run(args, capsys)
    assert rc == 2 and "already exists" in err and "--force" in err and err.count("\n") == 1
    art.write_bytes(b"stale")
    rc, out, err = _run([*args, "--force"], capsys)
    assert rc == 0 and "verified" in out
    assert mf.read(mf.manifest_path(art)).sha256 == mf.sha256(art)

    # A changed artifact no longer verifies.
    with open(art, "ab") as f:
        f.write(b"\0")
    rc, out, err = _run(["verify", str(art)], capsys)
    assert rc == 3 and "changed since export" in err


def test_fp16_onnx_meets_its_stated_tolerance(tmp_path):
    out = pipeline.export(pipeline.ExportOptions("ghostnet_050", "onnx", input_size=(64, 64), precision="fp16",
                                                 out_dir=tmp_path))
    p = out.manifest.parity
    assert out.artifact.name == "ghostnet_050_64_fp16.onnx" and out.manifest.precision == "fp16"
    assert p.tolerance == {"rel_l2": 2e-2, "top1_agreement": 0.85}
    assert 1e-6 < p.rel_l2 <= 2e-2 and p.passed  # fp16 is not fp32: a non-zero error, within the bar
    assert out.manifest.inputs[0].dtype == "float32"  # I/O kept fp32


@pytest.mark.parametrize("args,needle", [
    (["export", "ghostnetv2_10", "--target", "onnx"], "did you mean ghostnetv2_"),
    (["export", "ghostnet_050", "--target", "onx"], "unknown target 'onx' (choose one of: onnx, tflite, coreml"),
    (["export", "ghostnet_050", "--target", ",,"], "no target in --target ',,'"),
    (["export", "timm:ghostnetv2_10", "--target", "onnx"], "timm:ghostnetv2_100?"),
    (["export", "ghostnet_050", "--target", "onnx", "--input-size", "2x"], "bad --input-size"),
    (["export", "ghostnet_050", "--target", "onnx", "--precision", "fp8"], "unknown precision"),
    (["export", "missing.pt2", "--target", "onnx"], "no such .pt2 file"),
    (["export", "ghostnet_050", "--target", "ort", "--precision", "fp16", "--input-size", "64"],
     "--precision fp16 gains nothing for ort"),
    (["verify", "nowhere.onnx"], "no artifact at"),
    (["verify", ""], "'.' is a folder, not an artifact"),
    (["verify", ".."], "'..' is a folder, not an artifact"),
])
def test_bad_input_is_one_line(args, needle, capsys, tmp_path):
    rc, out, err = _run([*args, "--out", str(tmp_path)] if args[0] == "export" else args, capsys)
    assert rc == 2 and needle in err and err.count("\n") == 1, err
    assert _files(tmp_path) == []


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, _, err = _run(["export", "ghostnet_050", "--target", "onnx", "--out", str(blocker / "sub")], capsys)
    assert rc == 2 and "cannot create output folder" in err
    rc, _, err = _run(["export", "ghostnet_050", "--target", "onnx", "--out", str(blocker)], capsys)
    assert rc == 2 and "is not a folder" in err


def test_weights_that_do_not_fit(tmp_path, capsys):
    from mobiledeploy.models import create_model

    ckpt = tmp_path / "mnv2.pth"
    torch.save(create_model("mobilenetv2_035").state_dict(), ckpt)
    rc, _, err = _run(["export", "ghostnet_050", "--target", "onnx", "--weights", str(ckpt), "--out",
                       str(tmp_path / "out")], capsys)
    assert rc == 2 and "does not fit ghostnet_050" in err
    assert _files(tmp_path / "out") == []


def test_missing_extra_names_the_pip_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxsim", None)  # as if onnxsim were not installed
    rc, _, err = _run(["export", "ghostnet_050", "--target", "onnx", "--out", str(tmp_path)], capsys)
    assert rc == 2 and "pip install 'mobiledeploy[onnx]'" in err and "onnxsim" in err


def test_interrupted_export_leaves_nothing(tiny_pt2, tmp_path):
    def interrupt(req, result):
        assert Path(result.artifact).exists()  # written, under its temporary name
        raise KeyboardInterrupt

    pipeline.AFTER_CONVERT.append(interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            pipeline.export(pipeline.ExportOptions(str(tiny_pt2), "onnx", out_dir=tmp_path, verify=False))
    finally:
        pipeline.AFTER_CONVERT.remove(interrupt)
    assert _files(tmp_path) == []  # not even a hidden partial file


@register_rewrite("test_wrong_nearest")
def _wrong_nearest(program, ctx: RewriteContext):
    """Deliberately wrong: 3→7 as 2x then the LAST row/column repeated (an off-by-one a pass could make)."""
    graph, n = program.graph_module.graph, 0
    for node in call_nodes(program, (aten.upsample_nearest2d.vec,)):
        x = node.args[0]
        h, w = x.meta["val"].shape[-2:]
        y = insert(graph, node, aten.upsample_nearest2d.vec, (x, [2 * h, 2 * w], None), node)
        for dim, size in ((2, 2 * h), (3, 2 * w)):
            last = insert(graph, node, aten.slice.Tensor, (y, dim, size - 1, size, 1), node)
            y = insert(graph, node, aten.cat.default, ([y, last], dim), node)
        node.replace_all_uses_with(y)
        graph.erase_node(node)
        n += 1
    finish(program)
    return program, n


def test_wrong_rewrite_is_caught_by_the_parity_check(tiny_pt2, tmp_path):
    opts = pipeline.ExportOptions(str(tiny_pt2), "onnx", out_dir=tmp_path, rewrites=("test_wrong_nearest",),
                                  skip_rewrites=("exact_nearest_upsample",))
    with pytest.raises(VerificationError) as e:
        pipeline.export(opts)
    msg = str(e.value)
    assert "fails the fp32 parity check" in msg and "rel_l2" in msg and "bar 1e-05" in msg
    assert e.value.exit_code == 3
    assert _files(tmp_path) == []


def test_pt2_dynamic_program_exports_exactly_at_a_static_batch(tiny_pt2, tmp_path, capsys):
    rc, out, err = _run(["export", str(tiny_pt2), "--target", "onnx", "--batch", "2", "--out", str(tmp_path),
                         "--json"], capsys)
    assert rc == 0, err
    m = json.loads(out)
    assert m["model"]["source"] == "pt2" and m["inputs"][0]["shape"] == [1 * 2, 3, 14, 14]
    assert {"static_shapes", "exact_nearest_upsample", "avgpool_as_depthwise_conv"} <= {r["name"] for r in m["rewrites"]}
    assert m["verified"] and m["parity"]["rel_l2"] <= 1e-5
    rc, out, err = _run(["verify", str(tmp_path / "tiny_dfc_b2.onnx"), "--json"], capsys)
    assert rc == 0 and json.loads(out)["verified"] is True

    rc, _, err = _run(["export", str(tiny_pt2), "--target", "onnx", "--input-size", "28", "--out",
                       str(tmp_path / "x")], capsys)
    assert rc == 2 and "exported with a fixed 14×14 input, not 28×28" in err


def test_name_applies_to_every_target(tiny_pt2, tmp_path, capsys):
    """--name with several targets: each artifact takes the name with its own suffix (no two collide)."""
    rc, out, err = _run(["export", str(tiny_pt2), "-t", "onnx,tflite", "--batch", "2", "--name", "twin",
                         "--out", str(tmp_path), "--json"], capsys)
    assert rc == 0, err
    assert [m["artifact"] for m in json.loads(out)] == ["twin.onnx", "twin.tflite"]
    assert all((tmp_path / f).exists() for f in ("twin.onnx", "twin.onnx.json", "twin.tflite", "twin.tflite.json"))


def test_one_failing_target_does_not_stop_the_others(tiny_pt2, tmp_path, capsys):
    """A target that fails after the model traced (here: its artifact exists, no --force) is reported and
    the remaining targets are still exported; the exit status is non-zero."""
    (tmp_path / "twin.tflite").write_bytes(b"yesterday's artifact")
    rc, out, err = _run(["export", str(tiny_pt2), "-t", "onnx,tflite,ort", "--batch", "2", "--name", "twin",
                         "--out", str(tmp_path), "--json"], capsys)
    assert rc == 2 and "twin.tflite already exists" in err and err.count("error:") == 1
    assert [m["artifact"] for m in json.loads(out)] == ["twin.onnx", "twin.ort"]
    assert (tmp_path / "twin.tflite").read_bytes() == b"yesterday's artifact"
    # The first target failing before anything was traced does not stop the others either.
    (tmp_path / "solo.onnx").write_bytes(b"old")
    rc, out, err = _run(["export", str(tiny_pt2), "-t", "onnx,ort", "--batch", "2", "--name", "solo",
                         "--out", str(tmp_path), "--json"], capsys)
    assert rc == 2 and "solo.onnx already exists" in err
    assert [m["artifact"] for m in json.loads(out)] == ["solo.ort"]
    # A failure before the trace would repeat for every target: one line, nothing exported.
    rc, out, err = _run(["export", "nosuch_model", "-t", "onnx,tflite", "--out", str(tmp_path / "n")], capsys)
    assert rc == 2 and err.count("error:") == 1 and not (tmp_path / "n").exists()


def test_too_small_input_names_the_smallest_size_that_works(tmp_path, capsys):
    """GhostNetV2's DFC attention 2×2-pools the 1/32-scale map: below 33 px a side it is empty. The error
    says so with the size to use, found by running the model, instead of a generic 'check --input-size'."""
    import torch.nn as nn

    from mobiledeploy.pipeline import smallest_side

    rc, _, err = _run(["export", "ghostnetv2", "-t", "onnx", "--input-size", "17x40", "--out", str(tmp_path)], capsys)
    assert rc == 2 and "needs each image side ≥ 33: use e.g. --input-size 33x40" in err, err
    pool = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.AvgPool2d(4))  # needs a 4×4 map after the stride-2 conv
    assert smallest_side(pool, torch.zeros(1, 3, 5, 5)) == 7
    assert smallest_side(pool, torch.zeros(1, 3, 5, 5), limit=6) is None


def test_unsupported_op_names_op_and_source_line(tmp_path, capsys):
    class Cummax(torch.nn.Module):
        def forward(self, x):
            return torch.cummax(x, 1)[0]  # no ONNX exporter for this one

    ep = torch.export.export(Cummax(), (torch.randn(1, 3, 8, 8),), strict=False)
    path = tmp_path / "cummax.pt2"
    torch.export.save(ep, str(path))
    rc, _, err = _run(["export", str(path), "--target", "onnx", "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "cannot take op aten::cummax" in err
    assert f"{Path(__file__).name}:" in err and "torch.cummax(x, 1)" in err
    assert _files(tmp_path / "o") == []


def test_a_target_without_a_runtime_is_not_verified(tiny_pt2, tmp_path, capsys):
    if "onnx_unrunnable" not in _TARGETS:
        base = type(get_target("onnx"))
        # An ONNX graph under a suffix no registered runtime claims: the host has nothing to run it on.
        register_target(type("Unrunnable", (base,), {"name": "onnx_unrunnable", "suffix": ".onnxu"}))
    opts = pipeline.ExportOptions(str(tiny_pt2), "onnx_unrunnable", out_dir=tmp_path)
    with pytest.raises(VerificationError, match="no runtime for .onnxu files"):
        pipeline.export(pipeline.ExportOptions(**{**opts.__dict__, "strict": True}))
    assert _files(tmp_path) == []
    out = pipeline.export(opts)
    m = out.manifest
    assert m.verified is False and m.parity is None
    assert m.not_verified_reason == "no runtime for .onnxu files on this host"
    rc, stdout, err = _run(["verify", str(out.artifact)], capsys)
    assert rc == 4 and "not verified" in stdout and "ok" not in stdout.split()


def test_no_verify_says_so(tiny_pt2, tmp_path):
    m = pipeline.export(pipeline.ExportOptions(str(tiny_pt2), "onnx", out_dir=tmp_path, verify=False)).manifest
    assert m.verified is False and m.parity is None and "--no-verify" in m.not_verified_reason


def test_parity_photos_are_real_and_normalised():
    from mobiledeploy.exporters.parity import photo_pixels, samples

    px = photo_pixels("chelsea", (64, 48))
    assert px.shape == (3, 64, 48) and px.min() >= 0 and px.max() <= 255 and px.std() > 20
    batch = samples([[1, 3, 64, 48]], (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), n_random=2)
    assert [s.name for s in batch] == ["random:seed=0#0", "random:seed=0#1", "photo:chelsea", "photo:astronaut",
                                       "photo:coffee"]
    np.testing.assert_allclose(batch[2].arrays[0][0], (px / 255 - 0.5) / 0.25, rtol=1e-6, atol=1e-6)
    # An artifact that takes pixels (normalisation folded in) is fed pixels, the reference the same image normalised.
    pix = samples([[1, 3, 64, 48]], (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), n_random=1,
                  specs=[{"kind": "image", "value_range": [0, 255], "layout": "NHWC"}])
    assert pix[0].feeds[0].shape == (1, 64, 48, 3) and pix[0].feeds[0].max() > 200
    np.testing.assert_allclose(pix[0].arrays[0], (pix[0].feeds[0].transpose(0, 3, 1, 2) / 255 - 0.5) / 0.25,
                               rtol=1e-6, atol=1e-6)


def test_several_targets_share_one_trace_and_one_table(tiny_pt2, tmp_path, capsys):
    rc, out, err = _run(["export", str(tiny_pt2), "--target", "onnx,tflite", "--out", str(tmp_path)], capsys)
    assert rc == 0, err
    assert _files(tmp_path) == ["tiny_dfc.onnx", "tiny_dfc.onnx.json", "tiny_dfc.tflite", "tiny_dfc.tflite.json"]
    assert out.count("verified") == 2 and "XNNPACK runs" in out and "1 partition(s)" in out
    m = mf.read(tmp_path / "tiny_dfc.tflite.json")
    assert m.verified and m.parity.rel_l2 <= 1e-5
    assert m.versions.runtime.name == "ai-edge-litert" and m.versions.converter.name == "litert-torch"
    names = [r["name"] for r in m.rewrites]
    assert "exact_nearest_upsample" in names  # 3→7 in the graph


def test_importing_a_converter_prints_no_third_party_deprecation_noise():
    # coremltools pulls in torchao, whose import makes torch log a pytree deprecation warning that a
    # user of `mobiledeploy export` cannot act on; require() keeps it out of the output. A fresh
    # interpreter, since the warning is logged only on the first import.
    code = "from mobiledeploy.errors import require; require('coremltools', 'coreml')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "register_constant" not in proc.stdout + proc.stderr


def test_an_input_too_large_for_memory_is_refused_before_it_is_allocated(tmp_path, capsys, monkeypatch):
    from mobiledeploy import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 10_000)  # a 1x3x64x64 fp32 input is 49 kB
    rc, _, err = _run(["export", "ghostnet_050", "--target", "onnx", "--input-size", "64", "--out",
                       str(tmp_path / "out")], capsys)
    assert rc == 2 and "largest tensor (the input) is" in err and "use a smaller --input-size" in err
    assert "Traceback" not in err and _files(tmp_path / "out") == []


def test_a_verified_export_whose_activations_cannot_fit_is_refused_up_front(tmp_path, capsys, monkeypatch):
    from mobiledeploy import memory

    # The parity run would need more than this machine has: refused with the way out, nothing written.
    monkeypatch.setattr(memory, "PARITY_HEADROOM", 10**9)
    args = ["export", "ghostnet_050", "--target", "onnx", "--input-size", "64", "--out", str(tmp_path / "out")]
    rc, _, err = _run(args, capsys)
    assert rc == 2 and "largest activation is" in err and "--no-verify" in err
    assert _files(tmp_path / "out") == []
    # Without the parity run the same export goes through.
    rc, _, err = _run([*args, "--no-verify"], capsys)
    assert rc == 0, err


def test_largest_activation_reads_the_programs_fake_values():
    from mobiledeploy import memory

    m = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1))
    prog = torch.export.export(m, (torch.randn(2, 3, 20, 10),), strict=False)
    assert memory.largest_activation(prog) == 2 * 16 * 20 * 10 * 4  # the conv output, fp32


def test_a_size_the_model_cannot_trace_is_one_line_without_torch_log_noise(tmp_path):
    # GhostNetV2's DFC pool leaves an empty map at 16x16. torch logs the failing fake kernel on its
    # own before raising; the user gets our one line with the fix instead. A subprocess, because
    # torch's log handler writes to the real stderr.
    proc = subprocess.run([sys.executable, "-m", "mobiledeploy", "export", "ghostnetv2_100", "--target", "onnx",
                           "--input-size", "16", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: torch.export cannot trace ghostnetv2_100 at input 1x3x16x16")
    assert "needs each image side ≥ 33: use e.g. --input-size 33;" in lines[0]


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", " padded"])
def test_name_must_be_a_plain_file_name(tmp_path, capsys, name):
    rc, _, err = _run(["export", "ghostnet_050", "--target", "onnx", "--name", name, "--out", str(tmp_path / "o")],
                      capsys)
    assert rc == 2 and "--name must be a plain file name" in err and "Traceback" not in err
    assert _files(tmp_path / "o") == [] and _files(tmp_path) in ([], ["o"])


def test_a_model_that_refuses_the_size_gives_its_own_fix(tmp_path, capsys):
    # KAT's position embedding is fixed at 14x14 patches: the model's own one-line error and hint reach
    # the user, not a generic "check --input-size" on top of them.
    rc, _, err = _run(["export", "kat_tiny_patch16_224", "--target", "onnx", "--input-size", "200", "--out",
                       str(tmp_path / "o")], capsys)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1
    assert "cannot export kat_tiny_patch16_224 at input 1x3x200x200: KAT was built for 224×224" in lines[0]
    assert "--input-size 224" in lines[0] and "check --input-size" not in lines[0]


def test_verify_with_no_inputs_to_compare_is_refused(tiny_pt2, tmp_path, capsys):
    out = pipeline.export(pipeline.ExportOptions(str(tiny_pt2), "onnx", out_dir=tmp_path, verify=False))
    rc, _, err = _run(["verify", str(out.artifact), "--random", "0", "--no-photos"], capsys)
    assert rc == 2 and "leaves no input to compare on" in err and "Traceback" not in err
    rc, _, err = _run(["verify", str(out.artifact), "--random", "-3"], capsys)
    assert rc == 2 and "--random must be 0 or more" in err  # it used to run 3 photos and say "verified"


def test_a_manifest_naming_outputs_the_artifact_lacks_is_one_line(tiny_pt2, tmp_path, capsys):
    out = pipeline.export(pipeline.ExportOptions(str(tiny_pt2), "onnx", out_dir=tmp_path, verify=False))
    man = Path(str(out.artifact) + ".json")
    m = json.loads(man.read_text())
    m["outputs"][0]["name"] = "logits_renamed"  # hand-edited: the artifact's output is named otherwise
    man.write_text(json.dumps(m))
    rc, _, err = _run(["verify", str(out.artifact)], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "no output named 'logits_renamed'" in err and "re-export" in err


def test_parity_samples_refuse_to_compare_on_nothing():
    from mobiledeploy.errors import UserError
    from mobiledeploy.exporters.parity import samples

    # A non-image input gets no photos: without random inputs the check would pass vacuously.
    with pytest.raises(UserError, match="no input to compare on"):
        samples([[1, 5]], (0.5, 0.5, 0.5), (0.2, 0.2, 0.2), n_random=0)
