"""Our pixel `UNet` as diffusers' `UNet2DModel`: the config that builds the same network, and the
name of each weight there.

The two are the same network, block for block (Ho et al. 2020's U-Net with ADM's options):
sinusoidal [cos, sin] time features (`flip_sin_to_cos=True`, `freq_shift=0`) through a two-layer
MLP of width 4 x channels[0]; a `ResnetBlock2D` per `ResBlock` ("scale_shift" is ADM's adaptive
GroupNorm, "default" adds the embedding); one `AttnDownBlock2D` / `DownBlock2D` per level with a
strided 3x3 conv (padding 1) between levels; a middle of resnet-attention-resnet with its own
GroupNorm (`attn_norm_num_groups`); up blocks of layers_per_block + 1 resnets over the
concatenated skips, nearest upsampling then a 3x3 conv. What does not map: cross-attention (a
text-to-image U-Net), extra input channels, a learned variance, and different head widths at
different levels (diffusers has one `attention_head_dim`).
"""

from __future__ import annotations

from hwaksan.errors import HwaksanError
from hwaksan.nets.unet_config import UNetConfig

RESNET = {"emb_proj.": "time_emb_proj.", "skip.": "conv_shortcut."}  # the rest keep their names
ATTENTION = {"norm.": "group_norm.", "attn.to_out.": "to_out.0.", "attn.": ""}


def unet2d_config(cfg: UNetConfig) -> dict:
    """The `UNet2DModel` config of the same network, or a HwaksanError naming what does not map."""
    _check_maps(cfg)
    attends = [res in cfg.attention_resolutions for res in cfg.resolutions]
    return dict(
        sample_size=cfg.resolution, in_channels=cfg.in_channels, out_channels=cfg.out_channels,
        down_block_types=["AttnDownBlock2D" if a else "DownBlock2D" for a in attends],
        up_block_types=["AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attends)],
        block_out_channels=list(cfg.channels), layers_per_block=cfg.layers_per_block,
        attention_head_dim=_head_dim(cfg), norm_num_groups=cfg.norm_groups,
        attn_norm_num_groups=cfg.norm_groups, norm_eps=1e-5, dropout=cfg.dropout,
        resnet_time_scale_shift="scale_shift" if cfg.use_scale_shift_norm else "default",
        flip_sin_to_cos=True, freq_shift=0, downsample_padding=1, act_fn="silu",
        time_embedding_type="positional", center_input_sample=False, add_attention=True,
        num_class_embeds=None if cfg.num_classes is None else cfg.num_classes + 1,
    )  # fmt: skip


def _check_maps(cfg: UNetConfig) -> None:
    """One line for the first part of the U-Net that UNet2DModel cannot express."""
    problems = [
        (cfg.context_dim is not None, "its cross-attention (a text-to-image U-Net)"),
        (cfg.concat_channels > 0, f"its {cfg.concat_channels} concatenated input channels"),
        (cfg.learn_sigma, "its learned variance output"),
    ]
    for bad, what in problems:
        if bad:
            raise HwaksanError(f"the U-Net does not map onto diffusers' UNet2DModel: {what}")


def _head_dim(cfg: UNetConfig) -> int | None:
    """diffusers' one `attention_head_dim` (None: one head per layer), if ours has one width."""
    widths = {w for w, r in zip(cfg.channels, cfg.resolutions) if r in cfg.attention_resolutions}
    widths.add(cfg.channels[-1])  # the middle block always attends
    if cfg.num_heads == 1:
        return None
    dims = sorted({w // cfg.num_heads for w in widths})
    if len(dims) > 1:
        raise HwaksanError(
            f"the U-Net does not map onto diffusers' UNet2DModel: its {cfg.num_heads} attention "
            f"heads are {dims} wide at channels {sorted(widths)}; UNet2DModel has one head width"
        )
    return dims[0]


def unet2d_names(cfg: UNetConfig) -> dict[str, str]:
    """Our module prefix -> UNet2DModel's, for every block."""
    names = {"time_embedding.": "time_embedding.", "conv_in.": "conv_in.",
             "norm_out.": "conv_norm_out.", "conv_out.": "conv_out.",
             "class_embedding.embedding.": "class_embedding."}  # fmt: skip
    levels, i = len(cfg.channels), 0
    for level in range(levels):
        for j in range(cfg.layers_per_block):
            names[f"down.{i}.res."] = f"down_blocks.{level}.resnets.{j}."
            names[f"down.{i}.attn."] = f"down_blocks.{level}.attentions.{j}."
            i += 1
        if level < levels - 1:
            names[f"down.{i}.conv."] = f"down_blocks.{level}.downsamplers.0.conv."
            i += 1
    names.update({"mid.0.res.": "mid_block.resnets.0.", "mid.0.attn.": "mid_block.attentions.0.",
                  "mid.1.res.": "mid_block.resnets.1."})  # fmt: skip
    i = 0
    for block, level in enumerate(reversed(range(levels))):
        for j in range(cfg.layers_per_block + 1):
            names[f"up.{i}.res."] = f"up_blocks.{block}.resnets.{j}."
            names[f"up.{i}.attn."] = f"up_blocks.{block}.attentions.{j}."
            i += 1
        if level > 0:
            names[f"up.{i}.conv."] = f"up_blocks.{block}.upsamplers.0.conv."
            i += 1
    return names


def rename(key: str, names: dict[str, str]) -> str:
    """Our state-dict key under diffusers' names: the block prefix, then the leaf's own rename."""
    prefix = max((p for p in names if key.startswith(p)), key=len, default=None)
    if prefix is None:
        raise HwaksanError(f"no diffusers name for weight {key!r}")
    rest = key[len(prefix) :]
    leaves = ATTENTION if "attentions." in names[prefix] else RESNET
    for ours, theirs in leaves.items():
        if rest.startswith(ours):
            rest = theirs + rest[len(ours) :]
            break
    return names[prefix] + rest


def autoencoder_kl_config(cfg, scaling_factor: float) -> dict:
    """diffusers' `AutoencoderKL` config of our KL autoencoder (no quant convs: ours has none)."""
    levels = len(cfg.channels)
    return dict(
        in_channels=cfg.in_channels, out_channels=cfg.in_channels,
        down_block_types=["DownEncoderBlock2D"] * levels,
        up_block_types=["UpDecoderBlock2D"] * levels, block_out_channels=list(cfg.channels),
        layers_per_block=cfg.layers_per_block, act_fn="silu", latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.norm_groups, sample_size=cfg.resolution,
        scaling_factor=float(scaling_factor), use_quant_conv=False, use_post_quant_conv=False,
        mid_block_add_attention=cfg.mid_attention,
    )  # fmt: skip


def autoencoder_kl_names(cfg) -> dict[str, str]:
    """Our autoencoder's module prefix -> diffusers' AutoencoderKL's."""
    names, levels = {}, len(cfg.channels)
    for part in ("encoder", "decoder"):
        names.update({f"{part}.conv_in.": f"{part}.conv_in.",
                      f"{part}.norm_out.": f"{part}.conv_norm_out.",
                      f"{part}.conv_out.": f"{part}.conv_out.",
                      f"{part}.mid.0.": f"{part}.mid_block.resnets.0."})  # fmt: skip
        last = f"{part}.mid.{2 if cfg.mid_attention else 1}."
        names[last] = f"{part}.mid_block.resnets.1."
        if cfg.mid_attention:
            names[f"{part}.mid.1."] = f"{part}.mid_block.attentions.0."
    i = 0
    for level in range(levels):
        for j in range(cfg.layers_per_block):
            names[f"encoder.down.{i}."] = f"encoder.down_blocks.{level}.resnets.{j}."
            i += 1
        if level < levels - 1:
            names[f"encoder.down.{i}.conv."] = f"encoder.down_blocks.{level}.downsamplers.0.conv."
            i += 1
    i = 0
    for block, level in enumerate(reversed(range(levels))):
        for j in range(cfg.layers_per_block + 1):
            names[f"decoder.up.{i}."] = f"decoder.up_blocks.{block}.resnets.{j}."
            i += 1
        if level > 0:
            names[f"decoder.up.{i}.conv."] = f"decoder.up_blocks.{block}.upsamplers.0.conv."
            i += 1
    return names
