"""Put the measured LoRA look numbers (benchmarks/results/lora_look.json / .md) into the README:
the section's table and the shipped-models row. Run after `train_shipped.sh
shapes_t2i_64_watermark_lora`; the numbers come only from that measurement."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "hwaksan/weights/shapes_t2i_64_watermark_lora/pytorch_lora_weights.safetensors"


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def main() -> None:
    results = json.loads((ROOT / "benchmarks/results/lora_look.json").read_text())
    table = (ROOT / "benchmarks/results/lora_look.md").read_text().strip().splitlines()
    rows = {r["scale"]: r for r in results["rows"]}
    base, one, zero = results["base"], rows[1.0], rows[0.0]
    share = 100 * results["lora_params"] / results["unet_params"]
    section = "\n".join(
        ["Measured by `python benchmarks/lora_look.py` (single-object prompts, against the base "
         "in the same run):", "", *table[2:], "",
         "![look rate against the LoRA scale](benchmarks/results/lora_look.png)", "",
         "![rows: base, then lora_scale 0, 0.25, 0.5, 0.75, 1](docs/lora_look.png)"]
    )  # fmt: skip
    row = " | ".join([
        "| `shapes_t2i_64_watermark_lora`",
        "a rank-4 LoRA for `shapes_t2i_64` (attention projections + the full-resolution ResBlock "
        f"convolutions and `conv_out`): the watermark look; {results['lora_params']:,} "
        f"parameters ({share:.2f}% of the U-Net)",
        f"{WEIGHTS.stat().st_size // 1024} KB",
        f"look in {_pct(one['look'])} of samples at lora_scale 1, {_pct(zero['look'])} at 0 "
        f"(base {_pct(base['look'])}); single-object prompt score {_pct(one['all'])} vs the "
        f"base's {_pct(base['all'])} (`benchmarks/lora_look.py`)",
        "`bash scripts/train_shipped.sh shapes_t2i_64_watermark_lora` |",
    ])  # fmt: skip
    readme = ROOT / "README.md"
    text = readme.read_text()
    anchor = "| `eval/digits_classifier` |"  # the shipped-models table: the row goes above it
    text = text.replace("<!-- LORA_RESULTS -->", section).replace(anchor, f"{row}\n{anchor}", 1)
    readme.write_text(text)


if __name__ == "__main__":
    main()
