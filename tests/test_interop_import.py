"""diffusers folders read by `hk.load`: the same images as diffusers' own pipelines, from the same
noise, on tiny random networks the test builds and saves with `save_pretrained` (no download)."""

import json
import shutil
import sys

import numpy as np
import pytest
import torch

import hwaksan as hk
from hwaksan.errors import HwaksanError

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

PROMPT, NEGATIVE = "a red circle", "a blue square"
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def tiny_tokenizer(folder):
    """A letter-level CLIP BPE tokenizer from a vocab.json and merges.txt written here."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in [*LETTERS, *(c + "</w>" for c in LETTERS), "re", "red</w>"]:
        vocab[token] = len(vocab)
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\nr e\nre d</w>\n")
    tokenizer = transformers.CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16
    )
    return tokenizer, len(vocab)


def stable_diffusion_folder(folder):
    """A Stable-Diffusion-format folder: tiny UNet2DConditionModel, AutoencoderKL, CLIP text
    encoder and tokenizer, and SD's own DDIM scheduler config (steps_offset 1, alpha_0 kept)."""
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(8, 16), norm_num_groups=4, cross_attention_dim=32,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=2,
    )  # fmt: skip
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=4, sample_size=16, scaling_factor=0.7,
    )  # fmt: skip
    tokenizer, vocab_size = tiny_tokenizer(folder.parent / "tokenizer_source")
    text_encoder = transformers.CLIPTextModel(
        transformers.CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=16,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )  # fmt: skip
    )
    scheduler = diffusers.DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        set_alpha_to_one=False, steps_offset=1,
    )  # fmt: skip
    pipe = diffusers.StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.save_pretrained(folder)
    return folder


def ddpm_folder(folder):
    """An unconditional pixel DDPM folder, as `DDPMPipeline.save_pretrained` writes one."""
    torch.manual_seed(1)
    unet = diffusers.UNet2DModel(
        sample_size=8, in_channels=3, out_channels=3, layers_per_block=1,
        block_out_channels=(8, 16), norm_num_groups=4, attention_head_dim=4,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    )  # fmt: skip
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=1000, clip_sample=True)
    diffusers.DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    return stable_diffusion_folder(tmp_path_factory.mktemp("sd") / "model")


@pytest.fixture(scope="module")
def pixel_folder(tmp_path_factory):
    return ddpm_folder(tmp_path_factory.mktemp("ddpm") / "model")


def max_diff(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """Largest difference of images in [0, 1] (ours come in [-1, 1])."""
    return ((ours + 1) / 2 - theirs).abs().max().item()


SCHEDULERS = {
    "ddim": diffusers.DDIMScheduler,
    "dpmpp_2m": diffusers.DPMSolverMultistepScheduler,
    "euler": diffusers.EulerDiscreteScheduler,
}


@pytest.mark.parametrize("sampler", list(SCHEDULERS))
def test_stable_diffusion_folder_matches_diffusers(sd_folder, sampler):
    ref = diffusers.StableDiffusionPipeline.from_pretrained(sd_folder)
    ref.scheduler = SCHEDULERS[sampler].from_config(ref.scheduler.config)
    ref.set_progress_bar_config(disable=True)
    latents = torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(0))
    theirs = ref(
        [PROMPT] * 2, negative_prompt=[NEGATIVE] * 2, num_inference_steps=6, guidance_scale=3.0,
        latents=latents, output_type="pt",
    ).images  # fmt: skip  # (2, 3, 16, 16) in [0, 1]
    pipe = hk.load(sd_folder, device="cpu")
    assert pipe.image_shape == (3, 16, 16) and pipe.latent_scale == pytest.approx(0.7)
    args = dict(sampler=sampler, steps=6, seed=0, prompt=PROMPT, guidance_scale=3.0)
    ours = pipe.generate(2, negative_prompt=NEGATIVE, output_type="pt", **args)
    assert max_diff(ours, theirs) < 1e-4
    # the negative prompt reaches the network: without it the images differ
    assert max_diff(pipe.generate(2, output_type="pt", **args), theirs) > 1e-3


def test_pixel_ddpm_folder_matches_ddim_and_ddpm_pipelines(pixel_folder):
    pipe = hk.load(pixel_folder, device="cpu")
    assert (pipe.sampler, pipe.image_shape) == ("ddpm", (3, 8, 8))
    for ref_class, sampler in [(diffusers.DDIMPipeline, "ddim"), (diffusers.DDPMPipeline, "ddpm")]:
        ref = ref_class.from_pretrained(pixel_folder)
        ref.set_progress_bar_config(disable=True)
        theirs = ref(
            batch_size=2, generator=torch.Generator().manual_seed(3), num_inference_steps=8,
            output_type="np",
        ).images  # fmt: skip  # (2, 8, 8, 3) in [0, 1]
        theirs = torch.from_numpy(theirs).permute(0, 3, 1, 2)
        ours = pipe.generate(2, sampler=sampler, steps=8, seed=3, output_type="pt")
        assert max_diff(ours, theirs) < 1e-4, sampler


def test_an_imported_model_is_not_saved_as_a_hwaksan_folder(pixel_folder, tmp_path):
    with pytest.raises(HwaksanError, match="runs diffusers' networks from"):
        hk.load(pixel_folder, device="cpu").save(tmp_path / "copy")


def test_generate_cli_reads_a_diffusers_folder(sd_folder, tmp_path):
    from click.testing import CliRunner

    from hwaksan.cli import main

    out = tmp_path / "grid.png"
    args = ["generate", PROMPT, "--model", str(sd_folder), "-n", "2", "--steps", "2"]
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file()


def broken_copy(folder, tmp_path):
    copy = tmp_path / "broken"
    shutil.copytree(folder, copy)
    return copy


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def check_error(folder, match):
    with pytest.raises(HwaksanError, match=match) as caught:
        hk.load(folder, device="cpu")
    assert "\n" not in str(caught.value)


def test_bad_folders_are_one_line_errors(sd_folder, pixel_folder, tmp_path):
    check_error(sd_folder / "unet", "holds one diffusers UNet2DConditionModel")
    broken = broken_copy(sd_folder, tmp_path)
    shutil.rmtree(broken / "scheduler")
    check_error(broken, r"lacks scheduler/")
    broken = broken_copy(pixel_folder, tmp_path / "a")
    edit_json(broken / "model_index.json", unet=["diffusers", "UNet3DConditionModel"])
    check_error(broken, "UNet3DConditionModel is not supported")
    broken = broken_copy(pixel_folder, tmp_path / "b")
    for weights in (broken / "unet").glob("*.safetensors"):
        weights.rename(weights.with_suffix(".bin"))
    check_error(broken, "never unpickles")
    broken = broken_copy(pixel_folder, tmp_path / "c")
    edit_json(broken / "scheduler" / "scheduler_config.json", thresholding=True)
    check_error(broken, "thresholding is not supported")
    broken = broken_copy(sd_folder, tmp_path / "d")
    shutil.rmtree(broken / "tokenizer")
    check_error(broken, "lacks tokenizer/")
    broken = broken_copy(pixel_folder, tmp_path / "e")
    (broken / "model_index.json").write_text("[" * 100_000)
    check_error(broken, "is not readable JSON")
    (broken / "model_index.json").write_text('{"unet": ["diffusers", "UNet2DModel"]}')
    check_error(broken, "names no scheduler")
    broken = broken_copy(sd_folder, tmp_path / "f")
    edit_json(broken / "model_index.json", text_encoder=["transformers", "T5EncoderModel"])
    check_error(broken, "T5EncoderModel is not supported")


def test_without_diffusers_a_one_line_error(pixel_folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)
    check_error(pixel_folder, r"pip install 'hwaksan\[diffusers\]'")


def kohya_lora(path, unet_layers, text_layers, rank=2):
    """A kohya-format LoRA file (sd-scripts' keys: "lora_unet_<layer with _>", "lora_down",
    "lora_up" and a scalar alpha) for the named layers of a diffusers U-Net and CLIP encoder."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(5)
    tensors = {}
    for prefix, layers in [("lora_unet_", unet_layers), ("lora_te_", text_layers)]:
        for name, module in layers.items():
            key = prefix + name.replace(".", "_")
            if isinstance(module, torch.nn.Conv2d):
                k = module.kernel_size
                down = (rank, module.in_channels, *k)
                up = (module.out_channels, rank, 1, 1)
            else:
                down, up = (rank, module.in_features), (module.out_features, rank)
            tensors[f"{key}.lora_down.weight"] = 0.3 * torch.randn(down, generator=generator)
            tensors[f"{key}.lora_up.weight"] = 0.3 * torch.randn(up, generator=generator)
            tensors[f"{key}.alpha"] = torch.tensor(1.0)  # scale alpha / rank = 0.5
    save_file(tensors, str(path))
    return path


def test_a_kohya_lora_on_an_imported_folder_changes_it_as_diffusers_loader_does(
    sd_folder, tmp_path
):
    ref = diffusers.StableDiffusionPipeline.from_pretrained(sd_folder)
    ref.set_progress_bar_config(disable=True)
    block = "down_blocks.0.attentions.0"
    unet_layers = {f"{block}.transformer_blocks.0.{a}.{p}": None for a in ("attn1", "attn2")
                   for p in ("to_q", "to_k", "to_v", "to_out.0")}  # fmt: skip
    unet_layers.update({f"{block}.proj_in": None, "up_blocks.1.resnets.0.conv1": None,
                        f"{block}.transformer_blocks.0.ff.net.2": None})  # fmt: skip
    unet_layers = {name: ref.unet.get_submodule(name) for name in unet_layers}
    text_layers = {f"encoder.layers.{i}.self_attn.{p}": None for i in (0, 1)
                   for p in ("q_proj", "v_proj", "out_proj")}  # fmt: skip
    # kohya writes CLIP's layers under "text_model." (transformers 4's CLIPTextModel wrapper)
    text_layers = {f"text_model.{name}": ref.text_encoder.get_submodule(name)
                   for name in text_layers}  # fmt: skip
    lora = kohya_lora(tmp_path / "kohya.safetensors", unet_layers, text_layers)

    latents = torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(0))
    call = dict(negative_prompt=[NEGATIVE] * 2, num_inference_steps=4, guidance_scale=3.0,
                latents=latents, output_type="pt")  # fmt: skip
    before = ref([PROMPT] * 2, **call).images
    ref.load_lora_weights(str(lora))
    theirs = ref([PROMPT] * 2, **call).images  # (2, 3, 16, 16) in [0, 1]
    assert (theirs - before).abs().max() > 1e-2  # the LoRA changes diffusers' images

    pipe = hk.load(sd_folder, device="cpu")
    pipe.load_lora_weights(lora)
    from hwaksan.nets.adapters import lora_layers

    assert len(lora_layers(pipe.unet)) == len(unet_layers)
    assert len(lora_layers(pipe.text_encoder)) == len(text_layers)
    args = dict(sampler="ddim", steps=4, seed=0, prompt=PROMPT, guidance_scale=3.0)
    ours = pipe.generate(2, negative_prompt=NEGATIVE, output_type="pt", **args)
    assert max_diff(ours, theirs) < 1e-4

    # saved by us in peft's keys (diffusers' names, no wrapper), diffusers' loader reads it back
    saved = pipe.save_lora_weights(tmp_path / "ours")
    again = diffusers.StableDiffusionPipeline.from_pretrained(sd_folder)
    again.set_progress_bar_config(disable=True)
    again.load_lora_weights(str(saved))
    assert (again([PROMPT] * 2, **call).images - theirs).abs().max() < 1e-5


def test_textual_inversion_files_of_other_tools_load_as_diffusers_loads_them(sd_folder, tmp_path):
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(8)
    save_file(
        {"<cat>": torch.randn(32, generator=generator)},
        str(tmp_path / "learned_embeds.safetensors"),
    )  # diffusers: one vector
    save_file(
        {"emb_params": torch.randn(2, 32, generator=generator)}, str(tmp_path / "dog.safetensors")
    )  # Automatic1111 in safetensors: two vectors
    prompt = "a <cat> by a <dog>"
    ref = diffusers.StableDiffusionPipeline.from_pretrained(sd_folder)
    ref.set_progress_bar_config(disable=True)
    ref.load_textual_inversion(str(tmp_path / "learned_embeds.safetensors"))
    ref.load_textual_inversion(str(tmp_path / "dog.safetensors"), token="<dog>")
    latents = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(0))
    theirs = ref(prompt, num_inference_steps=4, guidance_scale=3.0, latents=latents,
                 output_type="pt").images  # fmt: skip

    pipe = hk.load(sd_folder, device="cpu")
    assert pipe.load_textual_inversion(tmp_path / "learned_embeds.safetensors") == ["<cat>"]
    assert pipe.load_adapter(tmp_path / "dog.safetensors") == ["dog", "dog_1"]  # the file's name
    pipe = hk.load(sd_folder, device="cpu")
    pipe.load_adapter(tmp_path / "learned_embeds.safetensors")  # read by what it holds
    assert pipe.load_textual_inversion(tmp_path / "dog.safetensors", token="<dog>") == [
        "<dog>", "<dog>_1"]  # fmt: skip
    ours = pipe.generate(1, prompt=prompt, sampler="ddim", steps=4, seed=0, guidance_scale=3.0,
                         output_type="pt")  # fmt: skip
    assert max_diff(ours, theirs) < 1e-4
    plain = hk.load(sd_folder, device="cpu").generate(
        1, prompt=prompt, sampler="ddim", steps=4, seed=0, guidance_scale=3.0, output_type="pt"
    )
    assert max_diff(plain, theirs) > 1e-3
    save_file({"a": torch.zeros(32), "b": torch.zeros(32)}, str(tmp_path / "two.safetensors"))
    with pytest.raises(HwaksanError, match="has 2 tensors"):
        pipe.load_textual_inversion(tmp_path / "two.safetensors")
    (tmp_path / "emb.pt").write_bytes(b"pickle")
    with pytest.raises(HwaksanError, match="only .safetensors"):
        pipe.load_textual_inversion(tmp_path / "emb.pt")


def test_image_inputs_and_layout_guidance_run_on_an_imported_folder(sd_folder):
    from PIL import Image

    from hwaksan.guidance.attention_maps import CrossAttentionMaps

    pipe = hk.load(sd_folder, device="cpu")
    args = dict(prompt="r left of b", steps=4, seed=1, output_type="pt")
    plain = pipe.generate(1, **args)  # (1, 3, 16, 16) in [-1, 1]
    image = hk.load(sd_folder, device="cpu").generate(1, prompt="red", steps=3, seed=0)[0]
    assert pipe.generate(1, image=image, strength=0.5, **args).shape == plain.shape  # img2img
    mask = Image.new("L", image.size)
    mask.paste(255, (0, 0, 8, 8))
    painted = pipe.generate(1, image=image, mask_image=mask, **{**args, "output_type": "pil"})[0]
    kept = torch.ones(16, 16, dtype=torch.bool)
    kept[:8, :8] = False
    ours, given = (torch.tensor(np.asarray(im)) for im in (painted, image))
    assert torch.equal(ours[kept], given[kept])  # RePaint: outside the mask exactly the input

    # layout guidance reads diffusers' own cross-attention: the recorded maps are diffusers'
    # attention scores, and the relation changes the images; afterwards nothing is left behind
    unet = pipe.unet.model
    layer = unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2  # the first one run
    seen = {}
    hook = layer.register_forward_hook(
        lambda m, args, kwargs, out: seen.update(x=args[0], **kwargs), with_kwargs=True
    )
    with torch.no_grad(), CrossAttentionMaps(pipe.unet) as recorder:
        pipe.unet(torch.randn(2, 4, 8, 8), torch.tensor([500, 500]),
                  context=torch.randn(2, 16, 32))  # fmt: skip
    hook.remove()
    x, context = seen["x"], seen["encoder_hidden_states"]  # (2, 64, 8), (2, 16, 32)
    q, k = layer.head_to_batch_dim(layer.to_q(x)), layer.head_to_batch_dim(layer.to_k(context))
    theirs = layer.get_attention_scores(q, k).view(2, layer.heads, 64, 16).mean(1)
    probs, size = recorder.maps[0]
    assert size == (8, 8) and (probs - theirs).abs().max() < 1e-6
    guided = pipe.generate(1, relations=[("r", "left of", "b")], layout_scale=1.0, **args)
    assert (guided - plain).abs().max() > 1e-2
    assert torch.equal(pipe.generate(1, **args), plain)
