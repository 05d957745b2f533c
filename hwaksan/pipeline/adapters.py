"""Adapter folders on a pipeline, in diffusers' words (`LoraLoaderMixin`,
`TextualInversionLoaderMixin`): `load_lora_weights`, `load_textual_inversion` and their saves."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class AdapterLoaders:
    """`Pipeline` methods that load adapter folders onto its networks and save them."""

    def load_adapter(self, path: str | Path, **options: Any) -> Any:
        """Any adapter folder onto the component its type attaches to (`ADAPTER_TYPES`)."""
        from hwaksan.nets.adapters import load_adapter

        return load_adapter(path, self._adapter_components(), **options)

    def load_lora_weights(self, path: str | Path, adapter_name: str | None = None) -> list[str]:
        """A LoRA folder onto the denoiser; the names of the layers it wraps."""
        from hwaksan.nets.adapters import load_adapter

        return load_adapter(path, self._adapter_components(), "lora", adapter_name=adapter_name)

    def save_lora_weights(self, path: str | Path) -> Path:
        """The denoiser's LoRA layers as an adapter folder."""
        from hwaksan.nets.adapters import save_lora

        return save_lora(path, self.unet)

    def load_textual_inversion(
        self, path: str | Path, token: str | list[str] | None = None
    ) -> list[str]:
        """Learned token embeddings onto the text encoder (`token` renames them); the tokens."""
        from hwaksan.nets.adapters import load_adapter

        components = self._adapter_components()
        return load_adapter(path, components, "textual_inversion", token=token)

    def save_textual_inversion(self, path: str | Path, tokens: list[str]) -> Path:
        """The text encoder's embeddings of added `tokens` as an adapter folder."""
        from hwaksan.nets.adapters import save_textual_inversion

        return save_textual_inversion(path, self.text_encoder, tokens)

    def _adapter_components(self) -> dict:
        return {"unet": self.unet, "text_encoder": self.text_encoder}
