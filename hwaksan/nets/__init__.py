"""Networks: the diffusion U-Net and its parts (attention, ResBlocks, embeddings), feature CNNs."""

from hwaksan.nets.attention import Attention, AttentionBlock
from hwaksan.nets.embeddings import ClassEmbedding, TimestepEmbedding, timestep_embedding
from hwaksan.nets.presets import PRESETS, build_unet, unet_base, unet_small, unet_tiny
from hwaksan.nets.resnet import Downsample, ResBlock, Upsample
from hwaksan.nets.transformer import SpatialTransformer, TransformerBlock
from hwaksan.nets.unet import UNet, UNetConfig

__all__ = [
    "PRESETS",
    "Attention",
    "AttentionBlock",
    "ClassEmbedding",
    "Downsample",
    "ResBlock",
    "SpatialTransformer",
    "TimestepEmbedding",
    "TransformerBlock",
    "UNet",
    "UNetConfig",
    "Upsample",
    "build_unet",
    "timestep_embedding",
    "unet_base",
    "unet_small",
    "unet_tiny",
]
