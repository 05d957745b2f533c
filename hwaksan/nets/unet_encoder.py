"""The U-Net's encoder half: embeddings, conv_in, the down path and the middle block.

One module serves the U-Net (which adds the up path), the noise-aware classifier (the "downsampling
trunk", Dhariwal & Nichol 2021, without a middle block) and ControlNet (Zhang et al. 2023: a
trainable copy of this half whose outputs are added to a frozen U-Net's skips and middle). Its
attention layers take processors (`attn_processors`, `set_attn_processor`, diffusers' names).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwaksan.errors import HwaksanError
from hwaksan.nets.attention import Attention, AttentionBlock, AttentionProcessor
from hwaksan.nets.context import ContextEncoder
from hwaksan.nets.embeddings import ClassEmbedding, TimestepEmbedding
from hwaksan.nets.resnet import Downsample, ResBlock
from hwaksan.nets.transformer import SpatialTransformer
from hwaksan.nets.unet_config import UNetConfig


class _Layer(nn.Module):
    """A ResBlock, then (at attention resolutions) self-attention or a SpatialTransformer."""

    def __init__(self, cfg: UNetConfig, c_in: int, c_out: int, embed_dim: int, attend: bool):
        super().__init__()
        self.res = ResBlock(
            c_in, c_out, embed_dim, cfg.dropout, cfg.norm_groups, cfg.use_scale_shift_norm
        )
        self.attn = _attention(cfg, c_out) if attend else None

    def forward(
        self, x, emb, context=None, context_mask=None, cross_attention_kwargs=None
    ) -> torch.Tensor:
        x = self.res(x, emb)  # (B, C_out, H, W)
        if self.attn is not None:
            x = self.attn(x, context, context_mask, cross_attention_kwargs)  # (B, C_out, H, W)
        return x


def _attention(cfg: UNetConfig, channels: int) -> nn.Module:
    if cfg.context_dim is None:
        return AttentionBlock(channels, cfg.num_heads, cfg.norm_groups)
    return SpatialTransformer(
        channels, cfg.num_heads, cfg.context_dim, cfg.transformer_depth, cfg.norm_groups
    )


class EncoderOutput(NamedTuple):
    """What the encoder hands the up path (or a ControlNet its zero convolutions)."""

    h: torch.Tensor  # (B, C_last, H / 2^(L-1), W / 2^(L-1)): after the middle block, if any
    skips: list[torch.Tensor]  # conv_in's output, then every down layer's: the skip connections
    emb: torch.Tensor  # (B, E) time (+ class, + added) embedding, already through SiLU
    cond: dict  # context (re-read), context_mask, cross_attention_kwargs: what layers take


class UNetEncoder(nn.Module):
    """encoder.encode(x_t, t, class_labels, context, context_mask) -> EncoderOutput.

    `mid=False` leaves out the middle ResBlock-attention-ResBlock (the classifier has none).
    """

    def __init__(self, config: UNetConfig, mid: bool = True):
        super().__init__()
        self.config = cfg = config
        c0 = cfg.channels[0]
        self.embed_dim = embed_dim = 4 * c0  # E: what an `added_embedding` must be sized to
        self.time_embedding = TimestepEmbedding(c0, embed_dim)
        self.class_embedding = (
            None if cfg.num_classes is None else ClassEmbedding(cfg.num_classes, embed_dim)
        )
        self.context_encoder = (
            ContextEncoder(cfg.context_dim, cfg.context_layers, cfg.num_heads)
            if cfg.context_layers
            else None
        )
        self.conv_in = nn.Conv2d(cfg.in_channels + cfg.concat_channels, c0, 3, padding=1)

        self.down = nn.ModuleList()
        self.skip_channels, c = [c0], c0  # channels of each skip connection, in order
        for level, (width, res) in enumerate(zip(cfg.channels, cfg.resolutions)):
            for _ in range(cfg.layers_per_block):
                attend = res in cfg.attention_resolutions
                self.down.append(_Layer(cfg, c, width, embed_dim, attend))
                self.skip_channels.append(c := width)
            if level < len(cfg.channels) - 1:
                self.down.append(Downsample(c))
                self.skip_channels.append(c)

        self.mid = (
            nn.ModuleList(
                [_Layer(cfg, c, c, embed_dim, attend=True), _Layer(cfg, c, c, embed_dim, False)]
            )
            if mid
            else None
        )

    def forward(self, *args, **kwargs) -> EncoderOutput:
        """The same as `encode` (a ControlNet or the classifier calls the encoder as a module)."""
        return self.encode(*args, **kwargs)

    def encode(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        class_labels: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        *,
        added_embedding: torch.Tensor | None = None,
        cross_attention_kwargs: dict | None = None,
        concat: torch.Tensor | None = None,
        conv_in_residual: torch.Tensor | None = None,
    ) -> EncoderOutput:
        """x (B, C, H, W), t (B,) long or float -> EncoderOutput; the keyword inputs are the
        attachments' (see `UNet.forward`) and cost nothing when absent. `conv_in_residual`
        (B, C0, H, W) is added to conv_in's output: ControlNet's encoded hint (Zhang 2023)."""
        x = self._input(x, concat)  # (B, C + concat_channels, H, W)
        t = t.reshape(-1).expand(x.shape[0])  # (B,)
        emb = self._embedding(t, class_labels, added_embedding)  # (B, E)
        if context is not None and self.context_encoder is not None:
            context = self.context_encoder(context, context_mask)  # (B, M, context_dim)
        cond = dict(context=context, context_mask=context_mask)
        if cross_attention_kwargs:
            self._check_cross_attention_kwargs(cross_attention_kwargs)
            cond["cross_attention_kwargs"] = cross_attention_kwargs

        h = self.conv_in(x)  # (B, C0, H, W)
        if conv_in_residual is not None:
            h = h + conv_in_residual  # (B, C0, H, W)
        skips = [h]
        for layer in self.down:
            h = layer(h, emb, **cond) if isinstance(layer, _Layer) else layer(h)  # (B, C, h, w)
            skips.append(h)
        for layer in self.mid or ():
            h = layer(h, emb, **cond)  # (B, C_last, H/2^(L-1), W/2^(L-1))
        return EncoderOutput(h, skips, emb, cond)

    def _input(self, x: torch.Tensor, concat: torch.Tensor | None) -> torch.Tensor:
        """x_t with the `concat` channels appended, in the configured memory format."""
        if concat is not None or self.config.concat_channels:
            want = self.config.concat_channels
            if concat is None or concat.shape[1] != want:
                got = "none" if concat is None else concat.shape[1]
                raise HwaksanError(
                    f"this network takes concat= with {want} extra input channels, got {got}"
                )
            x = torch.cat([x, concat.to(x.dtype)], dim=1)  # (B, C + concat_channels, H, W)
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)  # NCHW first conv is a 10x trap
        return x

    def _embedding(self, t, class_labels, added_embedding) -> torch.Tensor:
        """SiLU(time embedding + class embedding + added_embedding): what every ResBlock hears."""
        emb = self.time_embedding(t)  # (B, E)
        if self.class_embedding is not None:
            emb = emb + self.class_embedding(class_labels, t.shape[0])  # (B, E)
        elif class_labels is not None:
            raise ValueError("class_labels given to a UNet built without num_classes")
        if added_embedding is not None:
            emb = emb + added_embedding  # (B, E): LCM's guidance-scale embedding, an identity
        return F.silu(emb)  # (B, E): every ResBlock starts its projection with SiLU

    def _attention_layers(self) -> dict[str, Attention]:
        """Every `Attention` of the image path by module name; the context encoder's text
        self-attention is not one (it reads tokens, not the image)."""
        return {
            name: m
            for name, m in self.named_modules()
            if isinstance(m, Attention) and not name.startswith("context_encoder.")
        }

    @property
    def attn_processors(self) -> dict[str, AttentionProcessor]:
        """Each attention layer's processor, keyed "<module name>.processor" (diffusers' name)."""
        return {f"{name}.processor": m.processor for name, m in self._attention_layers().items()}

    def set_attn_processor(
        self, processor: AttentionProcessor | dict[str, AttentionProcessor]
    ) -> None:
        """One processor for every attention layer, or a dict with a key of `attn_processors` for
        each (diffusers' rule: all layers at once, so none is forgotten)."""
        layers = self._attention_layers()
        if isinstance(processor, dict):
            names = {f"{name}.processor" for name in layers}
            missing, unknown = sorted(names - set(processor)), sorted(set(processor) - names)
            if missing or unknown:
                raise HwaksanError(
                    f"set_attn_processor needs exactly the keys of attn_processors: "
                    f"missing {missing[:3]}, unknown {unknown[:3]}"
                )
        for name, layer in layers.items():
            is_dict = isinstance(processor, dict)
            layer.set_processor(processor[f"{name}.processor"] if is_dict else processor)

    def _check_cross_attention_kwargs(self, kwargs: dict) -> None:
        """Raise HwaksanError for a keyword no processor reads (a typo would else do nothing)."""
        read = {n for p in self.attn_processors.values() for n in getattr(p, "kwarg_names", ())}
        unknown = sorted(set(kwargs) - read)
        if unknown:
            raise HwaksanError(
                f"cross_attention_kwargs {unknown} are read by no attention processor of this "
                f"network (they read {sorted(read)}); set one with set_attn_processor first"
            )
