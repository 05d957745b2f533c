"""Where benchmark scripts put what they measured: a markdown table and its rows as JSON."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_report(name: str, lines: list[str], rows) -> Path:
    """Print `lines`, then write them to results/<name>.md and `rows` to results/<name>.json."""
    print("\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=1))
    return RESULTS / f"{name}.md"
