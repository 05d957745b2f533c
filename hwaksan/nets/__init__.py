"""Networks: the diffusion U-Net and its parts (attention, ResBlocks, embeddings), feature CNNs."""

from hwaksan.nets.attention import (
    Attention,
    AttentionBlock,
    AttentionProcessor,
    AttnProcessor,
    attention_probs,
)
from hwaksan.nets.controlnet import ControlNet, ControlNetConfig
from hwaksan.nets.embeddings import ClassEmbedding, TimestepEmbedding, timestep_embedding
from hwaksan.nets.presets import PRESETS, build_unet, unet_base, unet_small, unet_tiny
from hwaksan.nets.resnet import Downsample, ResBlock, Upsample
from hwaksan.nets.transformer import SpatialTransformer, TransformerBlock
from hwaksan.nets.unet import UNet, UNetConfig
from hwaksan.nets.unet_encoder import EncoderOutput, UNetEncoder

__all__ = [
    "PRESETS",
    "Attention",
    "AttentionBlock",
    "AttentionProcessor",
    "AttnProcessor",
    "ClassEmbedding",
    "ControlNet",
    "ControlNetConfig",
    "Downsample",
    "EncoderOutput",
    "ResBlock",
    "SpatialTransformer",
    "TimestepEmbedding",
    "TransformerBlock",
    "UNet",
    "UNetConfig",
    "UNetEncoder",
    "Upsample",
    "attention_probs",
    "build_unet",
    "timestep_embedding",
    "unet_base",
    "unet_small",
    "unet_tiny",
]
