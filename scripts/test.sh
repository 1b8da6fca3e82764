#!/usr/bin/env bash
# Set up .venv (scripts/setup.sh) and run the whole test suite; extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TRITON_INTERPRET=1   # Triton kernels run on the CPU in the interpreter here
exec .venv/bin/python -m pytest -q "$@"
