"""Negative log-likelihood in bits per dimension: the full variational bound over every t.

As improved-diffusion's `calc_bpd_loop`: one x_t ~ q(x_t | x0) per t, so the sum over t is an
unbiased estimate of the bound (Ho et al. 2020, eq. 5), plus the prior term in closed form.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from hwaksan.diffusion.losses import sample_forward
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.diffusion.vlb import prior_bpd, vlb_terms
from hwaksan.errors import HwaksanError


def _check_8bit(x0: torch.Tensor) -> None:
    levels = (x0.double() + 1) * 127.5
    if not bool(
        ((levels - levels.round()).abs() < 1e-3).all() and (levels.abs() <= 255 + 1e-3).all()
    ):
        raise HwaksanError(
            "discrete=True needs 8-bit images scaled to [-1, 1] (values k / 127.5 - 1); "
            "pass discrete=False for continuous data"
        )


def _tile(value, k: int):
    """A batch repeated k times along dim 0 ([x; x; ...]); non-tensors pass through."""
    if not isinstance(value, torch.Tensor):
        return value
    return value.repeat(k, *([1] * (value.ndim - 1)))


@torch.no_grad()
def nll_bits_per_dim(
    model: Callable[..., torch.Tensor],
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    prediction_type: str = "epsilon",
    variance_type: str = "fixed_large",
    discrete: bool = True,
    cond: dict | None = None,
    batch_of_t: int = 1,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """The bound L_T + sum_t L_{t-1} + L_0 on -log p(x0) per example, in bits/dim.

    discrete=True: x0 is 8-bit data on the 2/255 grid in [-1, 1] (discretized decoder);
    discrete=False: continuous data, L_0 a density, so the total can be negative.
    Returns {"bpd": [B], "prior_bpd": [B], "decoder_bpd": [B], "terms_bpd": [B, T]} where
    terms_bpd[:, t] is L_{t-1} (column 0 is the decoder L_0). `batch_of_t` timesteps share a call.
    """
    if discrete:
        _check_8bit(x0)
    B, T = x0.shape[0], len(schedule)
    terms = torch.zeros(B, T, dtype=x0.dtype, device=x0.device)
    chunks = torch.arange(T - 1, -1, -1, device=x0.device).split(batch_of_t)
    for chunk in tqdm(chunks, desc="nll", disable=not progress):
        k = len(chunk)
        x0_k = _tile(x0, k)  # [k*B, ...]
        t = chunk.repeat_interleave(B)  # [k*B]: chunk[0] for the first B rows, ...
        t, _, x_t = sample_forward(x0_k, schedule, generator, t)
        cond_k = {name: _tile(value, k) for name, value in (cond or {}).items()}
        out = model(x_t, t, **cond_k)
        vb = vlb_terms(out, x0_k, x_t, t, schedule, prediction_type, variance_type, discrete)
        terms[:, chunk] = vb.view(k, B).T
    prior = prior_bpd(x0, schedule)
    return {
        "bpd": prior + terms.sum(dim=1),
        "prior_bpd": prior,
        "decoder_bpd": terms[:, 0],
        "terms_bpd": terms,
    }
