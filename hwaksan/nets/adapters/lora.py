"""LoRA (Hu et al. 2021): a frozen linear or convolution layer plus trainable low-rank updates,
W x + sum_a w_a (alpha_a / r_a) B_a A_a x, with B = 0 at init so the wrapped network starts
unchanged.

`LoRALayer` wraps a `nn.Linear` or `nn.Conv2d` (peft's `LoraLayer`, with its names: the wrapped
layer is `base_layer`, adapter a's tensors `lora_A.<a>.weight` (r, in[, k, k]) and
`lora_B.<a>.weight` (out, r[, 1, 1])). Several adapters can sit on one layer; `active` says which
add their update and with what weight (diffusers' `set_adapters(..., adapter_weights)`).
`merge` folds the active updates into the base weight (`fuse_lora`); `unmerge` restores the
weight saved at the merge, bit for bit.
"""

from __future__ import annotations

import torch
from torch import nn

from hwaksan.errors import HwaksanError


class LoRALayer(nn.Module):
    """`base_layer(x) + sum_a weight_a * (lora_alpha_a / r_a) * lora_B_a(lora_A_a(dropout_a(x)))`
    (Hu et al. 2021, eq. 3; the per-adapter weight is diffusers' `adapter_weights`)."""

    def __init__(self, base_layer: nn.Linear | nn.Conv2d):
        super().__init__()
        if not isinstance(base_layer, (nn.Linear, nn.Conv2d)):
            raise HwaksanError(f"LoRA wraps linear and 2-D convolution layers, not {base_layer}")
        self.base_layer = base_layer
        self.lora_A, self.lora_B = nn.ModuleDict(), nn.ModuleDict()
        self.lora_dropout = nn.ModuleDict()
        self.r: dict[str, int] = {}
        self.lora_alpha: dict[str, float] = {}
        self.active: dict[str, float] = {}  # adapter name -> weight of its update
        self.merged: dict[str, float] = {}  # adapters folded into base_layer.weight, by weight
        self._unmerged_weight: torch.Tensor | None = None  # the weight before the first merge

    def __getattr__(self, name: str):
        """The wrapped layer's attributes (`in_features`, `kernel_size`, ...) read through, so
        code written for a plain layer (an IP-Adapter sizing its projections) reads this one."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_layer":
                raise
            return getattr(self.base_layer, name)

    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    def scaling(self, name: str) -> float:
        """alpha / r of one adapter (Hu et al. 2021, sec. 4.1)."""
        return self.lora_alpha[name] / self.r[name]

    def add_adapter(self, name: str, r: int, lora_alpha: float, lora_dropout: float = 0.0):
        """A new adapter `name`: A as peft initializes it (Kaiming uniform), B = 0; active at
        weight 1."""
        if r < 1:
            raise HwaksanError(f"a LoRA's rank r must be at least 1, not {r}")
        if name in self.lora_A:
            raise HwaksanError(f"this layer already carries a LoRA named {name!r}")
        base = self.base_layer
        if isinstance(base, nn.Linear):
            down = nn.Linear(base.in_features, r, bias=False)  # (r, in)
            up = nn.Linear(r, base.out_features, bias=False)  # (out, r)
        else:  # peft's convolution LoRA: A has the base's kernel, B is 1x1
            down = nn.Conv2d(base.in_channels, r, base.kernel_size, base.stride, base.padding,
                             base.dilation, bias=False)  # fmt: skip
            up = nn.Conv2d(r, base.out_channels, 1, bias=False)
        nn.init.kaiming_uniform_(down.weight, a=5**0.5)  # as nn.Linear and peft
        nn.init.zeros_(up.weight)  # B = 0: the wrapped layer starts as `base_layer`
        device, dtype = base.weight.device, base.weight.dtype
        self.lora_A[name], self.lora_B[name] = down.to(device, dtype), up.to(device, dtype)
        self.lora_dropout[name] = nn.Dropout(lora_dropout) if lora_dropout else nn.Identity()
        self.r[name], self.lora_alpha[name] = r, float(lora_alpha)
        self.active[name] = 1.0

    @torch.no_grad()
    def delete_adapter(self, name: str) -> None:
        """Remove adapter `name`. A merged one stays in the weight (diffusers: `fuse_lora`, then
        `unload_lora_weights`, bakes a LoRA in): `unmerge` no longer takes it out."""
        if name in self.merged:
            weight = self.merged.pop(name)
            if self.merged:
                self._unmerged_weight += weight * self.delta_weight(name)
            else:
                self._unmerged_weight = None  # the fused weight, bit for bit, is the base now
        for table in (self.lora_A, self.lora_B, self.lora_dropout):
            del table[name]
        for table in (self.r, self.lora_alpha, self.active):
            table.pop(name, None)

    def delta_weight(self, name: str) -> torch.Tensor:
        """(alpha / r) B A, shaped as the base weight: (out, in) or (out, in, k, k)."""
        A = self.lora_A[name].weight  # (r, in) or (r, in, k, k)
        B = self.lora_B[name].weight  # (out, r) or (out, r, 1, 1)
        if A.ndim == 2:
            delta = B @ A  # (out, in)
        else:
            delta = torch.einsum("or,rikl->oikl", B[:, :, 0, 0], A)  # (out, in, k, k)
        return self.scaling(name) * delta

    def adds_nothing(self) -> bool:
        """True when the output is exactly `base_layer(x)`: every active adapter is merged, at
        weight 0, or has B = 0 with no gradient to take (a fresh LoRA in inference). Attention
        then keeps its fused q/k/v product."""
        return all(self._silent(name) for name in self.active)

    def _silent(self, name: str) -> bool:
        if name in self.merged or self.active[name] == 0:
            return True
        B = self.lora_B[name].weight
        return not (torch.is_grad_enabled() and B.requires_grad) and not B.any()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)  # (..., out) or (B, out, H, W)
        for name, weight in self.active.items():
            if self._silent(name):
                continue
            update = self.lora_B[name](self.lora_A[name](self.lora_dropout[name](x)))
            out = out + (weight * self.scaling(name)) * update
        return out

    @torch.no_grad()
    def merge(self) -> None:
        """Fold every active, unmerged update into `base_layer.weight` (diffusers' `fuse_lora`);
        the weight before the first merge is kept for `unmerge`."""
        if self._unmerged_weight is None:
            self._unmerged_weight = self.base_layer.weight.detach().clone()
        for name, weight in self.active.items():
            if name not in self.merged and weight != 0:
                self.base_layer.weight += weight * self.delta_weight(name)
                self.merged[name] = weight

    @torch.no_grad()
    def unmerge(self) -> None:
        """Restore the base weight saved at the first merge, bit for bit."""
        if self._unmerged_weight is not None:
            self.base_layer.weight.copy_(self._unmerged_weight)
        self._unmerged_weight, self.merged = None, {}

    def extra_repr(self) -> str:
        return ", ".join(f"{n}: r={self.r[n]}, alpha={self.lora_alpha[n]}" for n in self.r)
