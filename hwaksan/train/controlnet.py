"""Training a ControlNet (Zhang et al. 2023) on a frozen text-to-image model.

The recipe's model is `ControlledUNet` (the locked U-Net + the ControlNet); `trainable` is the
ControlNet alone, so the loop's optimizer, checkpoints and EMA never see the base, whose weights
stay bit-identical. The loss is the base's own (v / eps / x0 target) with the control image as an
extra input; captions are dropped to "" half of the time (sec. 3.3: "we randomly replace 50% text
prompts with empty strings"), so the ControlNet learns to read the control image alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from hwaksan.diffusion.losses import diffusion_loss
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.nets.controlnet import ControlNet
from hwaksan.train.loop import Recipe
from hwaksan.train.text import TextPrompts


class ControlledUNet(nn.Module):
    """model(x_t, t, controlnet_cond, context=...) -> the locked `unet`'s prediction with the
    ControlNet's residuals added to its skips and middle."""

    def __init__(self, unet: nn.Module, controlnet: ControlNet) -> None:
        super().__init__()
        self.unet = unet.eval().requires_grad_(False)  # locked: no parameter gradients
        self.controlnet = controlnet

    def forward(
        self, x, t, controlnet_cond, class_labels=None, context=None, context_mask=None
    ) -> torch.Tensor:
        down, mid = self.controlnet(x, t, controlnet_cond, class_labels, context, context_mask)
        return self.unet(
            x, t, class_labels, context, context_mask,
            down_block_additional_residuals=down, mid_block_additional_residual=mid,
        )  # fmt: skip


class ControlData(Dataset):
    """Scaled latents [N, c, h, w], control maps [N, H, W] (bool) and (scene index, caption)
    pairs: dict(image=latent, caption=, control=[1, H, W] uint8 0/255)."""

    def __init__(
        self, latents: torch.Tensor, controls: torch.Tensor, pairs: Sequence[tuple[int, str]]
    ) -> None:
        self.latents, self.controls, self.pairs = latents, controls, list(pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        index, caption = self.pairs[i]
        control = self.controls[index][None].to(torch.uint8) * 255  # (1, H, W)
        return {"image": self.latents[index], "caption": caption, "control": control}

    @property
    def captions(self) -> list[str]:
        return [c for _, c in self.pairs]


def control_input(control: torch.Tensor) -> torch.Tensor:
    """uint8 control maps (B, 1 or 3, H, W) in 0..255 -> the ControlNet's (B, 3, H, W) in [0, 1]."""
    x = control.float() / 255.0
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


class ControlNetRecipe(Recipe):
    """Train `controlnet` against the locked `unet` on batches of dict(image=scaled latent,
    caption=, control=); `snapshot` (optional) is called with the ControlNet and the step every
    `snapshot_every` optimizer steps (the IoU-against-steps curve reads the snapshots)."""

    def __init__(
        self,
        unet: nn.Module,
        controlnet: ControlNet,
        schedule: NoiseSchedule,
        text_encoder: nn.Module,
        *,
        prediction_type: str,
        captions: Sequence[str] = (),
        cond_drop_prob: float = 0.5,
        snapshot=None,
        snapshot_every: int = 0,
    ) -> None:
        self.model = ControlledUNet(unet, controlnet)
        self.trainable = controlnet
        self.schedule, self.prediction_type = schedule, prediction_type
        self.conditioner = TextPrompts(
            text_encoder, cond_drop_prob=cond_drop_prob, captions=list(captions),
            sample_prompts=[""],
        )  # fmt: skip
        self.snapshot, self.snapshot_every = snapshot, snapshot_every

    def loss(self, model: nn.Module, batch: dict, step: int) -> tuple[torch.Tensor, dict]:
        batch = self.conditioner.drop(batch)  # 50% empty prompts
        device = batch["image"].device
        cond = self.conditioner.cond(batch, device)  # context, context_mask
        cond["controlnet_cond"] = control_input(batch["control"].to(device))  # (B, 3, H, W)
        loss = diffusion_loss(
            model, batch["image"], self.schedule, prediction_type=self.prediction_type, cond=cond
        )
        return loss, {}

    def after_step(self, model: nn.Module, step: int) -> None:
        """A snapshot of the ControlNet every `snapshot_every` steps (step is 0-based)."""
        if (
            self.snapshot is not None
            and self.snapshot_every
            and (step + 1) % self.snapshot_every == 0
        ):
            self.snapshot(self.trainable, step + 1)

    def describe(self) -> dict:
        return {
            "kind": "controlnet",
            "controlnet": self.trainable.config.to_dict(),
            "schedule": self.schedule.to_config(),
            "prediction_type": self.prediction_type,
            "cond_drop_prob": self.conditioner.cond_drop_prob,
        }


def snapshot_folder(out_dir: str | Path, step: int) -> Path:
    """Where the snapshot of step `step` goes: <out>/snapshots/step_000250."""
    return Path(out_dir) / "snapshots" / f"step_{step:06d}"
