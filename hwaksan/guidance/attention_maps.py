"""Recording a U-Net's cross-attention probabilities while it runs: what layout guidance steers
by and what the token grounding loss (TokenCompose) supervises."""

from __future__ import annotations

import torch
from torch import nn

from hwaksan.errors import HwaksanError
from hwaksan.nets.attention import Attention, attention_mask, attention_probs


class RecordingProcessor:
    """An attention processor that runs the layer's own processor unchanged and hands the
    cross-attention probabilities, averaged over heads, to `record(probs (B, N, M), N)`. They
    keep their graph (an energy on them can be differentiated) and are computed in float32."""

    def __init__(self, inner, record) -> None:
        self.inner, self.record = inner, record
        self.kwarg_names = getattr(inner, "kwarg_names", ())

    def __call__(self, attn: Attention, x, context=None, context_mask=None, **kwargs):
        out = self.inner(attn, x, context, context_mask, **kwargs)  # (B, N, query_dim)
        if context is not None:
            q = attn.split_heads(attn.to_q(x)).float()  # (B, h, N, d)
            k = attn.split_heads(attn.to_k(context)).float()  # (B, h, M, d)
            probs = attention_probs(q, k, attention_mask(context_mask))  # (B, h, N, M)
            self.record(probs.mean(1), x.shape[1])
        return out


class DiffusersRecordingProcessor:
    """`RecordingProcessor` for diffusers' `Attention` (an imported Stable Diffusion U-Net): its
    processors take `(attn, hidden_states, encoder_hidden_states, attention_mask, ...)`, and the
    probabilities are softmax(q k^T * attn.scale) over its `attn.heads` heads, as diffusers'
    `get_attention_scores` computes them."""

    def __init__(self, inner, record) -> None:
        self.inner, self.record = inner, record

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 *args, **kwargs):  # fmt: skip
        out = self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, *args,
                         **kwargs)  # fmt: skip
        if encoder_hidden_states is not None and hidden_states.dim() == 3:
            B, N, _ = hidden_states.shape
            q = attn.to_q(hidden_states).float().view(B, N, attn.heads, -1).transpose(1, 2)
            k = attn.to_k(encoder_hidden_states).float()
            k = k.view(B, k.shape[1], attn.heads, -1).transpose(1, 2)  # (B, h, M, d)
            probs = (q @ k.transpose(-1, -2) * attn.scale).softmax(-1)  # (B, h, N, M)
            self.record(probs.mean(1), N)
        return out


def _recording(layer: nn.Module, inner, record):
    """The recording processor for one layer: ours, or diffusers' signature."""
    if isinstance(layer, Attention):
        return RecordingProcessor(inner, record)
    return DiffusersRecordingProcessor(inner, record)


def _is_cross_attention(name: str, module: nn.Module) -> bool:
    """A cross-attention layer, by diffusers' name `attn2`: our `Attention`, or diffusers' own
    (it has heads, a processor slot, and is not self-attention only)."""
    if name.rsplit(".", 1)[-1] != "attn2":
        return False
    if isinstance(module, Attention):
        return True
    return all(hasattr(module, a) for a in ("heads", "scale", "set_processor", "processor"))


class CrossAttentionMaps:
    """Records every cross-attention's probabilities in a U-Net while it runs (a context manager).

    `maps` is a list of (probs (B, H*W, M) averaged over heads, (H, W)), one per cross-attention
    layer (the `Attention` modules named `attn2`, diffusers' name; diffusers' own `Attention` in an
    imported U-Net too), from a recording processor put in each layer's processor slot on entry
    and taken out on exit: the network's weights and
    outputs are untouched. (H, W) is the network input's size scaled down to H*W tokens.
    """

    def __init__(self, unet: nn.Module):
        self.unet = unet
        self.layers = [m for name, m in unet.named_modules() if _is_cross_attention(name, m)]
        if not self.layers:
            raise HwaksanError("layout guidance needs a U-Net with cross-attention (a text model)")
        self.maps: list[tuple[torch.Tensor, tuple[int, int]]] = []
        self._saved: list = []
        self._hook = None
        self._input_hw = (0, 0)

    def __enter__(self) -> CrossAttentionMaps:
        self.maps = []
        self._hook = self.unet.register_forward_pre_hook(self._size)
        self._saved = [layer.processor for layer in self.layers]
        for layer, inner in zip(self.layers, self._saved):
            layer.set_processor(_recording(layer, inner, self._record))
        return self

    def __exit__(self, *exc) -> None:
        for layer, inner in zip(self.layers, self._saved):
            layer.set_processor(inner)
        self._saved = []
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _size(self, module, args) -> None:
        self._input_hw = tuple(args[0].shape[2:])

    def _record(self, probs: torch.Tensor, tokens: int) -> None:
        H0, W0 = self._input_hw
        f = round((H0 * W0 / tokens) ** 0.5)  # the layer's downsampling factor
        self.maps.append((probs, (H0 // f, W0 // f)))  # (B, N, M)
