"""Text-to-image training: captions -> cached prompt embeddings -> the diffusion recipe's
conditioner (`TextPrompts`).

The U-Net reads a caption through cross-attention (Rombach et al. 2022, sec. 3.3). The frozen
text encoder runs once per distinct caption (`PromptCache`); each training caption is dropped to
the empty prompt with probability `cond_drop_prob`, so the same network is also unconditional
and classifier-free guidance works (Ho & Salimans 2022).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from hwaksan.components import model_config
from hwaksan.errors import HwaksanError
from hwaksan.train.conditioners import Conditioner
from hwaksan.train.data import CaptionedImages, TrainingData
from hwaksan.train.grounding import shapes_object_masks

# Prompts of the progress grids: one per row of 4 samples (shapes-world words).
SAMPLE_PROMPTS = (
    "a red circle in the top left",
    "a blue square at the bottom",
    "a green triangle on the right",
    "a yellow circle to the left of a magenta square",
)


class PromptCache:
    """Each distinct caption encoded once by a frozen text encoder, kept trimmed to its real
    tokens (fp16); a lookup pads a batch to its longest caption. Padding is masked out of
    cross-attention, so trimmed and full-length contexts give the same prediction."""

    def __init__(self, text_encoder: nn.Module, batch_size: int = 256, dtype=torch.float16):
        self.text_encoder, self.batch_size, self.dtype = text_encoder, batch_size, dtype
        self.hidden: dict[str, torch.Tensor] = {}  # caption -> [n_tokens, D]
        self.keep: dict[str, torch.Tensor] = {}  # caption -> [n_tokens] bool (True = real token)

    def __len__(self) -> int:
        return len(self.hidden)

    @torch.no_grad()
    def add(self, captions: Iterable[str], progress: bool = False) -> None:
        """Encode the captions not seen yet, `batch_size` at a time."""
        new = sorted(set(captions) - self.hidden.keys(), key=len)  # similar lengths batch well
        bar = tqdm(total=len(new), desc="encode prompts", unit="prompt", disable=not progress)
        for start in range(0, len(new), self.batch_size):
            chunk = new[start : start + self.batch_size]
            out = self._encode(chunk)
            for caption, h, m in zip(chunk, out.hidden_states, out.attention_mask):
                n = int(m.nonzero().max()) + 1 if m.any() else 1  # up to the last real token
                self.hidden[caption] = h[:n].to("cpu", self.dtype).clone()
                self.keep[caption] = m[:n].to("cpu", torch.bool).clone()
            bar.update(len(chunk))
        bar.close()

    def _encode(self, captions: list[str]):
        """The encoder's output; through tokenize/encode when it has them, with the padding
        past the batch's longest caption cut first (fewer tokens to run, same real states)."""
        if not hasattr(self.text_encoder, "tokenize"):
            return self.text_encoder(captions)
        ids, mask = self.text_encoder.tokenize(captions)
        n = int(mask.sum(1).max())
        device = next(self.text_encoder.parameters()).device
        return self.text_encoder.encode(ids[:, :n].to(device), mask[:, :n].to(device))

    def __call__(self, captions: Sequence[str], device=None) -> dict[str, torch.Tensor]:
        """{"context": [B, L, D] float32, "context_mask": [B, L] bool} for a batch of captions;
        L is the longest caption's token count."""
        self.add(captions)
        length = max(len(self.keep[c]) for c in captions)
        hidden = self.hidden[captions[0]]
        context = torch.zeros(len(captions), length, hidden.shape[-1])  # (B, L, D)
        mask = torch.zeros(len(captions), length, dtype=torch.bool)  # (B, L)
        for i, c in enumerate(captions):
            n = len(self.keep[c])
            context[i, :n], mask[i, :n] = self.hidden[c], self.keep[c]
        return {"context": context.to(device), "context_mask": mask.to(device)}


class Prompted(nn.Module):
    """A network with fixed prompts bound (and guided against `uncond`): forward(x, t)."""

    def __init__(self, model: nn.Module, cond: dict, uncond: dict, guidance_scale: float = 1.0):
        super().__init__()
        from hwaksan.sampling.guidance import classifier_free_guidance

        self.model, self.cond = model, cond  # the network stays a submodule (its parameters)
        self.guided = None  # the guided callable, built once (None: unguided)
        if guidance_scale != 1.0:
            self.guided = classifier_free_guidance(model, guidance_scale, uncond)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (self.guided or self.model)(x, t, **self.cond)


class TextConditioned(nn.Module):
    """A U-Net and the text encoder it reads as one module, so that the loop's optimizer, EMA,
    checkpoints and DDP cover both: the text encoder is trained by the diffusion loss, as latent
    diffusion trains its text transformer with the U-Net (Rombach et al. 2022, sec. 3.3).
    forward(x, t, input_ids, token_mask) -> the U-Net's prediction."""

    def __init__(self, unet: nn.Module, text_encoder: nn.Module) -> None:
        super().__init__()
        if not getattr(text_encoder, "persistent_weights", False):
            raise HwaksanError(
                f"{type(text_encoder).__name__} loads its weights from its package, so a model "
                "folder could not keep them trained; train a mini-CLIP text encoder instead"
            )
        self.unet, self.text_encoder = unet, text_encoder.train().requires_grad_(True)

    def forward(self, x, t, input_ids: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        encoding = self.text_encoder.encode(input_ids, token_mask)
        return self.unet(
            x, t, context=encoding.hidden_states, context_mask=encoding.attention_mask
        )  # (B, C, H, W)


class TextPrompts(Conditioner):
    """Prompts, batch["caption"], read through a text encoder by cross-attention.

    Frozen, the encoder runs once per distinct caption (`PromptCache`; `captions`, the data set's,
    are encoded before training starts) and the model gets "context" and "context_mask". With
    `train_text_encoder` the model is a `TextConditioned` that trains it: it gets token ids, and
    nothing is cached. Captions are dropped to "" with probability `cond_drop_prob`; progress grids
    show `sample_prompts` at `sample_guidance_scale`.
    """

    kind = "text_diffusion"

    def __init__(
        self,
        text_encoder: nn.Module,
        *,
        train_text_encoder: bool = False,
        cond_drop_prob: float = 0.1,
        captions: Sequence[str] | None = None,
        sample_prompts: Sequence[str] = SAMPLE_PROMPTS,
        sample_guidance_scale: float = 4.0,
    ) -> None:
        self.joint, self.cond_drop_prob = train_text_encoder, cond_drop_prob
        self.text_encoder = (
            text_encoder if self.joint else text_encoder.eval().requires_grad_(False)
        )
        self.prompts = PromptCache(self.text_encoder)
        self.sample_prompts = list(sample_prompts)
        self.sample_guidance_scale = sample_guidance_scale
        if captions is not None and not self.joint:  # encode the data set's captions up front
            self.prompts.add([*captions, "", *self.sample_prompts], progress=True)

    def check(self, model: nn.Module) -> None:
        if self.joint != isinstance(model, TextConditioned):
            raise HwaksanError(
                "a text encoder is trained with the U-Net exactly when the model is a "
                "TextConditioned (train_text_encoder=True)"
            )
        if self.joint and model.text_encoder is not self.text_encoder:
            raise HwaksanError("a TextConditioned model must be given its own text encoder")

    def drop(self, batch: dict) -> dict:
        """Each caption replaced by the empty prompt with probability `cond_drop_prob`."""
        captions = batch["caption"]
        drop = torch.rand(len(captions)) < self.cond_drop_prob
        return {**batch, "caption": ["" if d else c for c, d in zip(captions, drop.tolist())]}

    def cond(self, batch: dict, device: torch.device) -> dict:
        return self.conditions(batch["caption"], device)

    def conditions(self, captions: Sequence[str], device=None) -> dict[str, torch.Tensor]:
        """What the model is called with for these captions: cached encodings, or (when it
        trains its text encoder) token ids and mask cut to the longest caption."""
        if not self.joint:
            return self.prompts(captions, device)
        ids, mask = self.text_encoder.tokenize(list(captions))
        n = int(mask.sum(1).max())
        return {"input_ids": ids[:, :n].to(device), "token_mask": mask[:, :n].to(device)}

    def sample_inputs(self, model: nn.Module, n: int, device) -> tuple[nn.Module, dict | None]:
        """The sample prompts in turn (one prompt per `n / len(prompts)` images), guided."""
        per_prompt = max(1, n // len(self.sample_prompts))
        prompts = [
            self.sample_prompts[(i // per_prompt) % len(self.sample_prompts)] for i in range(n)
        ]
        both = self.conditions([*prompts, *[""] * n], device)  # one length, so CFG can batch
        cond, uncond = {k: v[:n] for k, v in both.items()}, {k: v[n:] for k, v in both.items()}
        return Prompted(model, cond, uncond, self.sample_guidance_scale), None

    def describe(self) -> dict:
        return {
            "train_text_encoder": self.joint,
            # every text model's description has it (0.0: no grounding term), as before the token
            # grounding loss became a term, so older checkpoints still resume
            "grounding_weight": 0.0,
            "text_encoder": {
                "class": type(self.text_encoder).__name__,
                "config": model_config(self.text_encoder),
            },
        }


def shapes_text_data(
    resolution: int = 32,
    length: int = 8000,
    seed: int = 0,
    max_objects: int = 2,
    object_masks: bool = False,
    watermark: bool = False,
) -> TrainingData:
    """`length` shapes-world scenes of 1..max_objects objects, each paired with every phrasing
    of its caption (templates and synonyms: several prompts for one picture); with
    `object_masks`, where each object is (for the token grounding loss); with `watermark`, the
    watermark look stamped on every image."""
    from hwaksan.data import shapes

    config = shapes.ShapesConfig(resolution=resolution, min_objects=1, max_objects=max_objects,
                                 watermark=watermark)  # fmt: skip
    images, scenes = shapes.render_batch(length, seed=seed, config=config)
    pairs = [(i, caption) for i, scene in enumerate(scenes) for caption in scene.captions]
    masks = shapes_object_masks(scenes) if object_masks else None
    info = {"name": "shapes", "shapes_config": config.to_dict(), "length": length, "seed": seed}
    return TrainingData(CaptionedImages(images, pairs, masks), 3, resolution, info=info)


def text_training_data(
    data: str, resolution: int | None = None, scenes: int | None = None, object_masks=False
) -> TrainingData:
    """Captioned training data: the shapes world (1-2 objects, 32 px default, `scenes` of them,
    8,000 by default) or an image folder with captions in metadata.jsonl (every image needs one)."""
    if scenes is not None and (data != "shapes" or scenes < 1):
        raise HwaksanError(f"--scenes takes a positive count, for --data shapes only: {scenes}")
    if data == "shapes":
        return shapes_text_data(resolution or 32, length=scenes or 8000, object_masks=object_masks)
    if object_masks:
        raise HwaksanError("the token grounding loss needs object masks: use --data shapes")
    if not Path(data).is_dir():
        raise HwaksanError(
            f"a text-to-image model needs captioned data: shapes or a folder with "
            f"metadata.jsonl, not {data!r}"
        )
    from hwaksan.data.folder import ImageFolder

    resolution = resolution or 32
    dataset = ImageFolder(data, resolution)
    missing = sum(not c for c in dataset.captions)
    if missing:
        raise HwaksanError(f"{missing} image(s) in {data} have no caption in metadata.jsonl")
    info = {"name": "folder", "path": str(Path(data).resolve()), "resolution": resolution}
    return TrainingData(dataset, 3, resolution, info=info)
