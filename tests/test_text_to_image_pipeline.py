"""A text-to-image Pipeline: prompts -> context, classifier-free guidance against the empty or a
negative prompt, over-long prompts, and the model folder with its text encoder."""

from __future__ import annotations

import pytest
import torch
from text_stand_in import WordEncoder
from torch import nn

from hwaksan import components
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.errors import HwaksanError
from hwaksan.model_folder import load
from hwaksan.nets import build_unet
from hwaksan.pipeline import Pipeline
from hwaksan.sampling import sample


@pytest.fixture
def pipe(monkeypatch) -> Pipeline:
    """A random text-conditional pipeline (output layers made non-zero so prompts matter)."""
    monkeypatch.setitem(components.CLASSES, "WordEncoder", "text_stand_in:WordEncoder")
    torch.manual_seed(0)
    unet = build_unet("tiny", resolution=8, channels=(16, 32), norm_groups=8, num_heads=2,
                      attention_resolutions=(4,), context_dim=16)  # fmt: skip
    for name, p in unet.named_parameters():
        if "proj_out" in name or "conv_out" in name:
            nn.init.normal_(p, std=0.1)
    return Pipeline(unet=unet.eval(), schedule=NoiseSchedule.cosine(100),
                    prediction_type="v_prediction", image_shape=(3, 8, 8), steps=5,
                    text_encoder=WordEncoder())  # fmt: skip


def _by_hand(pipe: Pipeline, n: int, prompt: str, uncond_prompt: str, scale: float, seed=0):
    """DDIM with the guided prediction written out: two separate network calls per step."""
    enc = pipe.text_encoder
    cond, uncond = enc([prompt] * n), enc([uncond_prompt] * n)

    def guided(x, t):
        c = pipe.unet(x, t, context=cond.hidden_states, context_mask=cond.attention_mask)
        u = pipe.unet(x, t, context=uncond.hidden_states, context_mask=uncond.attention_mask)
        return u + scale * (c - u)

    x_T = torch.randn((n, 3, 8, 8), generator=torch.Generator().manual_seed(seed))
    return sample(guided, (n, 3, 8, 8), schedule=pipe.schedule, steps=pipe.steps,
                  prediction_type="v_prediction", timestep_spacing="trailing",
                  x_T=x_T).clamp(-1, 1)  # fmt: skip


def test_guidance_against_the_empty_prompt(pipe):
    ours = pipe.generate(3, prompt="a red circle", guidance_scale=3.0, output_type="pt")
    expected = _by_hand(pipe, 3, "a red circle", "", 3.0)
    assert torch.allclose(ours, expected, atol=1e-5)
    plain = pipe.generate(3, prompt="a red circle", output_type="pt")  # no guidance
    assert torch.allclose(plain, _by_hand(pipe, 3, "a red circle", "", 1.0), atol=1e-5)
    assert not torch.allclose(ours, plain, atol=1e-3)


def test_negative_prompt_replaces_the_empty_prompt(pipe):
    ours = pipe.generate(3, prompt="a red circle", negative_prompt="a blue square",
                         guidance_scale=3.0, output_type="pt")  # fmt: skip
    expected = _by_hand(pipe, 3, "a red circle", "a blue square", 3.0)
    assert torch.allclose(ours, expected, atol=1e-5)
    empty = pipe.generate(3, prompt="a red circle", guidance_scale=3.0, output_type="pt")
    assert not torch.allclose(ours, empty, atol=1e-3)


def test_the_prompt_changes_the_picture_and_each_image_has_its_own(pipe):
    both = pipe.generate(4, prompt=["a red circle", "a red circle", "a blue square", "x"],
                         output_type="pt")  # fmt: skip
    alone = pipe.generate(4, prompt="a blue square", output_type="pt")
    assert torch.allclose(both[2], alone[2], atol=1e-5)  # same seed, same prompt, same image
    assert not torch.allclose(both[0], alone[0], atol=1e-3)


def test_a_too_long_prompt_warns_and_still_generates(pipe):
    long_prompt = "a red circle to the left of a blue square in the top left corner"
    with pytest.warns(UserWarning, match="cut"):
        images = pipe.generate(2, prompt=long_prompt, guidance_scale=2.0)
    assert len(images) == 2 and images[0].size == (8, 8)


def test_bad_prompt_lists_are_one_line_errors(pipe):
    with pytest.raises(HwaksanError, match="one string or 3 strings"):
        pipe.generate(3, prompt=["a", "b"])
    pipe.text_encoder = None
    with pytest.raises(HwaksanError, match="not a text model"):
        pipe.generate(1, prompt="a red circle")


def test_save_and_load_a_text_to_image_bundle(pipe, tmp_path):
    pipe.save(tmp_path / "t2i", dtype=torch.float32)
    files = sorted(p.name for p in (tmp_path / "t2i").iterdir())
    assert files == ["config.json", "unet.safetensors"]  # the encoder reloads from its config
    loaded = load(tmp_path / "t2i", device="cpu")
    assert isinstance(loaded.text_encoder, WordEncoder)
    kwargs = dict(prompt="a red circle", negative_prompt="a blue square", guidance_scale=2.0)
    assert torch.equal(
        pipe.generate(2, output_type="pt", **kwargs), loaded.generate(2, output_type="pt", **kwargs)
    )


def test_shipped_text_to_image_model_draws_the_prompted_objects():
    """A quick look (benchmarks/prompt_score.py measures it fully, per claim and scale)."""
    import sys
    from pathlib import Path

    from hwaksan.eval.shapes_score import prompt_score

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from prompt_score import single_prompts

    pipe = load("shapes_t2i", device="cpu")
    prompts = single_prompts(12)
    images = pipe.generate(12, steps=20, prompt=prompts, guidance_scale=2.0, output_type="pt")
    assert prompt_score(prompts, images)["object"] >= 0.7  # shape and color bound together


def test_the_shipped_latent_text_to_image_model_draws_64px_prompts():
    """shapes_t2i_64: prompts through mini-CLIP, latents through autoencoder_kl's decoder."""
    import sys
    from pathlib import Path

    from hwaksan.eval.shapes_score import prompt_score

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from prompt_score import single_prompts

    pipe = load("shapes_t2i_64", device="cpu")
    assert pipe.sample_shape == (4, 16, 16) and pipe.image_shape == (3, 64, 64)
    prompts = single_prompts(12, resolution=64)
    images = pipe.generate(12, steps=20, prompt=prompts, guidance_scale=2.0, output_type="pt")
    assert images.shape == (12, 3, 64, 64)
    assert prompt_score(prompts, images)["all"] >= 0.7  # shape, color and position (99% measured)
