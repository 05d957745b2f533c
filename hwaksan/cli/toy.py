"""`hwaksan toy`: every sampler on 2-D data whose exact denoiser is known, measured and drawn.

No training and no weights: the model is the closed-form E[x0 | x_t] of a Gaussian or a
Gaussian mixture, so whatever error is left belongs to the sampler (and to Monte Carlo).
"""

from __future__ import annotations

import math
import time

import click
import torch

from hwaksan.cli.options import SEED, BoundedInt, ImageFile, PositiveInt
from hwaksan.errors import HwaksanError

DATASETS = ("gaussian", "mixture")
SAMPLER_CHOICES = ("ddpm", "ddim", "dpmpp_2m", "euler", "heun", "all")
PANEL = 256  # pixels per panel side
EXTENT = 4.0  # panels show [-EXTENT, EXTENT]^2


def toy_data(name: str):
    """A 2-D Gaussian, or six Gaussians on a ring with weights 1:2:...:6."""
    from hwaksan.sampling.mixture import GaussianMixture

    if name == "gaussian":
        return GaussianMixture.gaussian([1.0, -0.5], [0.5, 1.5])
    angles = torch.arange(6) * (2 * math.pi / 6)
    means = 2.5 * torch.stack([angles.cos(), angles.sin()], 1)
    return GaussianMixture(torch.arange(1.0, 7.0), means, torch.full((6, 2), 0.3))


def moments_report(data, x: torch.Tensor) -> str:
    """One line of mean/std (and mixture-weight) errors of samples x against the true law."""
    x = x.double()
    mean_err = ((x.mean(0) - data.mean) / data.std).abs().max().item()
    std_err = (x.std(0) / data.std - 1).abs().max().item()
    line = f"mean off by {mean_err:5.3f} sd   std off by {100 * std_err:4.1f}%"
    if len(data.weights) > 1:
        labels = data.log_responsibilities(x).argmax(1)
        weights = torch.bincount(labels, minlength=len(data.weights)).double() / len(x)
        weight_err = (weights - data.weights).abs().max().item()
        line += f"   weights off by {weight_err:5.3f}"
    return line


def _density_background(data):
    """The true density as a white-to-blue PIL image (log scale, clipped)."""
    from PIL import Image

    axis = torch.linspace(EXTENT, -EXTENT, PANEL, dtype=torch.float64)  # image rows go down
    ys, xs = torch.meshgrid(axis, -axis, indexing="ij")
    logp = data.log_prob(torch.stack([xs.flatten(), ys.flatten()], 1)).reshape(PANEL, PANEL)
    shade = ((logp - logp.max()) / 8 + 1).clamp(0, 1)  # e^-8 of the peak is white
    rgb = torch.stack([1 - 0.6 * shade, 1 - 0.4 * shade, torch.ones_like(shade)], -1)
    return Image.fromarray((rgb * 255).round().byte().numpy(), "RGB")


def save_panels(data, panels: list[tuple[str, torch.Tensor]], path: str) -> None:
    """One panel per sampler: its samples (red) over the true density (blue)."""
    from PIL import Image, ImageDraw

    background = _density_background(data)
    sheet = Image.new("RGB", (PANEL * len(panels), PANEL), "white")
    for i, (title, x) in enumerate(panels):
        panel = background.copy()
        draw = ImageDraw.Draw(panel)
        pix = ((x.double() / EXTENT + 1) / 2 * (PANEL - 1)).round().long()  # [N, 2] in pixels
        for px, py in pix.tolist():
            if 0 <= px < PANEL and 0 <= py < PANEL:
                draw.rectangle([px, PANEL - 1 - py, px + 1, PANEL - py], fill=(200, 30, 30))
        draw.rectangle([0, 0, PANEL - 1, PANEL - 1], outline=(120, 120, 120))
        draw.text((6, 4), title, fill=(0, 0, 0))
        sheet.paste(panel, (i * PANEL, 0))
    try:
        sheet.save(path)
    except OSError as e:
        raise HwaksanError(f"cannot write {path}: {e.strerror or e}") from e


@click.command("toy")
@click.option("--data", type=click.Choice(DATASETS), default="mixture", show_default=True)
@click.option("--sampler", type=click.Choice(SAMPLER_CHOICES), default="all", show_default=True)
@click.option("--steps", type=PositiveInt(1000), default=50, show_default=True)
@click.option("-n", "n", type=BoundedInt(2, 1_000_000), default=2000, show_default=True,
              help="samples per sampler")  # fmt: skip
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option(
    "--spacing", type=click.Choice(("leading", "trailing", "linspace")), default="leading"
)
@click.option("--karras", is_flag=True, help="Karras sigmas (dpmpp_2m, euler, heun)")
@click.option("--out", type=ImageFile(), default="toy.png", show_default=True,
              help="image to write (.png, .jpg, ...)")  # fmt: skip
def command(data, sampler, steps, n, seed, spacing, karras, out) -> None:
    """Sample 2-D toy data with the exact model; report moment errors; draw the samples."""
    import hwaksan as hk

    schedule = hk.NoiseSchedule.linear(1000)
    if not 1 <= steps <= schedule.num_train_timesteps:
        raise HwaksanError(f"--steps must be between 1 and {schedule.num_train_timesteps}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2-D data: extra threads only contend (measured 3-30x slower)
    try:
        law = toy_data(data)
        click.echo(f"{data}: n={n}, {steps} steps, {spacing} spacing{', Karras' if karras else ''}")
        panels = run_samplers(law, schedule, sampler, steps, n, seed, spacing, karras)
    finally:
        torch.set_num_threads(threads)
    save_panels(law, panels, out)
    click.echo(f"wrote {out}")


def run_samplers(law, schedule, sampler, steps, n, seed, spacing, karras) -> list:
    """Print one line per sampler (and one for exact samples); return the (title, x) panels."""
    import hwaksan as hk
    from hwaksan.sampling import SAMPLERS

    model = law.model(schedule)
    exact = law.sample(n, torch.Generator().manual_seed(seed))
    click.echo(f"{'exact samples':>14}  {moments_report(law, exact)}   (the Monte Carlo floor)")
    panels = [("exact samples", exact)]
    for name in SAMPLERS if sampler == "all" else (sampler,):
        use_karras = karras and name in ("dpmpp_2m", "euler", "heun")
        start = time.perf_counter()
        x = hk.sample(
            model, (n, 2), schedule=schedule, sampler=name, steps=steps,
            timestep_spacing=spacing, use_karras_sigmas=use_karras,
            generator=torch.Generator().manual_seed(seed),
        )  # fmt: skip
        seconds = time.perf_counter() - start
        click.echo(f"{name:>14}  {moments_report(law, x)}   {seconds:.2f}s")
        panels.append((f"{name} {steps} steps", x))
    return panels
