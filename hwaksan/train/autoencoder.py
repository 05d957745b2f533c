"""The autoencoder recipe: L1 + perceptual reconstruction, KL or VQ terms, and a PatchGAN.

The VQGAN objective (Esser et al. 2021, eqs. 4-7) as LDM trains its first stage (Rombach et al.
2022, appendix G): L_rec = |x - x_hat|_1 + w_p LPIPS(x, x_hat); KL: + kl_weight KL(q || N(0, I))
per pixel; VQ: + the codebook/commitment loss. After `disc_start` steps the generator also pays
lambda * L_G with lambda the adaptive weight (eq. 7), and a second optimizer trains the
discriminator with the hinge loss in the loop's `extra_step` (its state checkpointed with the run).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from hwaksan.nets.autoencoder import AutoencoderBase, VQModel
from hwaksan.nets.discriminator import (
    PatchDiscriminator,
    adaptive_weight,
    hinge_d_loss,
    hinge_g_loss,
)
from hwaksan.train import checkpoint as ckpt
from hwaksan.train.loop import Recipe
from hwaksan.train.runtime import sync_second_net


@dataclass
class AutoencoderLossConfig:
    """Weights of the loss terms and the discriminator's schedule (LDM's defaults where apt)."""

    perceptual_weight: float = 1.0  # 0: L1 only
    kl_weight: float = 1e-6  # KL per pixel (LDM: 1e-6 against a per-pixel reconstruction loss)
    codebook_weight: float = 1.0  # VQ loss
    disc_start: int = 500  # optimizer steps before the GAN terms switch on
    disc_weight: float = 0.5  # multiplies the adaptive weight
    disc_lr: float = 2e-4
    disc_betas: tuple[float, float] = (0.5, 0.9)
    restart_every: int = 25  # VQ: look for dead codes every this many steps (0: never)
    restart_threshold: float = 0.03  # a code is dead below this fraction of the uniform rate

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class AutoencoderRecipe(Recipe):
    """Train `model` (an AutoencoderKL or VQModel) on batches {"image": [B, C, R, R] in [-1, 1]}."""

    def __init__(
        self,
        model: AutoencoderBase,
        discriminator: PatchDiscriminator | None,
        perceptual: nn.Module | None,
        losses: AutoencoderLossConfig | None = None,
        preview: torch.Tensor | None = None,
    ) -> None:
        self.model, self.discriminator, self.perceptual = model, discriminator, perceptual
        self.losses = losses or AutoencoderLossConfig()
        self.is_vq = isinstance(model, VQModel)
        self.preview = preview  # fixed images whose reconstructions each progress grid shows
        self.d_optimizer = None
        if discriminator is not None:
            self.d_optimizer = torch.optim.AdamW(
                discriminator.parameters(), lr=self.losses.disc_lr, betas=self.losses.disc_betas,
                weight_decay=0.0,
            )  # fmt: skip
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None  # (recon, z) of the batch
        self._restart_generator = torch.Generator().manual_seed(0)
        self._d_synced = False  # with many processes: rank 0's discriminator weights taken yet?

    def gan_on(self, step: int) -> bool:
        return self.discriminator is not None and step >= self.losses.disc_start

    def reconstruction_loss(
        self, x: torch.Tensor, recon: torch.Tensor
    ) -> tuple[torch.Tensor, dict]:
        """Mean L1 per pixel plus the weighted perceptual distance (averaged over images)."""
        l1 = (x - recon).abs().mean()
        if self.perceptual is None or self.losses.perceptual_weight == 0:
            return l1, {"l1": float(l1.detach())}
        perceptual = self.perceptual.to(x.device)(x, recon).mean()
        rec = l1 + self.losses.perceptual_weight * perceptual
        return rec, {"l1": float(l1.detach()), "perceptual": float(perceptual.detach())}

    def loss(self, model: nn.Module, batch, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        x = batch["image"]
        logs: dict[str, float] = {}
        if self.is_vq:
            recon, q = model(x)
            z, reg = q.z_q, self.losses.codebook_weight * q.loss
            codes_used = q.indices.unique().numel() / self.model.quantize.num_embeddings
            logs.update(vq_loss=float(q.loss.detach()), perplexity=float(q.perplexity),
                        codes_used=codes_used)  # fmt: skip
        else:
            recon, posterior = model(x)
            z = posterior.mean
            kl = posterior.kl().mean() / x[0].numel()  # KL per pixel
            reg = self.losses.kl_weight * kl
            logs.update(kl=float(kl.detach()))
        rec, parts = self.reconstruction_loss(x, recon)
        loss = rec + reg
        logs.update(parts)
        logs.update(rec=float(rec.detach()), g_loss=0.0, d_weight=0.0)  # GAN columns from step 1
        if self.gan_on(step):
            self.discriminator.requires_grad_(False)  # the AE's backward leaves D's grads alone
            g_loss = hinge_g_loss(self.discriminator(recon))
            self.discriminator.requires_grad_(True)
            weight = self.losses.disc_weight * adaptive_weight(rec, g_loss, self.model.last_layer())
            loss = loss + weight * g_loss
            logs.update(g_loss=float(g_loss.detach()), d_weight=float(weight))
        self._last = (recon.detach(), z.detach())
        return loss, logs

    def extra_step(self, batch, step: int) -> dict[str, float]:
        """The discriminator's hinge step on (real, this step's reconstructions); VQ restarts."""
        logs: dict[str, float] = {"d_loss": 0.0} if self.discriminator is not None else {}
        recon, z = self._last
        if self.gan_on(step):
            x = batch["image"]
            self.discriminator.to(x.device)
            d_loss = hinge_d_loss(self.discriminator(x), self.discriminator(recon.to(x.dtype)))
            self.d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            sync_second_net(self.discriminator, first=not self._d_synced)  # DDP's job, by hand
            self._d_synced = True
            self.d_optimizer.step()
            logs["d_loss"] = float(d_loss.detach())
        if self.is_vq:
            restart = self.losses.restart_every and (step + 1) % self.losses.restart_every == 0
            logs["restarted"] = 0
            if restart:
                quantizer = self.model.quantize
                logs["restarted"] = quantizer.restart_dead_codes(
                    z, self.losses.restart_threshold, self._restart_generator
                )
        return logs

    def extra_state(self) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
        """The discriminator, its optimizer and the restart RNG, for an exact resume."""
        if self.discriminator is None:
            return {}, {}
        opt_tensors, opt_meta = ckpt.optimizer_to_tensors(self.d_optimizer.state_dict())
        tensors = {
            "discriminator": self.discriminator.state_dict(),
            "d_optimizer": opt_tensors,
            "restart_rng": {"state": self._restart_generator.get_state()},
        }
        return tensors, {"d_optimizer": opt_meta}

    def load_extra_state(self, tensors: dict, state: dict) -> None:
        if self.discriminator is None:
            return
        self.discriminator.load_state_dict(tensors["discriminator"])
        self.d_optimizer.load_state_dict(
            ckpt.optimizer_from_tensors(tensors.get("d_optimizer", {}), state["d_optimizer"])
        )
        self._restart_generator.set_state(tensors["restart_rng"]["state"])

    @torch.no_grad()
    def sample_images(self, model: nn.Module, step: int) -> torch.Tensor | None:
        """Originals and their reconstructions, interleaved row by row."""
        if self.preview is None:
            return None
        x = self.preview.to(next(model.parameters()).device)
        recon = model.decode(model.encode_latents(x)).clamp(-1, 1)
        n = len(x) // 2 * 2
        rows = torch.stack([x[:n].view(2, n // 2, *x.shape[1:]), recon[:n].view(2, n // 2,
                            *x.shape[1:])], 1)  # fmt: skip
        return rows.reshape(-1, *x.shape[1:])  # (2n, C, R, R): originals over reconstructions

    def describe(self) -> dict:
        return {
            "kind": "autoencoder",
            "class": type(self.model).__name__,
            "config": self.model.config.to_dict(),
            "discriminator": None
            if self.discriminator is None
            else self.discriminator.config.to_dict(),
            "losses": self.losses.to_dict(),
            "perceptual": self.perceptual is not None,
        }
