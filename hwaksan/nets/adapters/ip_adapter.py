"""IP-Adapter (Ye et al. 2023): an image prompt for a frozen text-to-image U-Net.

A frozen image encoder's embedding (here the shipped mini-CLIP image tower) goes through a small
trainable projection to `num_tokens` image tokens (`ImageProjection`, sec. 3.2.1). Every
cross-attention layer gets a *decoupled* cross-attention to them: its own key and value
projections (`to_k_ip`, `to_v_ip`, initialized from the layer's text ones), the same query, and
the result added to the text attention's at `scale` (sec. 3.2.2, eq. 5 and sec. 3.3):

    Z = Attention(Q, K, V) + scale * Attention(Q, K', V')

It runs as the layer's attention processor (diffusers' `IPAdapterAttnProcessor2_0`), so the U-Net
is not edited; the image tokens arrive per call as `cross_attention_kwargs["ip_hidden_states"]`.
`IPAdapter.state_dict()` is the file layout of the original repository and of diffusers:
`image_proj.proj.*`, `image_proj.norm.*` and `ip_adapter.<i>.to_k_ip.weight`, `<i>` the layer's
index among the U-Net's attention processors (1, 3, 5, ... when every block has attn1 and attn2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hwaksan.nets.attention import AttnProcessor, attention, attention_mask

IP_TOKENS = "ip_hidden_states"  # the cross_attention_kwargs key the image tokens travel under


class ImageProjection(nn.Module):
    """An image embedding (B, E) -> `num_tokens` context tokens (B, T, D): one linear layer and a
    LayerNorm (IP-Adapter's `ImageProjModel`, Ye et al. 2023, sec. 3.2.1)."""

    def __init__(self, image_embed_dim: int, cross_attention_dim: int, num_tokens: int = 4):
        super().__init__()
        self.num_tokens = num_tokens
        self.proj = nn.Linear(image_embed_dim, num_tokens * cross_attention_dim)
        self.norm = nn.LayerNorm(cross_attention_dim)

    def forward(self, image_embeds: torch.Tensor) -> torch.Tensor:
        tokens = self.proj(image_embeds).unflatten(-1, (self.num_tokens, -1))  # (B, T, D)
        return self.norm(tokens)  # (B, T, D)


class IPAdapterAttnProcessor(nn.Module):
    """Cross-attention to the text plus, at `scale`, a decoupled cross-attention to the image
    tokens with the layer's query (Ye et al. 2023, eq. 5). Without image tokens, or at scale 0,
    it is the default processor, so the base's output is unchanged bit for bit."""

    kwarg_names = (IP_TOKENS,)

    def __init__(self, context_dim: int, inner_dim: int, scale: float = 1.0, bias: bool = False):
        super().__init__()
        self.to_k_ip = nn.Linear(context_dim, inner_dim, bias=bias)
        self.to_v_ip = nn.Linear(context_dim, inner_dim, bias=bias)
        self.scale = scale

    @classmethod
    def from_attention(cls, attn: nn.Module, scale: float = 1.0) -> IPAdapterAttnProcessor:
        """A processor for `attn` whose image key / value start as copies of its text ones
        (the paper's initialization, sec. 3.2.2)."""
        to_k, to_v = attn.to_k, attn.to_v
        bias = to_k.bias is not None
        processor = cls(to_k.in_features, to_k.out_features, scale, bias)
        for ip, text in ((processor.to_k_ip, to_k), (processor.to_v_ip, to_v)):
            # the base weights: a LoRA on the text projection is not copied
            ip.load_state_dict({"weight": text.weight, **({"bias": text.bias} if bias else {})})
        return processor.to(to_k.weight.device, to_k.weight.dtype)

    def forward(self, attn, x, context=None, context_mask=None, **kwargs) -> torch.Tensor:
        """x (B, N, query_dim), context (B, M, context_dim), ip_hidden_states (B, T, context_dim)
        -> (B, N, query_dim)."""
        ip_tokens = kwargs.get(IP_TOKENS)
        if ip_tokens is None or self.scale == 0 or context is None:
            return AttnProcessor()(attn, x, context, context_mask)
        q, k, v = attn.qkv(x, context)  # (B, h, N, d), (B, h, M, d) x 2
        out = attention(q, k, v, attention_mask(context_mask))  # (B, h, N, d)
        ip_tokens = ip_tokens.to(x.dtype)
        ip_k = attn.split_heads(self.to_k_ip(ip_tokens))  # (B, h, T, d)
        ip_v = attn.split_heads(self.to_v_ip(ip_tokens))  # (B, h, T, d)
        out = out + self.scale * attention(q, ip_k, ip_v)  # (B, h, N, d)
        return attn.to_out(attn.merge_heads(out))  # (B, N, query_dim)


def cross_attention_layers(unet: nn.Module) -> dict[int, tuple[str, nn.Module]]:
    """The U-Net's cross-attention layers (names ending in "attn2", diffusers' rule) by their
    index among all its attention processors: the index IP-Adapter files key them by."""
    layers = unet._attention_layers()
    return {i: (name, layers[name]) for i, name in enumerate(layers) if name.endswith("attn2")}


class IPAdapter(nn.Module):
    """`image_proj` and one `IPAdapterAttnProcessor` per cross-attention layer (`ip_adapter`,
    keyed by the layer's processor index): what trains and what the file holds."""

    def __init__(self, image_proj: ImageProjection, processors: dict[int, IPAdapterAttnProcessor]):
        super().__init__()
        self.image_proj = image_proj
        self.ip_adapter = nn.ModuleDict({str(i): p for i, p in processors.items()})

    @classmethod
    def for_unet(
        cls, unet: nn.Module, image_embed_dim: int, num_tokens: int = 4, scale: float = 1.0
    ) -> IPAdapter:
        """A fresh adapter for `unet`: a random projection, image key / value copied from text."""
        layers = cross_attention_layers(unet)
        processors = {i: IPAdapterAttnProcessor.from_attention(a, scale) for i, (_, a) in
                      layers.items()}  # fmt: skip
        context_dim = next(iter(processors.values())).to_k_ip.in_features
        weight = next(iter(processors.values())).to_k_ip.weight
        proj = ImageProjection(image_embed_dim, context_dim, num_tokens)
        return cls(proj.to(weight.device, weight.dtype), processors)

    def attach(self, unet: nn.Module) -> None:
        """Put each processor in its cross-attention layer's slot; other layers keep theirs."""
        processors = dict(unet.attn_processors)
        for i, (name, _) in cross_attention_layers(unet).items():
            processors[f"{name}.processor"] = self.ip_adapter[str(i)]
        unet.set_attn_processor(processors)

    def set_scale(self, scale: float) -> None:
        """The image prompt's weight in every layer (0: the base model, exactly)."""
        for processor in self.ip_adapter.values():
            processor.scale = float(scale)

    def image_tokens(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """(B, E) image embeddings -> (B, num_tokens, context_dim) tokens; zeros are the
        "no image" embedding the adapter learned with image dropout."""
        return self.image_proj(image_embeds.to(self.image_proj.proj.weight.dtype))


def detach_ip_adapter(unet: nn.Module) -> None:
    """Back to the default processor in every layer that runs an IP-Adapter's."""
    processors = {
        name: AttnProcessor() if isinstance(p, IPAdapterAttnProcessor) else p
        for name, p in unet.attn_processors.items()
    }
    unet.set_attn_processor(processors)


@torch.no_grad()
def encode_image(clip: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Image embeddings (B, embed_dim) of images (B, 3, H, W) in [-1, 1] by the frozen mini-CLIP
    image tower (resized to its resolution; projected, not normalized: CLIP's `image_embeds`)."""
    resolution = clip.config.vision.resolution
    device = clip.logit_scale.device
    images = images.to(device, torch.float32)
    if images.shape[-1] != resolution or images.shape[-2] != resolution:
        images = F.interpolate(images, (resolution, resolution), mode="area")  # (B, 3, R, R)
    return clip.visual_projection(clip.vision_model(images))  # (B, embed_dim)
