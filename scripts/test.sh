#!/usr/bin/env bash
# Fresh-machine test run: install the CPU torch pin first (a bare `torch` pulls a CUDA build),
# then the package with its test extras, then lint and the unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[test,digits,plot,dist]"
python -m ruff check hwaksan tests benchmarks
python -m pytest -q
