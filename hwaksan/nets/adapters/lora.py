"""LoRA (Hu et al. 2021): a frozen linear layer plus a trainable low-rank update,
W x + (alpha / r) B A x, with B = 0 at init so the wrapped network starts unchanged.

`LoRALinear` wraps a `nn.Linear` found by module name (attention's `to_q`, `to_k`, `to_v`,
`to_out`, as peft's `target_modules`); its tensors are `lora_A.weight` (r, in) and
`lora_B.weight` (out, r), peft's names. `Attention` computes q, k, v as one product only while
they are plain `Linear`s, so a wrapped one steps aside on its own.
"""

from __future__ import annotations

import torch
from torch import nn

from hwaksan.errors import HwaksanError

TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out")  # the attention projections


class LoRALinear(nn.Module):
    """`base(x) + scale * lora_B(lora_A(x))`, scale = lora_alpha / r (Hu et al. 2021, eq. 3)."""

    def __init__(self, base: nn.Linear, r: int, lora_alpha: float, adapter_name: str = "default"):
        super().__init__()
        if r < 1:
            raise HwaksanError(f"a LoRA's rank r must be at least 1, not {r}")
        self.base = base
        self.lora_A = nn.Linear(base.in_features, r, bias=False)  # (r, in)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)  # (out, r)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=5**0.5)  # as nn.Linear and peft
        nn.init.zeros_(self.lora_B.weight)  # B = 0: the wrapped layer starts as `base`
        self.lora_A.to(base.weight.device, base.weight.dtype)
        self.lora_B.to(base.weight.device, base.weight.dtype)
        self.r, self.lora_alpha, self.adapter_name = r, lora_alpha, adapter_name

    @property
    def scale(self) -> float:
        return self.lora_alpha / self.r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * self.lora_B(self.lora_A(x))  # (..., out)


def lora_target_names(model: nn.Module, target_modules=TARGET_MODULES) -> list[str]:
    """The names of `model`'s plain linear layers whose last name part is a target."""
    return [
        name
        for name, module in model.named_modules()
        if type(module) is not LoRALinear
        and isinstance(module, nn.Linear)
        and name.rsplit(".", 1)[-1] in target_modules
        and ".lora_" not in f".{name}"
    ]


def inject_lora(
    model: nn.Module, names: list[str], r: int, lora_alpha: float, adapter_name: str = "default"
) -> dict[str, LoRALinear]:
    """Wrap each named `nn.Linear` of `model` in a `LoRALinear`, in place; the wrappers by name.
    A name that is not a plain linear layer of `model` is a one-line HwaksanError."""
    modules = dict(model.named_modules())
    wrapped = {}
    for name in names:
        module = modules.get(name)
        if isinstance(module, LoRALinear):
            raise HwaksanError(
                f"{name} already carries LoRA {module.adapter_name!r}; one LoRA at a time for now"
            )
        if not isinstance(module, nn.Linear):
            raise HwaksanError(f"the model has no linear layer {name!r} for this LoRA")
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        wrapped[name] = LoRALinear(module, r, lora_alpha, adapter_name)
        setattr(parent, child, wrapped[name])
    return wrapped


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every LoRA tensor of `model`: "<module>.lora_A.weight" (r, in), "<module>.lora_B.weight"."""
    return {
        f"{name}.{part}.weight": getattr(module, part).weight.detach()
        for name, module in model.named_modules()
        if isinstance(module, LoRALinear)
        for part in ("lora_A", "lora_B")
    }
