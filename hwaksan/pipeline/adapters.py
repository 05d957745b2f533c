"""Adapter folders on a pipeline, in diffusers' words (`LoraLoaderMixin`,
`TextualInversionLoaderMixin`): `load_lora_weights`, `load_textual_inversion` and their saves;
`load_controlnet` (diffusers passes `controlnet=` to the pipeline; here it attaches to one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hwaksan.errors import HwaksanError


class AdapterLoaders:
    """`Pipeline` methods that load adapter folders onto its networks and save them."""

    def load_adapter(self, path: str | Path, **options: Any) -> Any:
        """Any adapter folder onto the component its type attaches to (`ADAPTER_TYPES`)."""
        from hwaksan.nets.adapters import load_adapter
        from hwaksan.nets.controlnet import ControlNet

        loaded = load_adapter(path, self._adapter_components(), **options)
        if isinstance(loaded, ControlNet):
            self.load_controlnet(loaded)
        return loaded

    def load_controlnet(self, controlnet: str | Path | Any) -> Any:
        """A ControlNet (a folder, or a `ControlNet`) steering the denoiser: `generate` then reads
        `control_image` and `controlnet_conditioning_scale`. Replaces an attached one."""
        from hwaksan.nets.adapters import load_adapter
        from hwaksan.nets.controlnet import ControlNet
        from hwaksan.pipeline.controlnet import attach_controlnet

        if not isinstance(controlnet, ControlNet):
            from hwaksan.registry import resolve_adapter

            folder = resolve_adapter(controlnet)  # a shipped name, a folder, or a run's model/
            controlnet = load_adapter(folder, self._adapter_components(), "controlnet")
        elif not controlnet.fits(self.unet):
            raise HwaksanError("this ControlNet was made for another base model's U-Net")
        attach_controlnet(self, controlnet)
        return controlnet

    @property
    def controlnet(self) -> Any:
        """The attached ControlNet, or None."""
        from hwaksan.pipeline.controlnet import ControlNetPart

        parts = [p for p in self.parts if isinstance(p, ControlNetPart)]
        return parts[0].controlnet if parts else None

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
