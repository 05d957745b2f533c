"""The training log: a CSV file (one row per logged step) and a loss-curve PNG drawn from it."""

from __future__ import annotations

import csv
from pathlib import Path


class CSVLog:
    """Append rows of numbers to `path`; on resume, drop rows past the resumed step first."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        self.fields: list[str] | None = None
        if resume_step is not None and path.exists():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
            self._rewrite(rows)
        elif path.exists():
            path.unlink()

    def _rewrite(self, rows: list[dict]) -> None:
        self.fields = list(rows[0]) if rows else None
        with open(self.path, "w", newline="") as f:
            if self.fields:
                writer = csv.DictWriter(f, self.fields)
                writer.writeheader()
                writer.writerows(rows)

    def write(self, row: dict[str, float]) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, self.fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})


def plot_loss(csv_path: Path, png_path: Path) -> bool:
    """Draw loss against step (log scale) if matplotlib is installed; return whether it did."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    if not csv_path.exists():
        return False
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return False
    steps = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, [float(r["loss"]) for r in rows], lw=1)
    ax.set(xlabel="step", ylabel="loss", yscale="log", title="training loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return True
