"""Fixed-seed outputs of every shipped model, saved or compared: the check that a refactor changed
no behaviour (the seams issue). Same code, same seeds -> the same tensors, to the bit.

    python benchmarks/shipped_outputs.py save before.safetensors       # on the old tree
    python benchmarks/shipped_outputs.py compare before.safetensors    # on the new tree

Each case is one `generate` call (a model, a sampler, its conditions); `compare` prints the largest
absolute difference per case and writes results/shipped_outputs.md. Layout guidance differentiates
through the U-Net, so its case also runs the attention kernel's backward.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import datetime, timezone

import torch
from safetensors.torch import load_file, save_file

import hwaksan as hk

N = 4
PROMPT = "a red circle to the left of a blue square"
RELATION = [("red circle", "left of", "blue square")]

# name -> (model, load kwargs, generate kwargs)
CASES: dict[str, tuple[str, dict, dict]] = {
    "shapes_ddim": ("shapes", {}, dict(sampler="ddim", steps=10)),
    "shapes_dpmpp": ("shapes", {}, dict(sampler="dpmpp_2m", steps=8)),
    "shapes_ddpm": ("shapes", {}, dict(sampler="ddpm", steps=10)),
    "shapes_heun": ("shapes", {}, dict(sampler="heun", steps=5)),
    "shapes_cond_cfg": (
        "shapes_cond",
        {},
        dict(steps=10, class_labels=[0, 5, 9, 13], guidance_scale=3.0),
    ),  # fmt: skip
    "digits_cfg": ("digits", {}, dict(steps=10, class_labels=[3], guidance_scale=2.0)),
    "digits_classifier": (
        "digits",
        dict(classifier="digits_classifier_noisy"),
        dict(steps=10, class_labels=[7], classifier_scale=1.0),
    ),  # fmt: skip
    "digits_classifier_ddpm": (
        "digits",
        dict(classifier="digits_classifier_noisy"),
        dict(sampler="ddpm", steps=10, class_labels=[2], classifier_scale=1.0),
    ),  # fmt: skip
    "shapes_ldm": ("shapes_ldm", {}, dict(steps=10)),
    "shapes_t2i_cfg": (
        "shapes_t2i",
        {},
        dict(steps=10, prompt=PROMPT, guidance_scale=4.0, negative_prompt="a green triangle"),
    ),  # fmt: skip
    "shapes_t2i_64_cfg": ("shapes_t2i_64", {}, dict(steps=10, prompt=PROMPT, guidance_scale=4.0)),
    "shapes_t2i_64_layout": (
        "shapes_t2i_64",
        {},
        dict(steps=10, prompt=PROMPT, guidance_scale=4.0, relations=RELATION),
    ),  # fmt: skip
}


def run_case(name: str) -> torch.Tensor:
    model, load_kwargs, kwargs = CASES[name]
    pipe = hk.load(model, device="cpu", **load_kwargs)
    return pipe.generate(N, seed=0, output_type="pt", **kwargs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["save", "compare"])
    ap.add_argument("file")
    ap.add_argument("--cases", default=",".join(CASES), help="comma list of case names")
    ap.add_argument("--name", default="shipped_outputs", help="results/<name>.md and .json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    names = args.cases.split(",")
    if args.mode == "save":
        outputs = {}
        for name in names:
            start = time.perf_counter()
            outputs[name] = run_case(name).contiguous()
            print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)
        save_file(outputs, args.file)
        return
    from report import write_report

    reference = load_file(args.file)
    lines = ["| case | max abs difference | bit-identical |", "|---|---|---|"]
    rows = []
    for name in names:
        out = run_case(name)
        diff = float((out - reference[name]).abs().max())
        same = torch.equal(out, reference[name])
        rows.append(dict(case=name, max_abs_diff=diff, identical=same))
        lines.append(f"| {name} | {diff:.3g} | {'yes' if same else 'no'} |")
        print(lines[-1], flush=True)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    lines += ["", f"{platform.machine()}, torch {torch.__version__}, {stamp}"]
    kernels = "off" if os.environ.get("HWAKSAN_FUSED_KERNELS") == "0" else "on"
    lines.insert(-1, f"fused kernels {kernels}; reference: {args.file}")
    write_report(args.name, lines, rows)


if __name__ == "__main__":
    main()
