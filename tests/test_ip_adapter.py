"""IP-Adapter (Ye et al. 2023): the decoupled cross-attention against diffusers' processor, the
base untouched at scale 0 and after training, the image reaching the output, the file's two
parts round-tripping, and bad input as one line."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import hwaksan as hk
from hwaksan.data.shapes import shapes_vocabulary
from hwaksan.errors import HwaksanError
from hwaksan.nets import build_unet
from hwaksan.nets.adapters import IPAdapter, load_adapter, save_ip_adapter
from hwaksan.nets.adapters.ip_adapter import IP_TOKENS, IPAdapterAttnProcessor
from hwaksan.nets.attention import Attention
from hwaksan.nets.text.mini_clip import MiniCLIPTextConfig, MiniCLIPTextModel
from hwaksan.train.ip_adapter import ImagePrompts, IPAdapterModel, ReferencedImages
from hwaksan.train.loop import TrainConfig, train

E = 12  # image embedding width of the tests' adapters


def _unet(width: int = 16, channels=(16, 32)) -> nn.Module:
    torch.manual_seed(0)
    unet = build_unet("tiny", resolution=8, channels=channels, norm_groups=8, num_heads=2,
                      attention_resolutions=(4,), context_dim=width)  # fmt: skip
    for name, p in unet.named_parameters():
        if "proj_out" in name or "conv_out" in name:
            nn.init.normal_(p, std=0.1)
    return unet.eval()


def _inputs(width: int = 16):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 8, 8, generator=g)
    t = torch.tensor([10, 70])
    context = torch.randn(2, 5, width, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    return x, t, dict(context=context, context_mask=mask)


def _adapter(unet: nn.Module, seed: int = 4) -> IPAdapter:
    torch.manual_seed(seed)
    return IPAdapter.for_unet(unet, E, num_tokens=3)


def test_processor_matches_diffusers_ip_adapter_processor():
    """Z = Attn(Q, K, V) + scale * Attn(Q, K', V') as diffusers' IPAdapterAttnProcessor2_0."""
    from diffusers.models.attention_processor import Attention as DiffusersAttention
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0

    torch.manual_seed(0)
    ours = Attention(16, 8, heads=2, dim_head=8, bias=False)
    processor = IPAdapterAttnProcessor.from_attention(ours, scale=0.7)
    for p in processor.parameters():
        nn.init.normal_(p, std=0.3)  # differ from the text projections
    ours.set_processor(processor)
    theirs = DiffusersAttention(16, 8, heads=2, dim_head=8, bias=False)
    ref = IPAdapterAttnProcessor2_0(16, 8, num_tokens=(3,), scale=0.7)
    with torch.no_grad():
        for name in ("to_q", "to_k", "to_v"):
            getattr(theirs, name).weight.copy_(getattr(ours, name).weight)
        theirs.to_out[0].load_state_dict(ours.to_out.state_dict())
        ref.to_k_ip[0].weight.copy_(processor.to_k_ip.weight)
        ref.to_v_ip[0].weight.copy_(processor.to_v_ip.weight)
    theirs.set_processor(ref)
    x, context, tokens = torch.randn(2, 6, 16), torch.randn(2, 5, 8), torch.randn(2, 3, 8)
    got = ours(x, context, **{IP_TOKENS: tokens})
    want = theirs(x, encoder_hidden_states=(context, [tokens]))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_scale_zero_and_no_image_leave_the_base_bit_identical():
    unet = _unet()
    x, t, cond = _inputs()
    base = unet(x, t, **cond)
    adapter = _adapter(unet)
    adapter.attach(unet)
    tokens = adapter.image_tokens(torch.randn(2, E))
    assert torch.equal(unet(x, t, **cond), base)  # no image tokens
    adapter.set_scale(0.0)
    assert torch.equal(unet(x, t, **cond, cross_attention_kwargs={IP_TOKENS: tokens}), base)


def test_the_image_reaches_the_output_at_positive_scale():
    unet = _unet()
    x, t, cond = _inputs()
    base = unet(x, t, **cond)
    adapter = _adapter(unet)
    adapter.attach(unet)
    adapter.set_scale(0.5)
    embeds = torch.randn(2, E, requires_grad=True)
    a = unet(x, t, **cond, cross_attention_kwargs={IP_TOKENS: adapter.image_tokens(embeds)})
    b = unet(x, t, **cond, cross_attention_kwargs={IP_TOKENS: adapter.image_tokens(-embeds)})
    assert (a - base).abs().max() > 1e-3 and (a - b).abs().max() > 1e-3
    a.square().sum().backward()
    assert embeds.grad.abs().sum() > 0  # through image_proj and every to_k_ip / to_v_ip
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adapter.parameters())


def test_file_keeps_image_proj_and_ip_adapter_and_round_trips(tmp_path):
    unet = _unet()
    adapter = _adapter(unet)
    with torch.no_grad():
        for p in adapter.parameters():
            p.add_(0.05 * torch.randn_like(p))
    folder = save_ip_adapter(tmp_path / "ip", adapter, unet)
    keys = set(load_file(folder / "adapter.safetensors"))
    assert {k.split(".")[0] for k in keys} == {"image_proj", "ip_adapter"}
    # diffusers' layout: the projection's proj / norm, then to_k_ip / to_v_ip per cross-attention
    # layer, numbered by the layer's place among all attention processors (attn2: 1, 3, ...)
    assert {"image_proj.proj.weight", "image_proj.norm.weight", "ip_adapter.1.to_k_ip.weight",
            "ip_adapter.3.to_v_ip.weight"} <= keys  # fmt: skip
    fresh = copy.deepcopy(_unet())
    loaded = load_adapter(folder, {"unet": fresh}, "ip_adapter", scale=0.8)
    adapter.attach(unet)
    adapter.set_scale(0.8)
    x, t, cond = _inputs()
    embeds = torch.randn(2, E)
    want = unet(x, t, **cond, cross_attention_kwargs={IP_TOKENS: adapter.image_tokens(embeds)})
    got = fresh(x, t, **cond, cross_attention_kwargs={IP_TOKENS: loaded.image_tokens(embeds)})
    assert torch.equal(got, want)
    assert all(torch.equal(a, b) for a, b in zip(adapter.state_dict().values(),
                                                loaded.state_dict().values()))  # fmt: skip


def test_an_adapter_for_another_base_or_a_missing_folder_is_one_line(tmp_path):
    folder = save_ip_adapter(tmp_path / "ip", _adapter(_unet()), _unet())
    with pytest.raises(HwaksanError, match="for another base"):
        load_adapter(folder, {"unet": _unet(channels=(16, 16))}, "ip_adapter")
    with pytest.raises(HwaksanError, match="for another base"):
        load_adapter(folder, {"unet": _unet(width=8)}, "ip_adapter")
    with pytest.raises(HwaksanError):
        load_adapter(tmp_path / "nope", {"unet": _unet()}, "ip_adapter")


def _text_encoder(width: int = 16) -> MiniCLIPTextModel:
    torch.manual_seed(1)
    config = MiniCLIPTextConfig(vocab=shapes_vocabulary(), max_length=8, width=width, layers=1,
                                heads=2)  # fmt: skip
    return MiniCLIPTextModel(config).eval().requires_grad_(False)


def _recipe(unet):
    from hwaksan.train.diffusion import DiffusionRecipe

    adapter = _adapter(unet)
    model = IPAdapterModel(unet, adapter)
    prompts = ImagePrompts(_text_encoder(), torch.randn(2, E), drop_prob=0.05,
                           position_captions=0.5)  # fmt: skip
    recipe = DiffusionRecipe(model, hk.NoiseSchedule.cosine(100), (3, 8, 8), conditioner=prompts,
                             num_samples=0)  # fmt: skip
    recipe.trainable = adapter
    return recipe, adapter


def test_training_changes_the_adapter_and_leaves_the_frozen_base_bit_identical(tmp_path):
    unet = _unet()
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    recipe, adapter = _recipe(unet)
    start = {k: v.clone() for k, v in adapter.state_dict().items()}
    g = torch.Generator().manual_seed(5)
    data = ReferencedImages(torch.randn(6, 3, 8, 8, generator=g), [(i, "a red circle")
                            for i in range(6)], torch.randn(6, E, generator=g),
                            ["in the center"] * 6)  # fmt: skip
    config = TrainConfig(out_dir=str(tmp_path), steps=3, batch_size=4, progress=False,
                         ema_decay=None, checkpoint_every=10)  # fmt: skip
    train(recipe, data, config)
    after = unet.state_dict()
    base = [k for k in before if ".processor." not in k]
    assert all(torch.equal(before[k], after[k]) for k in base)
    assert any(not torch.equal(start[k], v) for k, v in adapter.state_dict().items())


def test_text_image_and_both_are_each_dropped_five_percent_of_the_time():
    _, adapter = _recipe(_unet())
    prompts = ImagePrompts(_text_encoder(), torch.randn(2, E), drop_prob=0.05)
    n = 40_000
    torch.manual_seed(0)
    batch = {"caption": ["a red circle"] * n, "position_caption": [""] * n,
             "image_embeds": torch.ones(n, E)}  # fmt: skip
    dropped = prompts.drop(batch)
    text_off = torch.tensor([c == "" for c in dropped["caption"]])
    image_off = dropped["image_embeds"].abs().sum(1) == 0
    for share in ((text_off & ~image_off), (image_off & ~text_off), (text_off & image_off)):
        assert abs(share.float().mean().item() - 0.05) < 0.006


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """shapes_t2i_64 and a fresh IP-Adapter folder for it (its image projection perturbed)."""
    pipe = hk.load("shapes_t2i_64")
    torch.manual_seed(0)
    adapter = IPAdapter.for_unet(pipe.unet, 128, num_tokens=4)
    folder = save_ip_adapter(tmp_path_factory.mktemp("ip") / "ip", adapter, pipe.unet)
    return pipe, folder


def _reference():
    from hwaksan.data.shapes import ShapesConfig, render_batch

    images, _ = render_batch(1, seed=5, config=ShapesConfig(resolution=64, max_objects=1))
    return hk.images.to_pil(images)[0]


def test_pipeline_image_prompt_at_scale_zero_is_the_base_and_above_it_is_not(shipped):
    pipe, folder = shipped
    run = dict(steps=2, seed=0, prompt="", guidance_scale=3.0, output_type="pt", progress=False)
    base = pipe.generate(2, **run)
    pipe.load_ip_adapter(folder)
    try:
        pipe.set_ip_adapter_scale(0.0)
        assert torch.equal(pipe.generate(2, ip_adapter_image=_reference(), **run), base)
        pipe.set_ip_adapter_scale(1.0)
        prompted = pipe.generate(2, ip_adapter_image=_reference(), **run)
        assert (prompted - base).abs().max() > 1e-3
        with pytest.raises(HwaksanError, match="ip_adapter_image must be"):
            pipe.generate(2, ip_adapter_image="picture.png", **run)
        with pytest.raises(HwaksanError, match="ip_adapter_image must be"):
            pipe.generate(2, ip_adapter_image=[_reference()] * 3, **run)
    finally:
        pipe.unload_ip_adapter()
    assert torch.equal(pipe.generate(2, **run), base)
    pipe.load_ip_adapter(folder)
    with pytest.raises(HwaksanError, match="unload_ip_adapter"):
        pipe.save(folder.parent / "model")  # the base's folder would not load again
    pipe.unload_ip_adapter()
    with pytest.raises(HwaksanError, match="no IP-Adapter is loaded"):
        pipe.set_ip_adapter_scale(0.5)
    with pytest.raises(HwaksanError, match="unknown input"):
        pipe.generate(2, ip_adapter_image=_reference(), **run)


def test_cli_trains_resumes_and_generates_with_an_image_prompt(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from hwaksan.cli import main

    monkeypatch.chdir(tmp_path)
    _reference().save("ref.png")
    run = ["train-ip-adapter", "--scenes", "8", "--batch-size", "4", "--checkpoint-every", "1",
           "--warmup", "0", "--out", "run"]  # fmt: skip
    first = CliRunner().invoke(main, [*run, "--steps", "1"])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(main, [*run, "--steps", "2"])
    assert again.exit_code == 2 and "--resume" in again.output  # never over a run silently
    resumed = CliRunner().invoke(main, [*run, "--steps", "2", "--resume"])
    assert resumed.exit_code == 0 and "trained 2 steps" in resumed.output, resumed.output
    generate = ["generate", "", "--model", "shapes_t2i_64", "-n", "2", "--steps", "2",
                "--ip-adapter", "run", "--ip-adapter-image", "ref.png",
                "--out", "g.png"]  # fmt: skip
    result = CliRunner().invoke(main, generate)
    assert result.exit_code == 0 and (tmp_path / "g.png").exists(), result.output
    for bad, fragment in [
        (["--ip-adapter", "run", "--ip-adapter-image", "missing.png"], "does not exist"),
        (["--ip-adapter", "run", "--ip-adapter-image", "run/log.csv"], "not an image PIL can"),
        (["--ip-adapter", "nope", "--ip-adapter-image", "ref.png"], "nope"),
        (["--ip-adapter", "run/model"], "go together"),
    ]:
        result = CliRunner().invoke(main, [*generate[:8], *bad, "--out", "g.png"])
        assert result.exit_code == 2 and fragment in result.output, (bad, result.output)
        assert len(result.output.strip().splitlines()) == 1


def test_diffusers_reads_the_files_image_proj_as_its_image_projection(tmp_path):
    """diffusers' own converter (`_convert_ip_adapter_image_proj_to_diffusers`) builds its
    `ImageProjection` from the file's `image_proj.*` keys; it makes the same image tokens."""
    from diffusers.loaders.unet import UNet2DConditionLoadersMixin

    unet = _unet()
    adapter = IPAdapter.for_unet(unet, E, num_tokens=4)  # diffusers' converter assumes 4 tokens
    folder = save_ip_adapter(tmp_path / "ip", adapter, unet)
    tensors = load_file(folder / "adapter.safetensors")
    image_proj = {k.removeprefix("image_proj."): v for k, v in tensors.items()
                  if k.startswith("image_proj.")}  # fmt: skip
    convert = UNet2DConditionLoadersMixin._convert_ip_adapter_image_proj_to_diffusers
    theirs = convert(None, image_proj, low_cpu_mem_usage=False)
    embeds = torch.randn(3, E)
    torch.testing.assert_close(theirs(embeds), adapter.image_tokens(embeds))
