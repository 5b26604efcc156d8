#!/usr/bin/env bash
# The GPU check in one command; benchmarks/gpu_check.py says what it runs.
#     bash benchmarks/gpu_check.sh            # on a machine with a CUDA GPU: at most 8 minutes
#     bash benchmarks/gpu_check.sh --dry-run  # every step at toy size on the CPU
set -euo pipefail
cd "$(dirname "$0")/.."
# The project's virtual environment where there is one, else the machine's Python.
if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
PYTHONUNBUFFERED=1 exec "$PYTHON" benchmarks/gpu_check.py "$@"
