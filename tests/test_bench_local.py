"""`mobiledeploy bench` on this host with the real runtimes (onnxruntime, LiteRT, PyTorch eager)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

from bench_support import tiny_net
from mobiledeploy.cli import main
from mobiledeploy.devicebench.protocol import Protocol, measure
from mobiledeploy.devicebench.ssh import bundle

FAST = ["--runs", "5", "--warmup", "1"]


def _one_line_error(capsys, argv: list[str]) -> str:
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_interleaved_onnx_vs_tflite_table_json_plot(artifacts, tmp_path, capsys):
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    rc = main(["bench", str(artifacts["onnx"]), str(artifacts["tflite"]), *FAST,
               "--json", str(out_json), "--plot", str(out_png)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "tiny.onnx" in captured.out and "tiny.tflite" in captured.out and "1.00×" in captured.out
    run = json.loads(out_json.read_text())
    assert run["schema"] == "mobiledeploy.bench-run/1"
    assert run["protocol"]["interleaved"] is True and run["protocol"]["threads"] == 1
    assert run["protocol"]["command"].startswith("mobiledeploy bench ")
    onnx_r, tfl_r = run["results"]
    for r, path in ((onnx_r, artifacts["onnx"]), (tfl_r, artifacts["tflite"])):
        assert r["schema"] == "mobiledeploy.bench/1"
        assert r["artifact"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        lat = r["latency_ms"]
        assert lat["count"] == 5 and len(lat["raw"]) == 5 and lat["warmup_count"] == 1
        assert lat["min"] <= lat["median"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert lat["init"] > 0 and lat["first"] > 0
        assert r["memory_mb"]["process_peak_rss"] > 0
        assert r["device"]["cores_used"] and "before" in r["device"]["temperatures_c"]
        assert r["artifact"]["inputs"][0]["shape"] == [1, 3, 32, 32]
    assert onnx_r["runtime"]["name"] == "onnxruntime" and onnx_r["runtime"]["version"]
    assert tfl_r["runtime"]["name"] == "litert" and tfl_r["runtime"]["threads"] == 1
    # The tiny net is fully delegated to XNNPACK: one partition holding every node.
    assert tfl_r["runtime"]["partitions"] == 1
    assert tfl_r["runtime"]["delegated_nodes"] == tfl_r["runtime"]["total_nodes"] > 0
    assert onnx_r["ratio_to_first"] == 1.0
    assert tfl_r["ratio_to_first"] == pytest.approx(tfl_r["latency_ms"]["median"] / onnx_r["latency_ms"]["median"])
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.png"]  # no temp files left behind


def test_partially_delegated_tflite_counts_partitions(tmp_path):
    """A model with an op XNNPACK lacks (nearest resize at an odd scale) splits into several partitions."""
    import litert_torch
    import torch

    class Gate(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.b = torch.nn.Conv2d(4, 4, 1)

        def forward(self, x):
            y = self.a(x)
            g = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(y, 2), size=(7, 7), mode="nearest")
            return self.b(y * torch.sigmoid(g))

    path = tmp_path / "gate.tflite"
    litert_torch.convert(Gate().eval(), (torch.randn(1, 3, 7, 7),)).export(str(path))
    run = measure([str(path)], "auto", Protocol(runs=2, warmup=0))
    rt = run["results"][0]["runtime"]
    assert rt["partitions"] >= 2
    assert 0 < rt["delegated_nodes"] < rt["total_nodes"]


def test_torch_reference_by_model_name_and_pt2(artifacts, tmp_path):
    run = measure(["mobilenetv2_035", str(artifacts["pt2"])], "auto", Protocol(runs=3, warmup=1))
    name_r, pt2_r = run["results"]
    assert name_r["runtime"]["name"] == pt2_r["runtime"]["name"] == "torch"
    assert name_r["artifact"]["inputs"][0]["shape"] == [1, 3, 224, 224]
    assert pt2_r["artifact"]["inputs"][0]["shape"] == [1, 3, 32, 32]
    assert name_r["artifact"]["sha256"] is None  # a model name is not a file
    assert all(r["latency_ms"]["count"] == 3 for r in run["results"])


def test_profile_ops_onnxruntime_and_torch_and_honest_litert(artifacts):
    run = measure([str(artifacts["onnx"]), str(artifacts["pt2"]), str(artifacts["tflite"])], "auto",
                  Protocol(runs=2, warmup=1, profile_ops=True, profile_runs=3))
    onnx_ops, torch_ops, tfl_ops = (r["ops"] for r in run["results"])
    for ops in (onnx_ops, torch_ops):
        assert ops["available"] and ops["runs"] == 3
        kinds = {row["kind"] for row in ops["table"]}
        assert "conv" in kinds and "matmul / linear" in kinds
        assert sum(row["percent"] for row in ops["table"]) == pytest.approx(100.0)
    conv_nodes = sum(row["count"] for row in onnx_ops["table"] if row["kind"] == "conv")
    assert conv_nodes == 3  # the tiny net has three convolutions, each run once per call
    assert tfl_ops["available"] is False and "benchmark_model" in tfl_ops["reason"]


def test_manifest_input_shapes_are_used(tmp_path):
    """A dynamic-size ONNX gets its input shape from the `<artifact>.json` manifest beside it."""
    import torch

    net = tiny_net()
    path = tmp_path / "dyn.onnx"
    h, w = torch.export.Dim("h", min=8, max=512), torch.export.Dim("w", min=8, max=512)
    torch.onnx.export(net, (torch.randn(1, 3, 32, 32),), str(path), dynamo=True, verbose=False,
                      dynamic_shapes={"input": {2: h, 3: w}}, input_names=["input"])
    manifest = tmp_path / "dyn.onnx.json"
    manifest.write_text(json.dumps({"schema": "mobiledeploy.manifest/1",
                                    "inputs": [{"name": "input", "shape": [1, 3, 41, 37], "dtype": "float32"}]}))
    r = measure([str(path)], "auto", Protocol(runs=2, warmup=0))["results"][0]
    assert r["artifact"]["manifest"] == str(manifest)
    assert r["artifact"]["inputs"][0]["shape"] == [1, 3, 41, 37]


def test_pinning_to_one_core_is_recorded_and_undone(artifacts):
    before = os.sched_getaffinity(0)
    run = measure([str(artifacts["onnx"])], "auto", Protocol(runs=2, warmup=0, cores=[0]))
    assert run["device"]["cores_used"] == [0]
    assert run["protocol"]["cores"] == [0]
    assert os.sched_getaffinity(0) == before


def test_more_threads_than_usable_cores_is_said_and_recorded(artifacts, capsys):
    """Oversubscribed threads time contention, not the model: the run says so (stderr and JSON), and a
    run within its cores carries no such note."""
    rc = main(["bench", str(artifacts["onnx"]), "--threads", "2", "--cores", "0", "--runs", "2", "--warmup", "0"])
    err = capsys.readouterr().err
    assert rc == 0 and "note: --threads 2 is more than the 1 CPU(s) this run could use (0)" in err
    run = measure([str(artifacts["onnx"])], "auto", Protocol(runs=2, warmup=0, threads=2, cores=[0]))
    assert len(run["notes"]) == 1 and "contention" in run["notes"][0]
    assert measure([str(artifacts["onnx"])], "auto", Protocol(runs=2, warmup=0, threads=1, cores=[0]))["notes"] == []


def test_arm_optimised_ort_timed_on_x86_is_said(tmp_path):
    """An .ort optimised for ARM runs ~2× slower on x86 than its .onnx: a host timing of it gets a note."""
    from mobiledeploy.devicebench.protocol import caveats

    ort = tmp_path / "m.ort"
    proto = Protocol(runs=1)
    x86, arm = {"machine": "x86_64", "cores_used": [0]}, {"machine": "aarch64", "cores_used": [0]}
    assert any("m.ort has no manifest" in n and "if ARM" in n for n in caveats(proto, x86, [str(ort)]))
    assert caveats(proto, arm, [str(ort)]) == [] and caveats(proto, x86, [str(tmp_path / "m.onnx")]) == []
    (tmp_path / "m.ort.json").write_text(json.dumps({"target_info": {"ort": {"target_platform": "arm"}}}))
    assert any("m.ort was optimised for ARM" in n for n in caveats(proto, x86, [str(ort)]))
    (tmp_path / "m.ort.json").write_text(json.dumps({"target_info": {"ort": {"target_platform": "amd64"}}}))
    assert caveats(proto, x86, [str(ort)]) == []  # optimised for this kind of host: nothing to say


def test_bad_input_one_line_errors(artifacts, tmp_path, capsys):
    err = _one_line_error(capsys, ["bench", str(tmp_path / "missing.onnx")])
    assert "artifact not found" in err
    err = _one_line_error(capsys, ["bench", str(artifacts["tflite"]), "--runtime", "onnxruntime"])
    assert "cannot run 'tiny.tflite'" in err and "--runtime litert" in err
    err = _one_line_error(capsys, ["bench", str(artifacts["onnx"]), "--runtime", "torch"])
    assert "cannot run" in err
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"this is not a model")
    err = _one_line_error(capsys, ["bench", str(corrupt)])
    assert "onnxruntime could not load" in err
    mlpackage = tmp_path / "m.mlpackage"
    mlpackage.mkdir()
    if sys.platform != "darwin":
        err = _one_line_error(capsys, ["bench", str(mlpackage)])
        assert "Core ML runs only on macOS" in err
    err = _one_line_error(capsys, ["bench", str(artifacts["onnx"]), "--cores", "999"])
    assert "--cores" in err
    err = _one_line_error(capsys, ["bench", str(artifacts["onnx"]), "--cores", "x"])
    assert "bad --cores" in err
    err = _one_line_error(capsys, ["bench", str(artifacts["onnx"]), "--runs", "0"])
    assert "--runs" in err
    err = _one_line_error(capsys, ["bench", str(artifacts["onnx"]), "--seed", "-5"])
    assert "--seed must be 0 or more" in err  # was reported as "onnxruntime could not load" the artifact
    err = _one_line_error(capsys, ["bench", str(artifacts["onnx"]), "--device", "ftp://x"])
    assert "unknown --device" in err
    unknown = tmp_path / "model.bin"
    unknown.write_bytes(b"x")
    err = _one_line_error(capsys, ["bench", str(unknown)])
    assert "no runtime for '.bin'" in err


def test_sessions_pool_several_loads_of_each_artifact(artifacts, capsys):
    # Each artifact is loaded 3 times; the loads are rotated and their samples pooled (--runs in all).
    rc = main(["bench", str(artifacts["onnx"]), str(artifacts["tflite"]), "--runs", "6", "--warmup", "1",
               "--sessions", "3", "--json", "-"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    run = json.loads(captured.out)
    assert run["protocol"]["sessions"] == 3 and "--sessions 3" in run["protocol"]["command"]
    assert [r["label"] for r in run["results"]] == ["tiny.onnx", "tiny.tflite"]
    for r in run["results"]:
        lat = r["latency_ms"]
        assert lat["count"] == 6 and lat["warmup_count"] == 3  # 2 counted runs and 1 warm-up per load
        assert len(lat["session_medians"]) == 3 and all(m > 0 for m in lat["session_medians"])
        assert min(lat["session_medians"]) <= lat["median"] <= max(lat["session_medians"])
    rc = main(["bench", str(artifacts["onnx"]), "--runs", "4", "--warmup", "0", "--sessions", "2"])
    out = capsys.readouterr().out
    assert rc == 0 and "2 loads each, pooled" in out and "loads of the same artifact differed by up to" in out
    err = _one_line_error(capsys, ["bench", str(artifacts["onnx"]), "--sessions", "0"])
    assert "--sessions must be at least 1" in err
    err = _one_line_error(capsys, ["bench", str(artifacts["tflite"]), "--sessions", "2", "--device", "adb://X"])
    assert "--sessions is for the host and ssh://" in err


def test_json_to_stdout(artifacts, capsys):
    rc = main(["bench", str(artifacts["onnx"]), "--runs", "2", "--warmup", "0", "--json", "-"])
    out = capsys.readouterr().out
    assert rc == 0
    assert json.loads(out)["results"][0]["latency_ms"]["count"] == 2


def test_litert_delegate_chatter_is_dropped_and_other_native_lines_kept(artifacts, tmp_path):
    """LiteRT's C++ "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." went to every bench's stderr;
    the filter drops that line only (a subprocess: the line is written to the real fd 2, once per process)."""
    code = (
        "import os, sys\n"
        "from mobiledeploy.errors import quiet_native_stderr\n"
        "from mobiledeploy.devicebench.runners import runner_for\n"
        f"runner_for({str(artifacts['tflite'])!r}, 'auto')({str(artifacts['tflite'])!r}, 1)\n"
        "with quiet_native_stderr('NOISE'):\n"
        "    os.write(2, b'NOISE dropped\\nkept line\\n')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "XNNPACK delegate" not in proc.stderr and "NOISE" not in proc.stderr
    assert proc.stderr.splitlines() == ["kept line"]


def test_agent_runs_standalone_without_click_rich_torch(artifacts, tmp_path):
    """The files shipped to a board import nothing but numpy, the runtime and the standard library."""
    payload, remote = bundle([str(artifacts["onnx"])])
    with tarfile.open(fileobj=io.BytesIO(payload)) as tar:
        tar.extractall(tmp_path, filter="data")
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('click', 'rich', 'torch', 'matplotlib'):\n"
        "            raise ImportError('blocked on the board: ' + name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Block())\n"
        "import runpy\n"
        "sys.argv = ['agent'] + sys.argv[1:]\n"
        "runpy.run_module('mobiledeploy.devicebench.agent', run_name='__main__')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "pkg"))
    proc = subprocess.run([sys.executable, "-c", blocker, "--runs", "2", "--warmup", "0", *remote],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    from mobiledeploy.devicebench.agent import extract

    result = extract(proc.stdout)
    assert result is not None
    assert result["agent"]["file"].startswith(str(tmp_path / "pkg"))  # the shipped copy ran, not the install
    assert result["results"][0]["latency_ms"]["count"] == 2
    assert (tmp_path / "a0" / "tiny.onnx.data").is_file()  # external weights travelled with the model


def test_agent_files_parse_as_python_3_9():
    """Boards run older Pythons (Raspberry Pi OS 11, JetPack 5): the shipped files must be 3.9 syntax."""
    import ast

    from mobiledeploy.devicebench.ssh import _pkg_files

    for name, data in _pkg_files().items():
        ast.parse(data.decode(), filename=name, feature_version=(3, 9))


def test_unwritable_json_or_plot_path_fails_before_measuring(artifacts, tmp_path, capsys, monkeypatch):
    import mobiledeploy.devicebench.protocol as protocol

    def never(*a, **k):
        raise AssertionError("measured before the output paths were checked")

    monkeypatch.setattr(protocol, "measure", never)
    err = _one_line_error(capsys, ["bench", str(artifacts["onnx"]), "--json", "/proc/run.json"])
    assert "cannot write --json /proc/run.json" in err
    err = _one_line_error(capsys, ["bench", str(artifacts["onnx"]), "--json", str(tmp_path)])
    assert "is a folder" in err
    err = _one_line_error(capsys, ["bench", str(artifacts["onnx"]), "--plot", str(tmp_path / "no" / "p.png")])
    assert "folder does not exist" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # the writability probe leaves nothing behind


def test_the_runtime_import_is_outside_a_loads_time_and_memory(monkeypatch):
    """The runtime is imported before the load's clock and memory baseline start (ExecuTorch's import took
    4.4 s and ~0.9 GB, all charged to the first .pte of a bench before)."""
    from mobiledeploy.devicebench import protocol
    from mobiledeploy.devicebench.runtime import Runner, TensorSpec

    events: list[str] = []

    class Probe(Runner):
        name = "probe"

        @classmethod
        def load_runtime(cls) -> None:
            events.append("import")

        def __init__(self, artifact: str, threads: int) -> None:
            super().__init__(artifact, threads)
            events.append("load")

        def input_specs(self) -> list[TensorSpec]:
            return [TensorSpec("x", [1, 3], "float32")]

        output_specs = input_specs

        def prepare(self, inputs):
            return lambda: [inputs["x"]]

    monkeypatch.setattr(protocol, "runner_for", lambda artifact, runtime: Probe)
    monkeypatch.setattr(protocol, "rss_mb", lambda: events.append("memory baseline") or 0.0)
    protocol._load("nothing.probe", "probe", Protocol(), "probe")
    assert events[:3] == ["import", "memory baseline", "load"]


def test_executorch_runner_imports_its_runtime_up_front():
    code = ("import sys\nfrom mobiledeploy.devicebench.executorch_runner import ExecuTorchRunner as R\n"
            "assert 'executorch.runtime' not in sys.modules\nR.load_runtime()\n"
            "print('executorch.runtime' in sys.modules, 'executorch.extension.pybindings.portable_lib' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True", "True"]
