"""Examples and exit codes shown at the end of each command's --help (kept here, beside each other,
so that every command documents the same things the same way; README repeats the exit codes)."""

from __future__ import annotations

# "\b" keeps click from re-wrapping the paragraph that follows it (examples are command lines).
EPILOGS: dict[str, str] = {
    "models": """\b
Examples:
  mobiledeploy models
  mobiledeploy models --family ghostnetv2
  mobiledeploy models --json > models.json

\b
Exit codes: 0 listed; 2 bad arguments (e.g. an unknown family).
""",
    "export": """\b
Examples:
  mobiledeploy export ghostnetv2 --target coreml
  mobiledeploy export mobilenetv2_100 -t onnx,tflite,coreml --weights mnv2.pth --input-size 256
  mobiledeploy export timm:lcnet_050 -t tflite --precision int8 --calibration photos/ --bundle
  mobiledeploy export model.pt2 -t onnx --input-size 256x192 --json

\b
Exit codes:
  0    every target exported (verified, or "not verified" when this host has no runtime for it)
  2    bad arguments or input (unknown model or target, bad size, missing file or extra, an artifact
       that exists without --force, a converter failure)
  3    an artifact fails its parity check against PyTorch (or, with --strict, cannot be verified here)
  130  interrupted (Ctrl-C); nothing half-written is left behind
With several targets the others are still exported; the status is the last failed target's.
""",
    "verify": """\b
Examples:
  mobiledeploy verify out/ghostnetv2_100.mlpackage
  mobiledeploy verify out/mobilenetv2_100.tflite --random 8 --json

\b
Exit codes:
  0    the artifact meets its precision's bar against PyTorch
  2    bad arguments or input (no manifest beside the artifact, a folder, a missing extra)
  3    it does not meet the bar, or the artifact or its weights file changed since export
  4    not verified: this host has no runtime for it (install the extra the message names)
  130  interrupted (Ctrl-C)
""",
    "bench": """\b
Examples:
  mobiledeploy bench out/ghostnetv2_100.tflite out/ghostnetv2_100.onnx --threads 1 --runs 100
  mobiledeploy bench out/a.tflite out/b.tflite --sessions 3 --json out/bench.json --plot out/bench.png
  mobiledeploy bench out/m.tflite --device ssh://pi@raspberrypi.local --cores 4-7
  mobiledeploy bench out/m.tflite --device adb://SERIAL --benchmark-binary benchmark_model

\b
Exit codes: 0 measured; 2 bad arguments, an artifact that cannot be loaded or run, a device that
cannot be reached; 130 interrupted (Ctrl-C).
""",
}

GROUP_EPILOG = """\b
Examples:
  mobiledeploy models
  mobiledeploy export ghostnetv2 --target onnx,tflite,coreml
  mobiledeploy verify out/ghostnetv2_100.onnx
  mobiledeploy bench out/ghostnetv2_100.tflite out/ghostnetv2_100.onnx

Run `mobiledeploy COMMAND --help` for a command's options, examples and exit codes.
"""
