"""Adapters that load onto a trained base model: LoRA (`lora.py` the layer, `lora_model.py` on a
network, `lora_formats.py` the file formats, `lora_file.py` the files), textual-inversion
embeddings (`textual_inversion.py`), IP-Adapter (`ip_adapter.py`), and the "hwaksan.adapter"
folder kind (`folder.py`)."""

from hwaksan.nets.adapters.folder import ADAPTER_TYPES, load_adapter, read_adapter, save_adapter
from hwaksan.nets.adapters.ip_adapter import IPAdapter, IPAdapterAttnProcessor
from hwaksan.nets.adapters.ip_adapter_folder import load_ip_adapter, save_ip_adapter
from hwaksan.nets.adapters.lora import LoRALayer
from hwaksan.nets.adapters.lora_file import (
    WEIGHT_NAME,
    load_lora_onto,
    lora_weights,
    read_lora_file,
    save_lora_file,
)
from hwaksan.nets.adapters.lora_formats import LoRAWeights, canonical
from hwaksan.nets.adapters.lora_model import (
    TARGET_MODULES,
    adapter_names,
    delete_adapters,
    fuse_lora,
    inject_lora,
    lora_layers,
    lora_parameters,
    lora_scale,
    lora_state_dict,
    lora_target_names,
    set_adapters,
    unfuse_lora,
)
from hwaksan.nets.adapters.textual_inversion import add_embeddings, token_embeddings
from hwaksan.nets.adapters.textual_inversion_folder import (
    load_textual_inversion,
    save_textual_inversion,
)

__all__ = [
    "ADAPTER_TYPES",
    "IPAdapter",
    "IPAdapterAttnProcessor",
    "TARGET_MODULES",
    "WEIGHT_NAME",
    "LoRALayer",
    "LoRAWeights",
    "adapter_names",
    "add_embeddings",
    "canonical",
    "delete_adapters",
    "fuse_lora",
    "inject_lora",
    "load_adapter",
    "load_ip_adapter",
    "load_lora_onto",
    "load_textual_inversion",
    "lora_layers",
    "lora_parameters",
    "lora_scale",
    "lora_state_dict",
    "lora_target_names",
    "lora_weights",
    "read_adapter",
    "read_lora_file",
    "save_adapter",
    "save_ip_adapter",
    "save_lora_file",
    "save_textual_inversion",
    "set_adapters",
    "token_embeddings",
    "unfuse_lora",
]
