#!/usr/bin/env bash
# Set up .venv and run the main job: list the models, export GhostNetV2 to every target with
# parity checks, then benchmark the artifacts on this host.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
md=.venv/bin/mobiledeploy
out=${OUT_DIR:-out}
$md models
