#!/usr/bin/env bash
# Set up .venv and run the main job: list the models, export GhostNetV2 to every target with
# parity checks, then benchmark the artifacts on this host.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
md=.venv/bin/mobiledeploy
out=${OUT_DIR:-out}
$md models
# Export GhostNetV2 to every target (one trace, three converters), each checked against PyTorch on its
# runtime (Core ML through the reference interpreter off macOS); the table shows the parity figures.
$md export ghostnetv2_100 --target onnx,tflite,coreml --out "$out" --force
