"""Layout guidance from cross-attention: put a prompt's objects where its relations say, with no
training.

A word's cross-attention map over the image says where the U-Net is drawing it, and the map's
centroid is where that object sits (Epstein et al. 2023, "Diffusion Self-Guidance", sec. 3). For
"A left of B" an energy penalises A's centroid not being left of B's by a margin; during the early,
noisy steps where the layout is decided, each step's x0 prediction moves down the energy's gradient
with respect to x_t (backward guidance, Chen et al. 2023, "Training-free layout control with
cross-attention guidance"). The step is the gradient normalised to unit RMS per image, times
`scale`, times how far the relation is from holding (up to 1): in x0 rather than eps, so that the
near-pure-noise first steps (alpha ~ 0) cannot blow it up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from hwaksan.diffusion import parameterization as param
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.errors import HwaksanError
from hwaksan.guidance.attention_maps import CrossAttentionMaps

# The default strength of `hwaksan generate --relation`, chosen on prompts the prompt score does not
# use (`benchmarks/prompt_score.py --layout-scale`).
LAYOUT_SCALE = 1.0
MARGIN = 0.1  # how far apart (in image widths) two centroids must be for a relation to hold
# relation -> (axis: 0 = x, 1 = y; sign of centroid(A) - centroid(B) when it holds). Image y grows
# downward, so "above" is a smaller y.
RELATIONS = {"left of": (0, -1), "right of": (0, 1), "above": (1, -1), "below": (1, 1)}


@dataclass(frozen=True)
class Relation:
    """ "subject relation object" over token positions of one prompt: the two phrases' tokens."""

    subject: tuple[int, ...]
    relation: str
    object: tuple[int, ...]


def centroid(probs: torch.Tensor, hw: tuple[int, int], tokens: Sequence[int]) -> torch.Tensor:
    """(x, y) in [0, 1] of where `tokens` attend, from one layer's probs (B, H*W, M) -> (B, 2)."""
    H, W = hw
    a = probs[:, :, list(tokens)].sum(-1).reshape(-1, H, W)  # (B, H, W)
    a = a / a.sum((1, 2), keepdim=True).clamp_min(1e-12)
    ys = (torch.arange(H, dtype=a.dtype, device=a.device) + 0.5) / H
    xs = (torch.arange(W, dtype=a.dtype, device=a.device) + 0.5) / W
    return torch.stack([(a.sum(1) * xs).sum(-1), (a.sum(2) * ys).sum(-1)], -1)  # (B, 2)


def relation_energy(
    maps: list[tuple[torch.Tensor, tuple[int, int]]],
    relations: Sequence[Sequence[Relation]],
    margin: float = MARGIN,
) -> torch.Tensor:
    """Per image: sum over its relations of relu(margin - sign * (c_A - c_B)[axis])^2, averaged
    over the cross-attention layers. 0 when every relation holds by `margin`. -> (B,)"""
    B = maps[0][0].shape[0]
    energy = maps[0][0].new_zeros(B)
    for i, rels in enumerate(relations):
        for r in rels:
            axis, sign = RELATIONS[r.relation]
            for probs, hw in maps:
                pair = probs[i : i + 1]
                d = centroid(pair, hw, r.subject) - centroid(pair, hw, r.object)  # (1, 2)
                energy[i] = energy[i] + (margin - sign * d[0, axis]).clamp_min(0) ** 2 / len(maps)
    return energy


def layout_guidance(
    model: Callable[..., torch.Tensor],
    unet: nn.Module,
    relations: Sequence[Sequence[Relation]],
    scale: float,
    *,
    schedule: NoiseSchedule,
    prediction_type: str = "epsilon",
    until: float = 0.3,
    margin: float = MARGIN,
) -> Callable[..., torch.Tensor]:
    """`model` (any wrapped prediction, e.g. classifier-free guided) steered so each image's
    `relations` hold: x0' = x0 - scale * min(1, sqrt(E) / margin) * g / rms(g), g = grad_x E(x_t),
    with E the relation energy of `unet`'s cross-attention on the conditional inputs. Active while
    t >= (1 - until) * T, the first `until` of the trajectory; scale 0 returns `model`."""
    if scale == 0:
        return model
    t_min = (1 - until) * schedule.num_train_timesteps
    recorder = CrossAttentionMaps(unet)

    def guided(x: torch.Tensor, t: torch.Tensor, **cond) -> torch.Tensor:
        pred = model(x, t, **cond)
        if float(t.reshape(-1)[0]) < t_min:
            return pred
        with torch.enable_grad(), recorder:
            x_in = x.detach().requires_grad_(True)
            unet(x_in, t, **cond)
            energy = relation_energy(recorder.maps, relations, margin)  # (B,)
            total = energy.sum()
            (grad,) = torch.autograd.grad(total, x_in) if total.requires_grad else (x * 0,)
        alpha, sigma = schedule.alpha_sigma_at(t, x)
        x0 = param.to_x0(pred, x, alpha, sigma, prediction_type)
        rms = grad.float().pow(2).mean(tuple(range(1, grad.ndim)), keepdim=True).sqrt()
        violation = (energy.detach().sqrt() / margin).clamp(max=1).reshape(rms.shape)
        x0 = x0 - scale * (grad / rms.clamp_min(1e-12) * violation).to(x0.dtype)
        return param.convert(x0, x, alpha, sigma, "sample", prediction_type)

    return guided


def phrase_positions(tokenize, prompt: str, phrases: Sequence[str]) -> list[tuple[int, ...]]:
    """Token positions of each phrase inside `prompt`, under the text encoder's `tokenize`
    (prompts -> ids, mask). A phrase that occurs twice gets its next unused occurrence."""
    ids, mask = tokenize([prompt, *phrases])
    seq = ids[0][mask[0]].tolist()
    taken: set[int] = set()
    out = []
    for phrase, row, m in zip(phrases, ids[1:], mask[1:]):
        words = row[m].tolist()
        found = None
        for cand in (words[1:-1], words[1:], words[:-1], words):  # without <bos>/<eos> first
            starts = [s for s in range(len(seq) - len(cand) + 1)
                      if cand and seq[s : s + len(cand)] == cand and s not in taken]  # fmt: skip
            if starts:
                found = tuple(range(starts[0], starts[0] + len(cand)))
                break
        if found is None:
            raise HwaksanError(f"layout phrase {phrase!r} is not in the prompt {prompt!r}")
        taken.add(found[0])
        out.append(found)
    return out


def parse_relations(
    tokenize, prompt: str, triples: Sequence[tuple[str, str, str]]
) -> list[Relation]:
    """(phrase A, relation, phrase B) triples -> Relations over `prompt`'s token positions."""
    rels = []
    for a, rel, b in triples:
        if rel not in RELATIONS:
            raise HwaksanError(f"unknown relation {rel!r}; use one of {', '.join(RELATIONS)}")
        subject, obj = phrase_positions(tokenize, prompt, (a, b))
        rels.append(Relation(subject, rel, obj))
    return rels
