#!/usr/bin/env bash
# The README's main-job command from a fresh clone in a fresh virtual environment, timed end to
# end (clone, install, first kernel compile, 2,000 training steps, sampling, scoring), idle or
# beside one CPU-bound process started a minute before (as any other program on a laptop).
#
#   bash benchmarks/demo_fresh_clone.sh idle|loaded
# Writes benchmarks/results/demo_fresh_clone_<mode>.json (the demo's scores.json plus the wall
# time, the machine and the date).
set -euo pipefail
mode=${1:?idle or loaded}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
hog=""
if [ "$mode" = loaded ]; then
  python3 -c "while True: pass" & hog=$!
  trap 'kill $hog 2>/dev/null || true' EXIT
  sleep 60  # the busy process has been there a while, as on a laptop
fi
start=$(date +%s)
git clone -q "$repo" "$work/hwaksan"
cd "$work/hwaksan"
python3 -m venv .venv
. .venv/bin/activate
export TORCH_EXTENSIONS_DIR="$work/torch_extensions"  # an empty kernel cache
python -m pip install -q torch==2.13.0 && python -m pip install -q -e ".[digits,plot]" && hwaksan demo
end=$(date +%s)
python - "$mode" "$start" "$end" "$repo" <<'PY'
import json, os, platform, sys
from datetime import datetime, timezone
mode, start, end, repo = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
report = json.load(open("runs/demo/scores.json"))
report.update(mode=mode, wall_minutes_total=round((end - start) / 60, 2),
              machine=f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or ''}",
              date=datetime.now(timezone.utc).isoformat(timespec="seconds"))
out = os.path.join(repo, "benchmarks", "results", f"demo_fresh_clone_{mode}.json")
json.dump(report, open(out, "w"), indent=2)
print(f"{mode}: {report['wall_minutes_total']} min in all; wrote {out}")
PY
