"""Adapters on a pipeline, in diffusers' words (`StableDiffusionLoraLoaderMixin`,
`TextualInversionLoaderMixin`, `IPAdapterMixin`): `load_lora_weights`, `set_adapters`,
`fuse_lora`, `load_textual_inversion` and their saves; `load_ip_adapter`,
`set_ip_adapter_scale`, `unload_ip_adapter`; `load_controlnet` (diffusers passes
`controlnet=` to the pipeline; here it attaches to one)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hwaksan.errors import HwaksanError

LORA_COMPONENTS = ("unet", "text_encoder")  # what a LoRA file's keys may name


class AdapterLoaders:
    """`Pipeline` methods that load adapters onto its networks, switch them and save them."""

    def load_adapter(self, path: str | Path, **options: Any) -> Any:
        """Any adapter onto this model, by what it is: a LoRA file (or a folder with one) through
        `load_lora_weights`; an adapter folder through its type's loader (`load_controlnet`,
        `load_ip_adapter`, `load_textual_inversion`); a shipped adapter by name. What that
        loader returns; `options` go to it."""
        from hwaksan.nets.adapters.folder import adapter_config
        from hwaksan.nets.adapters.lora_file import is_lora_file
        from hwaksan.registry import resolve_adapter

        found = resolve_adapter(path)
        config = adapter_config(found)
        if config is None:  # another tool's file: LoRA or token embeddings
            if is_lora_file(found):
                return self.load_lora_weights(found, **options)
            return self.load_textual_inversion(found, **options)
        loaders = {"controlnet": self.load_controlnet, "ip_adapter": self.load_ip_adapter,
                   "textual_inversion": self.load_textual_inversion}  # fmt: skip
        kind = config.get("adapter_type")
        if kind not in loaders:
            raise HwaksanError(f"{found} holds an adapter of unknown type {kind!r}; known: "
                               f"{', '.join(loaders)}")  # fmt: skip
        return loaders[kind](found, **options)

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

    def load_lora_weights(self, path: str | Path, adapter_name: str | None = None) -> str:
        """A LoRA file (or a folder with one, or a shipped LoRA's name) in any format
        `lora_formats` reads, onto the denoiser and text encoder, frozen and active at weight 1;
        the adapter's name."""
        from hwaksan.nets.adapters import load_lora_onto, read_lora_file
        from hwaksan.registry import SHIPPED_ADAPTERS, resolve_adapter

        if not Path(path).exists() and str(path) in SHIPPED_ADAPTERS:
            path = resolve_adapter(path)
        tensors, metadata = read_lora_file(path)
        taken = self.get_list_adapters()
        name = adapter_name or next(f"default_{i}" for i in range(len(taken) + 1)
                                    if f"default_{i}" not in taken)  # fmt: skip
        if name in taken:
            from hwaksan.errors import HwaksanError

            raise HwaksanError(f"a LoRA named {name!r} is already loaded; pick another name")
        load_lora_onto(self._lora_components(), tensors, metadata, name, source=str(path))
        return name  # active at weight 1 beside those already active

    def save_lora_weights(
        self, path: str | Path, adapter_name: str | None = None, base: dict | None = None
    ) -> Path:
        """One adapter (the only one by default) as `pytorch_lora_weights.safetensors`, with
        peft's keys and its rank and alpha in the metadata; `path` a folder or a file."""
        from hwaksan.errors import HwaksanError
        from hwaksan.nets.adapters import lora_weights, save_lora_file

        names = self.get_list_adapters()
        if adapter_name is None and len(names) > 1:
            raise HwaksanError(f"several LoRAs are loaded ({names}); name one: adapter_name=")
        name = adapter_name or (names[0] if names else "default")
        base = base or {"unet": type(self.unet).__name__, "sample_shape": list(self.sample_shape)}
        return save_lora_file(path, lora_weights(self._lora_components(), name), base)

    def set_adapters(
        self,
        adapter_names: str | Sequence[str],
        adapter_weights: Sequence[float] | float | None = None,
    ) -> None:
        """Make exactly these adapters active, each at its weight (default 1.0)."""
        from hwaksan.errors import HwaksanError
        from hwaksan.nets.adapters import set_adapters

        names = [adapter_names] if isinstance(adapter_names, str) else list(adapter_names)
        weights = adapter_weights
        if weights is not None and not isinstance(weights, (list, tuple)):
            weights = [weights] * len(names)
        unknown = [n for n in names if n not in self.get_list_adapters()]
        if unknown:
            raise HwaksanError(f"no LoRA named {unknown[0]!r}; loaded: {self.get_list_adapters()}")
        for module in self._lora_components().values():
            if module is not None:
                mine = [(n, w) for n, w in zip(names, weights or [1.0] * len(names))
                        if n in self._names(module)]  # fmt: skip
                set_adapters(module, [n for n, _ in mine], [w for _, w in mine])

    def get_list_adapters(self) -> list[str]:
        """The names of the loaded LoRAs."""
        seen = [n for m in self._lora_components().values() if m is not None
                for n in self._names(m)]  # fmt: skip
        return list(dict.fromkeys(seen))

    def disable_lora(self) -> None:
        """No LoRA active (the base model); `set_adapters` turns them on again."""
        self.set_adapters([], [])

    def fuse_lora(self, lora_scale: float = 1.0) -> None:
        """Fold the active LoRAs (times `lora_scale`) into the base weights: no extra cost per
        step; `unfuse_lora` restores the base weights exactly."""
        from hwaksan.nets.adapters import fuse_lora

        for module in self._lora_components().values():
            if module is not None:
                fuse_lora(module, lora_scale)

    def unfuse_lora(self) -> None:
        """The base weights as they were before `fuse_lora`, bit for bit."""
        from hwaksan.nets.adapters import unfuse_lora

        for module in self._lora_components().values():
            if module is not None:
                unfuse_lora(module)

    def delete_adapters(self, adapter_names: str | Sequence[str]) -> None:
        """Remove LoRAs; layers left with none become their plain base layers again."""
        from hwaksan.nets.adapters import delete_adapters

        names = [adapter_names] if isinstance(adapter_names, str) else list(adapter_names)
        for module in self._lora_components().values():
            if module is not None:
                delete_adapters(module, names)

    def unload_lora_weights(self) -> None:
        """Remove every LoRA (diffusers' name)."""
        self.delete_adapters(self.get_list_adapters())

    def load_textual_inversion(
        self, path: str | Path, token: str | list[str] | None = None
    ) -> list[str]:
        """Learned token embeddings onto the text encoder (`token` renames them); the tokens. A
        hwaksan adapter folder, or another tool's file (diffusers' `learned_embeds.safetensors`,
        Automatic1111's "emb_params" in safetensors; n vectors become n tokens)."""
        from hwaksan.nets.adapters import load_adapter
        from hwaksan.nets.adapters.folder import adapter_config
        from hwaksan.nets.adapters.textual_inversion_file import load_embedding_file
        from hwaksan.registry import resolve_adapter

        found = resolve_adapter(path)
        if adapter_config(found) is None:
            if self.text_encoder is None:
                raise HwaksanError("textual inversion needs a text encoder; this model has none")
            if isinstance(token, list):
                raise HwaksanError("a textual-inversion file holds one token: give token= a string")
            return load_embedding_file(self.text_encoder, found, token)
        components = self._adapter_components()
        return load_adapter(found, components, "textual_inversion", token=token)

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
        from hwaksan.registry import resolve_adapter

        folder = resolve_adapter(path)
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

    def _lora_components(self) -> dict:
        return {name: getattr(self, name, None) for name in LORA_COMPONENTS}

    @staticmethod
    def _names(module) -> list[str]:
        from hwaksan.nets.adapters import adapter_names

        return adapter_names(module)
