"""Recording a U-Net's cross-attention probabilities while it runs: what layout guidance steers
by and what the token grounding loss (TokenCompose) supervises."""

from __future__ import annotations

import torch
from torch import nn

from hwaksan.errors import HwaksanError


class CrossAttentionMaps:
    """Records every cross-attention's probabilities in a U-Net while it runs (a context manager).

    `maps` is a list of (probs (B, H*W, M) averaged over heads, (H, W)), one per cross-attention
    layer (the modules named `attn2`, diffusers' name), recomputed from the layer's own inputs by
    forward hooks: the network is not edited, and the probabilities keep their graph, so an energy
    on them can be differentiated. (H, W) is the network input's size scaled down to H*W tokens.
    """

    def __init__(self, unet: nn.Module):
        self.unet = unet
        self.layers = [m for name, m in unet.named_modules() if name.rsplit(".", 1)[-1] == "attn2"]
        if not self.layers:
            raise HwaksanError("layout guidance needs a U-Net with cross-attention (a text model)")
        self.maps: list[tuple[torch.Tensor, tuple[int, int]]] = []
        self._hooks: list = []
        self._input_hw = (0, 0)

    def __enter__(self) -> CrossAttentionMaps:
        self.maps = []
        self._hooks = [self.unet.register_forward_pre_hook(self._size)]
        self._hooks += [layer.register_forward_hook(self._record) for layer in self.layers]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def _size(self, module, args) -> None:
        self._input_hw = tuple(args[0].shape[2:])

    def _record(self, attn, args, output) -> None:
        x, context = args[0], args[1] if len(args) > 1 else None
        if context is None:
            return
        mask = args[2] if len(args) > 2 else None
        q = attn.to_q(x).unflatten(-1, (attn.heads, -1)).transpose(1, 2)  # (B, h, N, d)
        k = attn.to_k(context).unflatten(-1, (attn.heads, -1)).transpose(1, 2)  # (B, h, M, d)
        scores = (q.float() * q.shape[-1] ** -0.5) @ k.float().transpose(-1, -2)  # (B, h, N, M)
        if mask is not None:
            scores = scores.masked_fill(~mask.bool()[:, None, None, :], float("-inf"))
        H0, W0 = self._input_hw
        f = round((H0 * W0 / x.shape[1]) ** 0.5)  # the layer's downsampling factor
        self.maps.append((scores.softmax(-1).mean(1), (H0 // f, W0 // f)))  # (B, N, M)
