"""`hwaksan export-diffusers`: each exported model, loaded by diffusers, gives our outputs."""

import json

import pytest
import torch
from click.testing import CliRunner

import hwaksan as hk
from hwaksan.cli import main
from hwaksan.errors import HwaksanError
from hwaksan.interop.export import export_diffusers

diffusers = pytest.importorskip("diffusers")


def random_pipeline(schedule, prediction_type, spacing, sampler="ddim", **unet):
    """A tiny pixel model with every weight random (the zero-initialised output conv too)."""
    cfg = dict(in_channels=3, resolution=8, channels=(8, 16), attention_resolutions=(4,),
               num_heads=2, norm_groups=4)  # fmt: skip
    model = hk.UNet(hk.UNetConfig(**{**cfg, **unet})).eval()
    torch.manual_seed(0)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return hk.Pipeline(
        unet=model, schedule=schedule, prediction_type=prediction_type, image_shape=(3, 8, 8),
        sampler=sampler, timestep_spacing=spacing, num_classes=unet.get("num_classes"),
    )  # fmt: skip


def run_theirs(folder, cls, steps, seed, batch=2) -> torch.Tensor:
    """diffusers' pipeline on an exported folder: images (B, C, H, W) in [0, 1]."""
    ref = cls.from_pretrained(folder)
    ref.set_progress_bar_config(disable=True)
    images = ref(batch_size=batch, generator=torch.Generator().manual_seed(seed),
                 num_inference_steps=steps, output_type="np").images  # fmt: skip
    return torch.from_numpy(images).permute(0, 3, 1, 2)


def max_diff(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return ((ours + 1) / 2 - theirs).abs().max().item()


CASES = {
    "cosine-v-trailing": (hk.NoiseSchedule.cosine(1000), "v_prediction", "trailing", {}),
    "linear-eps-leading-add": (
        hk.NoiseSchedule.linear(1000),
        "epsilon",
        "leading",
        dict(use_scale_shift_norm=False),
    ),
    "three-levels-one-head": (
        hk.NoiseSchedule.scaled_linear(1000, 0.00085, 0.012),
        "sample",
        "linspace",
        dict(channels=(8, 16, 16), attention_resolutions=(8, 2), num_heads=1, layers_per_block=2),
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", list(CASES))
def test_exported_pixel_model_runs_the_same_in_ddim_pipeline(case, tmp_path):
    schedule, prediction_type, spacing, unet = CASES[case]
    pipe = random_pipeline(schedule, prediction_type, spacing, **unet)
    export_diffusers(pipe, tmp_path / "out")
    theirs = run_theirs(tmp_path / "out", diffusers.DDIMPipeline, steps=5, seed=4)
    ours = pipe.generate(2, steps=5, seed=4, output_type="pt")
    assert theirs.std() > 0.05  # images, not a constant
    assert max_diff(ours, theirs) < 1e-4
    # and read back by hwaksan, the same images again
    again = hk.load(tmp_path / "out", device="cpu").generate(2, steps=5, seed=4, output_type="pt")
    assert (again - ours).abs().max() < 1e-4


def test_ddpm_sampler_exports_a_ddpm_pipeline(tmp_path):
    pipe = random_pipeline(hk.NoiseSchedule.linear(1000), "epsilon", "leading", sampler="ddpm")
    export_diffusers(pipe, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "model_index.json").read_text())["_class_name"] == (
        "DDPMPipeline"
    )
    theirs = run_theirs(tmp_path / "out", diffusers.DDPMPipeline, steps=6, seed=5)
    assert max_diff(pipe.generate(2, steps=6, seed=5, output_type="pt"), theirs) < 1e-4


def test_class_conditional_unet_keeps_its_null_class(tmp_path):
    pipe = random_pipeline(hk.NoiseSchedule.cosine(1000), "v_prediction", "trailing",
                           num_classes=3)  # fmt: skip
    export_diffusers(pipe, tmp_path / "out")
    unet = diffusers.UNet2DModel.from_pretrained(tmp_path / "out", subfolder="unet")
    x, t, labels = torch.randn(4, 3, 8, 8), torch.tensor([0, 10, 500, 999]), torch.arange(4)
    with torch.no_grad():  # label 3 is the null class classifier-free guidance drops to
        diff = pipe.unet(x, t, class_labels=labels) - unet(x, t, class_labels=labels).sample
    assert diff.abs().max() < 1e-4
    back = hk.load(tmp_path / "out", device="cpu")
    assert back.num_classes == 3
    args = dict(steps=4, seed=1, class_labels=[0, 2], guidance_scale=2.0, output_type="pt")
    assert (back.generate(2, **args) - pipe.generate(2, **args)).abs().max() < 1e-4


def test_shipped_model_through_the_cli(tmp_path):
    out = tmp_path / "shapes-diffusers"
    result = CliRunner().invoke(main, ["export-diffusers", "shapes", str(out)])
    assert result.exit_code == 0, result.output
    theirs = run_theirs(out, diffusers.DDIMPipeline, steps=4, seed=2)
    ours = hk.load("shapes", device="cpu").generate(2, steps=4, seed=2, output_type="pt")
    assert max_diff(ours, theirs) < 1e-4


def test_latent_model_exports_an_ldm_pipeline_decoder_only(tmp_path):
    pipe = hk.load("shapes_ldm", device="cpu")
    with pytest.raises(HwaksanError, match="encoder does not map onto diffusers' AutoencoderKL"):
        export_diffusers(pipe, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    export_diffusers(pipe, tmp_path / "out", decoder_only=True)
    theirs = run_theirs(tmp_path / "out", diffusers.LDMPipeline, steps=3, seed=6, batch=1)
    ours = pipe.generate(1, steps=3, seed=6, output_type="pt")
    # diffusers' VAE GroupNorms take eps 1e-6 where ours take 1e-5: the only difference
    assert max_diff(ours, theirs) < 1e-4


def test_autoencoder_alone_decodes_the_same(tmp_path):
    out = tmp_path / "vae"
    args = ["export-diffusers", "autoencoder_kl", str(out), "--decoder-only"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    ours = hk.load_autoencoder("autoencoder_kl", "cpu")
    theirs = diffusers.AutoencoderKL.from_pretrained(out)
    z = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (ours.decode(z) - theirs.decode(z).sample).abs().max().item()
    assert diff / 2 < 1e-4  # in [0, 1] image units


@pytest.mark.parametrize(
    "model, message",
    [
        ("shapes_t2i", "cross-attention"),
        ("digits", "UNet2DModel has one head width"),
        ("autoencoder_vq", "does not map"),
    ],
)
def test_models_that_do_not_map_are_one_line_errors(model, message, tmp_path):
    result = CliRunner().invoke(main, ["export-diffusers", model, str(tmp_path / "out")])
    assert result.exit_code == 2
    assert message in result.output and result.output.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_refuses_to_write_into_a_full_folder(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    result = CliRunner().invoke(main, ["export-diffusers", "shapes", str(tmp_path / "out")])
    assert result.exit_code == 2 and "not an empty folder" in result.output
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def peft_onto(unet, file):
    """Our exported LoRA file read onto diffusers' UNet2DModel with peft (it has no loader)."""
    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
    from safetensors import safe_open

    with safe_open(str(file), "pt") as f:
        config = json.loads(f.metadata()["lora_adapter_metadata"])
        state = {k.removeprefix("unet."): f.get_tensor(k) for k in f.keys()}
    fields = ("r", "lora_alpha", "target_modules", "rank_pattern", "alpha_pattern")
    lora = LoraConfig(**{k: config[f"unet.{k}"] for k in fields})
    inject_adapter_in_model(lora, unet)
    assert not set_peft_model_state_dict(unet, state).unexpected_keys


def test_an_exported_lora_gives_our_outputs_on_diffusers_unet2d(tmp_path):
    from hwaksan.nets.adapters import inject_lora, lora_layers, lora_target_names

    pipe = random_pipeline(hk.NoiseSchedule.linear(1000), "epsilon", "leading")
    targets = lora_target_names(pipe.unet, ["to_q", "to_k", "to_v", "to_out", "conv1", "conv_out"])
    assert any(".attn." in t for t in targets) and any("conv1" in t for t in targets)
    inject_lora(pipe.unet, targets, r=2, lora_alpha=3.0)
    generator = torch.Generator().manual_seed(7)
    for layer in lora_layers(pipe.unet).values():
        torch.nn.init.normal_(layer.lora_B["default"].weight, std=0.2, generator=generator)
    before = pipe.generate(2, steps=5, seed=4, output_type="pt")
    export_diffusers(pipe, tmp_path / "out")
    file = tmp_path / "out" / "pytorch_lora_weights.safetensors"
    assert file.is_file()

    ref = diffusers.DDIMPipeline.from_pretrained(tmp_path / "out")
    ref.set_progress_bar_config(disable=True)
    call = dict(batch_size=2, num_inference_steps=5, output_type="np")
    base = ref(generator=torch.Generator().manual_seed(4), **call).images
    peft_onto(ref.unet, file)
    theirs = ref(generator=torch.Generator().manual_seed(4), **call).images
    theirs, base = (torch.from_numpy(x).permute(0, 3, 1, 2) for x in (theirs, base))
    assert max_diff(before, theirs) < 1e-4
    pipe.disable_lora()  # the folder's base weights are the model without its LoRA
    assert max_diff(pipe.generate(2, steps=5, seed=4, output_type="pt"), base) < 1e-4
    assert (theirs - base).abs().max() > 1e-2


def test_export_cli_writes_a_lora_beside_the_model(tmp_path):
    from hwaksan.nets.adapters import inject_lora, lora_target_names

    pipe = random_pipeline(hk.NoiseSchedule.linear(1000), "epsilon", "leading")
    pipe.save(tmp_path / "model")
    inject_lora(pipe.unet, lora_target_names(pipe.unet, ["to_q", "to_v"]), r=2, lora_alpha=2.0)
    pipe.save_lora_weights(tmp_path / "lora")
    out = tmp_path / "out"
    args = ["export-diffusers", str(tmp_path / "model"), str(out), "--lora", str(tmp_path / "lora")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    from safetensors import safe_open

    with safe_open(str(out / "pytorch_lora_weights.safetensors"), "pt") as f:
        keys = sorted(f.keys())
    assert keys and all(
        k.startswith("unet.mid_block.attentions.0.to_")
        or k.startswith("unet.down_blocks.1.attentions.0.to_")
        or k.startswith("unet.up_blocks.0.attentions.")
        for k in keys
    ), keys
