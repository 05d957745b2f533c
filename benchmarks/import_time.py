"""How long `import hwaksan` takes in a fresh interpreter, and how much of it is torch's.

Each run is a new `python -c` process (nothing cached in memory but the OS's file cache); the
median of `--runs` runs per row, after one warm-up. The optional stacks (diffusers,
transformers, Gradio) must not be imported by `import hwaksan`: the table says which are.

    python benchmarks/import_time.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import write_report  # noqa: E402

HEAVY = ("diffusers", "transformers", "gradio", "accelerate", "matplotlib", "scipy")
PROBE = """import json, sys, time
t = time.perf_counter(); import torch; a = time.perf_counter()
import hwaksan; b = time.perf_counter()
print(json.dumps({"torch": a - t, "hwaksan": b - a, "total": b - t,
                  "heavy": [m for m in %r if m in sys.modules]}))"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7)
    a = p.parse_args()
    runs = []
    for i in range(a.runs + 1):
        out = subprocess.run([sys.executable, "-c", PROBE % (HEAVY,)], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
        if i:  # the first is a warm-up
            runs.append(json.loads(out))
    median = {k: statistics.median(r[k] for r in runs) for k in ("torch", "hwaksan", "total")}
    heavy = sorted({m for r in runs for m in r["heavy"]})
    table = [f"# `import hwaksan` in a fresh interpreter ({platform.machine()}, "
             f"{datetime.now(timezone.utc):%Y-%m-%d}; median of {a.runs} runs)", "",
             "| part | seconds |", "|---|---|",
             f"| `import torch` | {median['torch']:.3f} |",
             f"| `import hwaksan` after torch | {median['hwaksan']:.3f} |",
             f"| both | {median['total']:.3f} |", "",
             f"Optional stacks imported by `import hwaksan`: {', '.join(heavy) or 'none'} "
             f"(checked: {', '.join(HEAVY)})."]  # fmt: skip
    write_report("import_time", table, {"median": median, "heavy": heavy, "runs": runs})


if __name__ == "__main__":
    main()
