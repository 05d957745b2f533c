"""diffusers' networks behind hwaksan's interfaces: thin wrappers that call them, never copies.

`DiffusersUNet` makes a `UNet2DConditionModel` or `UNet2DModel` a model callable
`model(x_t, t, context=, class_labels=, ...)`, so every sampler, guide and pipeline part runs on
it; `DiffusersAutoencoder` gives an `AutoencoderKL` the latent-diffusion contract
(`encode_latents`, `decode`); `DiffusersCLIPTextEncoder` encodes prompts exactly as Stable
Diffusion's pipeline does. The wrapped module is `.model`, its parameters named as diffusers
names them (a LoRA or attention hook finds `model.down_blocks.0...`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from hwaksan.errors import HwaksanError
from hwaksan.nets.text.base import HFTextEncoder, TextEncoding


class DiffusersUNet(nn.Module):
    """A diffusers U-Net as `model(x_t, t, class_labels=None, context=None, ...) -> prediction`.

    `context` is `encoder_hidden_states`; `context_mask` becomes `encoder_attention_mask` only
    when it masks something (Stable Diffusion attends to every token); ControlNet's residuals,
    `cross_attention_kwargs` and `concat` (extra input channels) pass through.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.conditional = hasattr(model.config, "cross_attention_dim")

    @property
    def exchange_root(self) -> nn.Module:
        """The module whose layer names exchanged files (LoRA) use: diffusers' own U-Net."""
        return self.model

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        class_labels: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        *,
        down_block_additional_residuals: Sequence[torch.Tensor] | None = None,
        mid_block_additional_residual: torch.Tensor | None = None,
        added_embedding: torch.Tensor | None = None,
        cross_attention_kwargs: dict | None = None,
        concat: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, C, H, W), t (B,) -> (B, out_channels, H, W), diffusers' `.sample`."""
        if added_embedding is not None:
            raise HwaksanError("a diffusers U-Net takes no added_embedding (it has no such input)")
        if concat is not None:
            x = torch.cat([x, concat.to(x.dtype)], dim=1)  # (B, C + concat, H, W)
        if not self.conditional:
            if context is not None or down_block_additional_residuals is not None:
                raise HwaksanError("this diffusers UNet2DModel takes no context or residuals")
            return self.model(x, t, class_labels=class_labels).sample  # (B, out, H, W)
        if context is None:
            raise HwaksanError("this diffusers UNet2DConditionModel needs a prompt's context")
        masks = context_mask is not None and not bool(context_mask.all())
        return self.model(
            x, t, encoder_hidden_states=context, class_labels=class_labels,
            encoder_attention_mask=context_mask if masks else None,
            cross_attention_kwargs=cross_attention_kwargs,
            down_block_additional_residuals=down_block_additional_residuals,
            mid_block_additional_residual=mid_block_additional_residual,
        ).sample  # fmt: skip  # (B, out, H, W)


class DiffusersAutoencoder(nn.Module):
    """A diffusers `AutoencoderKL` as a hwaksan latent autoencoder: `encode_latents(x)` (the
    posterior's mode, or a sample with a generator) and `decode(z)`, x in [-1, 1]."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.model.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.model.config.latent_channels)

    def encode_latents(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(B, 3, H, W) -> (B, latent_channels, H/f, W/f), unscaled (as diffusers' latent_dist)."""
        posterior = self.model.encode(x).latent_dist
        return posterior.mode() if generator is None else posterior.sample(generator)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z).sample  # (B, 3, H, W)


class DiffusersCLIPTextEncoder(HFTextEncoder):
    """A Stable Diffusion folder's `text_encoder/` + `tokenizer/`, encoding as its pipeline does:
    padded to the tokenizer's `model_max_length`, the last hidden state after the final
    LayerNorm, CLIP's attention mask only when its config asks (`use_attention_mask`), and every
    position read by the U-Net (the returned mask is all True)."""

    def __init__(self, model_dir: Path, tokenizer_dir: Path, tokenizer_class: str):
        super().__init__()
        import transformers

        cls = getattr(transformers, tokenizer_class, None)
        if cls is None or not tokenizer_class.startswith("CLIPTokenizer"):
            raise HwaksanError(
                f"{tokenizer_dir}: tokenizer class {tokenizer_class!r} is not CLIP's"
            )
        try:
            self.tokenizer = cls.from_pretrained(str(tokenizer_dir))
            self.model = transformers.CLIPTextModel.from_pretrained(
                str(model_dir), use_safetensors=True
            )
        except (OSError, ValueError) as e:
            raise HwaksanError(f"{model_dir.parent} has no loadable CLIP text encoder ({e})") from e
        self.model.eval().requires_grad_(False)
        positions = self.model.config.max_position_embeddings
        self.max_length = min(int(self.tokenizer.model_max_length), positions)
        self.hidden_size = self.model.config.hidden_size

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextEncoding:
        use_mask = bool(getattr(self.model.config, "use_attention_mask", False))
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask.long() if use_mask else None
        )
        every_token = torch.ones_like(attention_mask)  # (B, L) the U-Net reads all positions
        return TextEncoding(out.last_hidden_state, every_token, out.pooler_output)
