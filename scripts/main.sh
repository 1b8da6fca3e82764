#!/usr/bin/env bash
# Set up .venv and run the main job: list the models; export the seed models (GhostNetV2, GhostNetV1,
# MobileNetV2) to ONNX, TFLite, Core ML and ExecuTorch, each verified against PyTorch on its runtime;
# re-verify one artifact from its manifest; benchmark the artifacts on this host, interleaved.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
md=.venv/bin/mobiledeploy
out=${OUT_DIR:-out}
$md models
# One trace per model feeds four converters; each artifact is checked against PyTorch on its own
# runtime (Core ML through our reference interpreter off macOS) and the table shows the parity figures.
for model in ghostnetv2_100 ghostnet_100 mobilenetv2_100; do
    $md export "$model" --target onnx,tflite,coreml,executorch --out "$out" --force
done
# Any artifact can be re-checked later against the PyTorch model its manifest names.
$md verify "$out/ghostnetv2_100.tflite"
# Latency on this host: 1 thread, interleaved A B A B …, ratios to the first artifact. Core ML runs
# only on macOS, so its packages are benchmarked there (`mobiledeploy bench out/*.mlpackage`).
$md bench "$out"/ghostnetv2_100.tflite "$out"/ghostnet_100.tflite "$out"/mobilenetv2_100.tflite \
    "$out"/ghostnetv2_100.onnx "$out"/ghostnet_100.onnx "$out"/mobilenetv2_100.onnx \
    "$out"/ghostnetv2_100.pte "$out"/ghostnet_100.pte "$out"/mobilenetv2_100.pte \
    --threads 1 --runs 100 --sessions 3 --json "$out/bench.json" --plot "$out/bench.png"
