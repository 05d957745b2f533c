"""Guidance that runs the network itself (so it may import `nets/`), where `sampling/` only ever
calls a model: layout guidance from cross-attention maps, and the maps' recorder the token
grounding loss also reads."""

from hwaksan.guidance.attention_maps import CrossAttentionMaps
from hwaksan.guidance.layout import LAYOUT_SCALE, Relation, layout_guidance, parse_relations

__all__ = ["LAYOUT_SCALE", "CrossAttentionMaps", "Relation", "layout_guidance", "parse_relations"]
