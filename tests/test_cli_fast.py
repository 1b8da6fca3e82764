"""The CLI answers argument errors, --help and `models` without importing torch or a converter (issue 14,
item 16); the precomputed table it uses instead is checked against the real registries here. Times are
measured in benchmarks/cli_startup.py, never asserted: what is asserted is what gets imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "timm", "coremltools", "onnx", "onnxruntime", "onnxscript", "litert_torch", "ai_edge_litert",
         "ai_edge_quantizer", "tensorflow", "mediapipe", "triton")

# Runs the CLI in a fresh interpreter and reports its exit status, stderr and which heavy modules it loaded.
_PROBE = """
import contextlib, io, json, sys
from mobiledeploy.cli import main
err, out = io.StringIO(), io.StringIO()
with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
    try:
        rc = main(json.loads(sys.argv[1]))
    except SystemExit as e:  # click's --help exits through SystemExit(0)
        rc = e.code or 0
heavy = sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)
print(json.dumps({"rc": rc, "stderr": err.getvalue(), "stdout": out.getvalue(), "heavy": heavy}))
"""


def probe(*argv: str) -> dict:
    r = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(argv), json.dumps(HEAVY)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv,message", [
    (("export", "nosuchnet", "-t", "onnx"), "error: unknown model 'nosuchnet'"),
    (("export", "ghostnetv2_10", "-t", "onnx"), "error: unknown model 'ghostnetv2_10' (did you mean ghostnetv2_"),
    (("export", "mobilenetv2_035", "-t", "onnx,tensorrt"), "error: unknown target 'tensorrt'"),
    (("export", "mobilenetv2_035", "-t", "onnx", "--input-size", "0"), "error: bad --input-size '0'"),
    (("export", "mobilenetv2_035", "-t", "onnx", "--input-size", "big"), "error: bad --input-size 'big'"),
    (("export", "mobilenetv2_035", "-t", "onnx", "--precision", "int4"), "error: unknown precision 'int4'"),
    (("export", "mobilenetv2_035"), "error: Missing option '--target'"),
    (("export", "mobilenetv2_035", "-t", "onnx", "--no-such-flag"), "error: No such option '--no-such-flag'"),
    (("export", "mobilenetv2_035", "-t", ","), "error: no target in --target"),
    (("models", "--family", "nosuch"), "error: no models in family 'nosuch'"),
])
def test_argument_errors_are_one_line_before_torch_loads(argv, message):
    r = probe(*argv)
    assert r["rc"] == 2, r
    assert message in r["stderr"] and r["stderr"].count("\n") == 1, r["stderr"]  # one line, no usage dump
    assert r["heavy"] == [], f"{' '.join(argv)} imported {r['heavy']}"


@pytest.mark.parametrize("argv", [("--help",), ("export", "--help"), ("verify", "--help"), ("bench", "--help"),
                                  ("models", "--help"), ("models",), ("models", "--json"), ("--version",)])
def test_help_and_listing_do_not_import_torch(argv):
    r = probe(*argv)
    assert r["rc"] == 0, r
    assert r["heavy"] == [], f"{' '.join(argv)} imported {r['heavy']}"


def test_catalog_equals_the_real_registries():
    """The precomputed table must say what the registries say (regenerate: python -m mobiledeploy.commands._catalog)."""
    from mobiledeploy.commands import _catalog

    table, real = _catalog.load(), json.loads(json.dumps(_catalog.build()))
    assert table["targets"] == real["targets"], "target list changed: regenerate mobiledeploy/data/catalog.json"
    assert table["aliases"] == real["aliases"]
    assert table["layouts"] == real["layouts"]
    assert [r["name"] for r in table["models"]] == [r["name"] for r in real["models"]]
    for mine, theirs in zip(table["models"], real["models"]):
        assert mine == theirs, f"{mine['name']}: regenerate mobiledeploy/data/catalog.json"


def test_models_listing_comes_from_the_table():
    from mobiledeploy.commands import _catalog

    r = probe("models", "--json")
    assert json.loads(r["stdout"]) == _catalog.load()["models"]


@pytest.mark.parametrize("command", ["models", "export", "verify", "bench"])
def test_every_command_help_has_examples_and_exit_codes(command):
    text = probe(command, "--help")["stdout"]
    assert "Examples:" in text and f"mobiledeploy {command}" in text.split("Examples:")[1]
    assert "Exit codes" in text


def test_export_and_verify_document_their_exit_codes():
    export = probe("export", "--help")["stdout"]
    for code in ("0 ", "2 ", "3 ", "130"):
        assert f"  {code}" in export.split("Exit codes:")[1], code
    verify = probe("verify", "--help")["stdout"]
    for code in ("0 ", "2 ", "3 ", "4 ", "130"):
        assert f"  {code}" in verify.split("Exit codes:")[1], code
    assert "[fp32|fp16|int8]" in export  # --precision is a choice list


def test_the_verify_exit_codes_the_help_promises_are_the_ones_it_uses():
    from mobiledeploy.errors import UserError, VerificationError

    # Import by file would need torch for verify's pipeline; the classes' codes are what main() returns.
    assert UserError.exit_code == 2 and VerificationError.exit_code == 3
    from mobiledeploy.commands.verify import NotVerifiedError

    assert NotVerifiedError.exit_code == 4


@pytest.mark.parametrize("n,text", [(0, "0 KB"), (512_000, "512 KB"), (999_499, "999 KB"), (1_000_000, "1.0 MB"),
                                    (6_689_496, "6.7 MB")])
def test_size_column_shows_kb_under_one_mb(n, text):
    from mobiledeploy.commands.export import format_size

    assert format_size(n) == text
