#!/usr/bin/env bash
# Fresh-machine main job: install the CPU torch pin first, then hwaksan, then run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[digits,plot]"
hwaksan demo "$@"
