"""Adapter folders on a pipeline, in diffusers' words (`LoraLoaderMixin`,
`TextualInversionLoaderMixin`, `IPAdapterMixin`): `load_lora_weights`, `load_textual_inversion`
and their saves; `load_ip_adapter`, `set_ip_adapter_scale`, `unload_ip_adapter`; `load_controlnet`
(diffusers passes `controlnet=` to the pipeline; here it attaches to one)."""

from __future__ import annotations

import math
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

    def load_ip_adapter(self, path: str | Path, scale: float = 1.0) -> Any:
        """An IP-Adapter folder (a path, a training run, or a shipped name such as
        "shapes_t2i_64_ip_adapter") onto the denoiser's cross-attention layers, and the part that
        reads `generate(..., ip_adapter_image=)` (one adapter at a time: it replaces any other).
        The adapter."""
        from hwaksan.nets.adapters import load_adapter
        from hwaksan.nets.text.mini_clip import load_mini_clip
        from hwaksan.pipeline.ip_adapter import IPAdapterImage

        if self.text_encoder is None:
            raise HwaksanError("an IP-Adapter attaches to a text-to-image model; this is not one")
        self.unload_ip_adapter()
        folder = _adapter_folder(path)
        adapter = load_adapter(folder, self._adapter_components(), "ip_adapter", scale=scale)
        self.parts.append(IPAdapterImage(adapter, load_mini_clip("mini_clip")))
        return adapter

    def set_ip_adapter_scale(self, scale: float) -> None:
        """The image prompt's weight (Ye et al. 2023, eq. 5): 0 is the base model, exactly."""
        if not math.isfinite(scale):
            raise HwaksanError(f"the IP-Adapter scale must be a finite number, not {scale}")
        self._ip_adapter_part().adapter.set_scale(scale)

    def unload_ip_adapter(self) -> None:
        """Remove the IP-Adapter's processors and part (nothing if none is loaded)."""
        from hwaksan.nets.adapters.ip_adapter import detach_ip_adapter
        from hwaksan.pipeline.ip_adapter import IPAdapterImage

        detach_ip_adapter(self.unet)
        self.parts[:] = [p for p in self.parts if not isinstance(p, IPAdapterImage)]

    def _ip_adapter_part(self):
        from hwaksan.pipeline.ip_adapter import IPAdapterImage

        for part in self.parts:
            if isinstance(part, IPAdapterImage):
                return part
        raise HwaksanError("no IP-Adapter is loaded; load one with load_ip_adapter(path)")

    def _adapter_components(self) -> dict:
        return {"unet": self.unet, "text_encoder": self.text_encoder}


def _adapter_folder(path: str | Path) -> Path:
    """An adapter folder from a path, a training run's folder (its `model/`), or a shipped name."""
    from hwaksan.registry import WEIGHTS_DIR

    folder = Path(path)
    if (folder / "model" / "config.json").exists():
        return folder / "model"
    shipped = WEIGHTS_DIR / str(path)
    if not folder.exists() and (shipped / "config.json").exists():
        return shipped
    return folder
