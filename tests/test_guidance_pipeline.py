"""Guidance through `Pipeline.generate` and `hwaksan sample`: attaching a classifier, the DDPM
mean-shift form, CFG scale 0 as the unconditional model, and one-line errors for misfits."""

import pytest
import torch
from click.testing import CliRunner

import hwaksan as hk
from hwaksan.cli import main
from hwaksan.errors import HwaksanError
from hwaksan.nets.classifier import NoisyClassifier, NoisyClassifierConfig, save_classifier
from hwaksan.sampling import timesteps as ts
from hwaksan.sampling.classifier_guidance import classifier_guidance
from hwaksan.sampling.denoiser import mean_prediction

SCHEDULE = hk.NoiseSchedule.cosine(1000)


def _randomise(net: torch.nn.Module) -> torch.nn.Module:
    """Make ADM's zero-initialised layers random, so inputs and labels reach the output."""
    torch.manual_seed(0)
    for module in net.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and not module.weight.any():
            torch.nn.init.normal_(module.weight, std=0.1)
    return net.eval().requires_grad_(False)


def _pipe(num_classes=None, classifier_classes=4, **classifier_kw) -> hk.Pipeline:
    unet = hk.UNet(hk.UNetConfig(
        in_channels=1, resolution=8, channels=(8, 16), norm_groups=4, num_heads=2,
        attention_resolutions=(4,), num_classes=num_classes,
    ))  # fmt: skip
    config = dict(in_channels=1, resolution=8, num_classes=classifier_classes, channels=(8, 16),
                  norm_groups=4, num_heads=2, schedule=SCHEDULE.to_config())  # fmt: skip
    classifier = NoisyClassifier(NoisyClassifierConfig(**{**config, **classifier_kw}))
    return hk.Pipeline(_randomise(unet), SCHEDULE, "v_prediction", (1, 8, 8), num_classes,
                       steps=5, classifier=_randomise(classifier))  # fmt: skip


def test_classifier_guidance_steers_an_unconditional_model_and_scale_zero_is_plain():
    pipe = _pipe()
    kw = dict(seed=0, output_type="pt")
    plain = pipe.generate(4, **kw)
    zero = pipe.generate(4, class_labels=[0, 1, 2, 3], classifier_scale=0.0, **kw)
    guided = pipe.generate(4, class_labels=[0, 1, 2, 3], classifier_scale=20.0, **kw)
    assert torch.equal(zero, plain)
    assert guided.shape == plain.shape and (guided - plain).abs().max() > 1e-3


def test_ddpm_in_the_pipeline_uses_the_mean_shift_form():
    pipe, labels = _pipe(), torch.tensor([0, 1, 2])
    images = pipe.generate(3, sampler="ddpm", seed=1, class_labels=labels, classifier_scale=5.0,
                           output_type="pt")  # fmt: skip
    model = classifier_guidance(
        mean_prediction(pipe.unet, 1), pipe.classifier, 5.0, labels, schedule=SCHEDULE,
        prediction_type="v_prediction",
        ddpm_timesteps=ts.discrete_timesteps(SCHEDULE, 5, pipe.timestep_spacing),
    )  # fmt: skip
    generator = torch.Generator().manual_seed(1)
    x_T = torch.randn((3, 1, 8, 8), generator=generator)
    expected = hk.sample(model, (3, 1, 8, 8), schedule=SCHEDULE, sampler="ddpm", steps=5,
                         prediction_type="v_prediction", timestep_spacing=pipe.timestep_spacing,
                         generator=generator, x_T=x_T).clamp(-1, 1)  # fmt: skip
    torch.testing.assert_close(images, expected, rtol=0, atol=1e-6)


def test_cfg_scale_zero_makes_a_conditional_model_unconditional():
    """The p(x) half of a condition-dropout model: what classifier guidance of it builds on."""
    pipe = _pipe(num_classes=4)
    null = pipe.generate(3, seed=2, output_type="pt")  # no labels: the null class
    zero = pipe.generate(3, seed=2, class_labels=[0, 1, 2], guidance_scale=0.0, output_type="pt")
    cond = pipe.generate(3, seed=2, class_labels=[0, 1, 2], output_type="pt")
    assert torch.equal(zero, null) and (cond - null).abs().max() > 1e-3


def test_misfit_classifiers_and_labels_are_one_line_errors():
    with pytest.raises(HwaksanError, match="knows 4 classes but the model 3"):
        _pipe(num_classes=3).generate(1, class_labels=[0], classifier_scale=1.0)
    with pytest.raises(HwaksanError, match="reads"):
        _pipe(resolution=16).generate(1, class_labels=[0], classifier_scale=1.0)
    with pytest.raises(HwaksanError, match="another noise schedule"):
        _pipe(schedule=hk.NoiseSchedule.linear(1000).to_config()).generate(
            1, class_labels=[0], classifier_scale=1.0
        )
    with pytest.raises(HwaksanError, match="needs class_labels"):
        _pipe(num_classes=4).generate(1, classifier_scale=1.0)  # the null class is no target
    with pytest.raises(HwaksanError, match="needs class_labels"):
        _pipe().generate(1, classifier_scale=1.0)
    pipe = _pipe()
    pipe.classifier = None
    with pytest.raises(HwaksanError, match="needs a classifier"):
        pipe.generate(1, class_labels=[0], classifier_scale=1.0)


def test_load_attaches_a_classifier_and_the_cli_samples_with_it(tmp_path):
    pipe = _pipe()
    classifier = pipe.classifier
    save_classifier(classifier, tmp_path / "clf")
    pipe.classifier = None
    pipe.save(tmp_path / "model")
    loaded = hk.load(tmp_path / "model", classifier=tmp_path / "clf")
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([1, 500])
    assert torch.equal(loaded.classifier(x, t), classifier(x, t))
    out = tmp_path / "grid.png"
    args = ["sample", str(tmp_path / "model"), "-n", "8", "--steps", "3", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--classifier", str(tmp_path / "clf"),
                                       "--classifier-scale", "3"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.exists()
    result = CliRunner().invoke(main, [*args, "--classifier-scale", "3"])
    assert result.exit_code == 2 and "needs a classifier" in result.output


def test_the_shipped_guidance_models_load_and_fit_together():
    """digits + digits_classifier_noisy (same classes, shape and schedule); shapes_cond knows the
    21 shape x color classes. Their quality is measured by benchmarks/guidance_sweep.py."""
    pipe = hk.load("digits", classifier="digits_classifier_noisy")
    images = pipe.generate(2, steps=3, class_labels=[3, 7], guidance_scale=0.0,
                           classifier_scale=4.0, output_type="pt")  # fmt: skip
    assert images.shape == (2, 1, 16, 16) and torch.isfinite(images).all()
    shapes_cond = hk.load("shapes_cond")
    assert shapes_cond.num_classes == 21 and shapes_cond.class_names[0] == "red circle"
    images = shapes_cond.generate(2, steps=3, class_labels=[0, 20], guidance_scale=3.0,
                                  output_type="pt")  # fmt: skip
    assert images.shape == (2, 3, 16, 16)
