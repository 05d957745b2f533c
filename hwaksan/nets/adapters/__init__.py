"""Adapters that load onto a trained base model: LoRA (`lora.py`), textual-inversion embeddings
(`textual_inversion.py`), IP-Adapter (`ip_adapter.py`), and their folder kind "hwaksan.adapter"
(`folder.py`)."""

from hwaksan.nets.adapters.folder import ADAPTER_TYPES, load_adapter, read_adapter, save_adapter
from hwaksan.nets.adapters.ip_adapter import IPAdapter, IPAdapterAttnProcessor
from hwaksan.nets.adapters.ip_adapter_folder import load_ip_adapter, save_ip_adapter
from hwaksan.nets.adapters.lora import LoRALinear, inject_lora, lora_state_dict, lora_target_names
from hwaksan.nets.adapters.lora_folder import load_lora, save_lora
from hwaksan.nets.adapters.textual_inversion import add_embeddings, token_embeddings
from hwaksan.nets.adapters.textual_inversion_folder import (
    load_textual_inversion,
    save_textual_inversion,
)

__all__ = [
    "ADAPTER_TYPES",
    "IPAdapter",
    "IPAdapterAttnProcessor",
    "LoRALinear",
    "add_embeddings",
    "inject_lora",
    "load_adapter",
    "load_ip_adapter",
    "load_lora",
    "load_textual_inversion",
    "lora_state_dict",
    "lora_target_names",
    "read_adapter",
    "save_adapter",
    "save_ip_adapter",
    "save_lora",
    "save_textual_inversion",
    "token_embeddings",
]
