"""The vector-quantized autoencoder of VQGAN (Esser et al. 2021), after VQ-VAE (van den Oord et
al. 2017): the encoder's vectors snap to the nearest of K codebook entries.

Loss (van den Oord et al. 2017, eq. 3): ||sg[z_e] - z_q||^2 + beta ||z_e - sg[z_q]||^2; the
decoder sees z_e + sg[z_q - z_e] (straight-through), so gradients reach the encoder as if
quantization were the identity. With `decay` > 0 the codebook is instead a moving average of the
vectors assigned to each code (van den Oord et al. 2017, appendix A.1; Razavi et al. 2019) and
only the commitment term is a loss: Adam moves a code at most ~lr per step, too slow to follow an
encoder whose outputs grow (measured here: VQ loss 13, perplexity 3). Codes unused for a while
are re-initialized to encoder outputs (Dhariwal et al. 2020, Jukebox, sec. 3.3: random restarts).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from .base import AutoencoderBase
from .blocks import Decoder, Encoder
from .config import AutoencoderConfig


@dataclass
class Quantized:
    """What quantization returns: z_q (straight-through), indices, the VQ loss and usage stats."""

    z_q: torch.Tensor  # [B, d, h, w]; forward value = codebook vectors, gradient = identity
    indices: torch.Tensor  # [B, h, w] long
    loss: torch.Tensor  # scalar: codebook + beta * commitment
    perplexity: torch.Tensor  # scalar: exp(entropy of this batch's code histogram)


class VectorQuantizer(nn.Module):
    """Nearest-neighbour lookup in a [K, d] codebook, with usage tracking for dead-code restarts."""

    usage_decay = 0.95  # usage is an EMA over roughly the last 1 / (1 - decay) = 20 batches

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        commitment_cost: float = 0.25,
        decay: float = 0.0,
    ):
        super().__init__()
        self.commitment_cost, self.decay = commitment_cost, decay
        self.embedding = nn.Embedding(num_embeddings, embedding_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / num_embeddings, 1.0 / num_embeddings)
        if decay > 0:  # moving averages of each code's count and vector sum (start at zero)
            self.embedding.weight.requires_grad_(False)
            self.register_buffer("cluster_size", torch.zeros(num_embeddings))
            self.register_buffer("embed_sum", torch.zeros(num_embeddings, embedding_dim))
        # moving average of how often each code is picked (fraction of vectors); starts at 0, so
        # the first restart moves every never-picked code onto the encoder's actual outputs
        self.register_buffer("usage", torch.zeros(num_embeddings))

    @property
    def num_embeddings(self) -> int:
        return self.embedding.num_embeddings

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Indices [N] of the nearest codes to vectors [N, d] (squared Euclidean distance)."""
        codebook = self.embedding.weight  # (K, d)
        distances = (
            flat.square().sum(1, keepdim=True)
            - 2 * flat @ codebook.T
            + codebook.square().sum(1)[None, :]
        )  # (N, K)
        return distances.argmin(1)

    def forward(self, z: torch.Tensor) -> Quantized:
        """z [B, d, h, w] (encoder output) -> Quantized."""
        B, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)  # (N, d), N = B h w
        indices = self.nearest(flat.detach().float())  # (N,)
        z_q = self.embedding(indices).view(B, h, w, d).permute(0, 3, 1, 2)  # (B, d, h, w)
        codebook_loss = (z_q - z.detach()).square().mean()
        commitment_loss = (z - z_q.detach()).square().mean()
        counts = torch.bincount(indices, minlength=self.num_embeddings).float()  # (K,)
        probs = counts / counts.sum()
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
        if self.training:
            with torch.no_grad():
                self.usage.mul_(self.usage_decay).add_(probs, alpha=1 - self.usage_decay)
                if self.decay > 0:
                    self._ema_update(flat.detach().float(), indices, counts)
        loss = self.commitment_cost * commitment_loss
        if self.decay == 0:
            loss = loss + codebook_loss
        return Quantized(
            z_q=z + (z_q - z).detach(),  # straight-through estimator
            indices=indices.view(B, h, w),
            loss=loss,
            perplexity=perplexity,
        )

    def _ema_update(self, flat: torch.Tensor, indices: torch.Tensor, counts: torch.Tensor) -> None:
        """Each picked code moves to the moving average of its assigned vectors [N, d]."""
        sums = torch.zeros_like(self.embed_sum).index_add_(0, indices, flat)  # (K, d)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        live = self.cluster_size > 1e-6  # codes ever picked since their (re)start
        weight = self.embedding.weight.data
        weight[live] = (self.embed_sum[live] / self.cluster_size[live, None]).to(weight.dtype)

    @torch.no_grad()
    def restart_dead_codes(
        self, z: torch.Tensor, threshold: float, generator: torch.Generator | None = None
    ) -> int:
        """Move codes whose usage fell below `threshold` (x the uniform rate 1/K) onto random
        encoder vectors from `z` [B, d, h, w]; returns how many moved."""
        dead = self.usage < threshold / self.num_embeddings  # (K,)
        n = int(dead.sum())
        if n == 0:
            return 0
        flat = z.detach().permute(0, 2, 3, 1).reshape(-1, z.shape[1]).float()  # (N, d)
        pick = torch.randint(len(flat), (n,), generator=generator).to(flat.device)  # CPU draws
        noise = 0.01 * flat.std() * torch.randn(n, flat.shape[1], generator=generator)
        self.embedding.weight.data[dead] = (flat[pick] + noise.to(flat)).to(
            self.embedding.weight.dtype
        )
        self.usage[dead] = 1.0 / self.num_embeddings  # a fresh code gets time to be picked
        if self.decay > 0:  # forget the old averages: the next batch that picks it sets it
            self.cluster_size[dead] = 0.0
            self.embed_sum[dead] = 0.0
        return n


class VQModel(AutoencoderBase):
    """x [B, 3, R, R] in [-1, 1] <-> codes [B, R/f, R/f] of a K-entry, latent_channels-dim book."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.encoder = Encoder(config, config.latent_channels)
        self.quantize = VectorQuantizer(
            config.num_embeddings, config.latent_channels, config.commitment_cost,
            config.codebook_decay,
        )  # fmt: skip
        self.decoder = Decoder(config)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, Quantized]:
        """(continuous latent z_e [B, d, h, w], its quantization)."""
        z = self.encoder(x)
        return z, self.quantize(z)

    def encode_latents(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The continuous pre-quantization latent z_e (LDM runs diffusion on it)."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Quantize z to the codebook first (as LDM does with a diffusion output), then decode."""
        return self.decoder(self.quantize(z).z_q)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes [B, h, w] -> images [B, 3, R, R]."""
        z_q = self.quantize.embedding(indices).permute(0, 3, 1, 2)  # (B, d, h, w)
        return self.decoder(z_q)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Quantized]:
        """(reconstruction, quantization) — the decoder sees the straight-through z_q."""
        _, q = self.encode(x)
        return self.decoder(q.z_q), q
