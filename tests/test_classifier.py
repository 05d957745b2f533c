"""The noise-aware classifier: its shape, its folder (save, load, bad folders), its recipe on the
shared loop (it learns digits, and noise makes it less sure), and `hwaksan train-classifier`."""

import json

import pytest
import torch
from click.testing import CliRunner

import hwaksan as hk
from hwaksan.cli import main
from hwaksan.components import component_spec
from hwaksan.errors import HwaksanError
from hwaksan.nets.classifier import (
    NoisyClassifier,
    NoisyClassifierConfig,
    legacy_key_renames,
    load_classifier,
    save_classifier,
)
from hwaksan.train.classifier import ClassifierRun, run_classifier
from hwaksan.train.loop import TrainConfig


def _config(**kw) -> NoisyClassifierConfig:
    defaults = dict(in_channels=1, resolution=8, num_classes=10, channels=(8, 16), norm_groups=4,
                    num_heads=2, schedule=hk.NoiseSchedule.cosine(1000).to_config())  # fmt: skip
    return NoisyClassifierConfig(**{**defaults, **kw})


def test_logits_per_class_for_long_and_float_timesteps():
    net = NoisyClassifier(_config(attention_resolutions=(4,)))
    x = torch.randn(3, 1, 8, 8)
    assert net(x, torch.tensor([0, 500, 999])).shape == (3, 10)
    assert net(x, torch.tensor([0.0, 500.5, 999.0])).shape == (3, 10)
    assert net(x, torch.tensor(7)).shape == (3, 10)  # one t for the whole batch


def test_bad_shapes_and_config_keys_are_user_errors():
    with pytest.raises(HwaksanError, match="not divisible"):
        NoisyClassifier(_config(resolution=6, channels=(8, 16, 16)))
    with pytest.raises(HwaksanError, match="unknown classifier config keys"):
        NoisyClassifierConfig.from_dict({"resolution": 8, "widths": [8]})


def test_folder_round_trip_gives_the_same_logits(tmp_path):
    net = NoisyClassifier(_config()).eval()
    torch.nn.init.normal_(net.head.weight)
    save_classifier(net, tmp_path / "clf", class_names=[str(i) for i in range(10)])
    loaded = load_classifier(tmp_path / "clf")
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 300])
    assert torch.equal(loaded(x, t), net(x, t))
    assert json.loads((tmp_path / "clf" / "config.json").read_text())["class_names"][3] == "3"
    assert not any(p.requires_grad for p in loaded.parameters())
    assert not list(tmp_path.glob("clf/*.pt*"))  # safetensors + JSON only


def test_bad_classifier_folders_are_one_line_errors(tmp_path):
    with pytest.raises(HwaksanError, match="config.json is missing"):
        load_classifier(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_kind": "hwaksan.diffusion"}))
    with pytest.raises(HwaksanError, match="not a noise-aware classifier"):
        load_classifier(tmp_path)
    save_classifier(NoisyClassifier(_config()), tmp_path / "clf")
    (tmp_path / "clf" / "classifier.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(HwaksanError, match="not a readable safetensors"):
        load_classifier(tmp_path / "clf")


def test_a_pipeline_carries_its_classifier_through_its_folder(tmp_path):
    unet = hk.UNet(hk.UNetConfig(in_channels=1, resolution=8, channels=(8, 16), norm_groups=4,
                                 num_heads=2, attention_resolutions=(4,)))  # fmt: skip
    classifier = NoisyClassifier(_config()).eval()
    torch.nn.init.normal_(classifier.head.weight)
    pipe = hk.Pipeline(unet, hk.NoiseSchedule.cosine(1000), "v_prediction", (1, 8, 8),
                       classifier=classifier)  # fmt: skip
    assert component_spec(classifier)["class"] == "NoisyClassifier"
    pipe.save(tmp_path / "model")
    loaded = hk.load(tmp_path / "model")
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([1, 900])
    assert torch.equal(loaded.classifier(x, t), classifier(x, t))


def test_recipe_learns_digits_and_noise_makes_the_task_harder(tmp_path):
    """200 steps on 8x8 digits: far above chance (10%) on held-out digits at t = 0, and near
    chance once the noise has drowned the digit."""
    run = ClassifierRun(
        data="digits",
        resolution=8,
        channels=(16, 32),
        train=TrainConfig(
            out_dir=str(tmp_path / "run"),
            steps=200,
            batch_size=32,
            lr=3e-3,
            lr_warmup_steps=20,
            ema_decay=None,
            progress=False,
            checkpoint_every=1000,
        ),  # fmt: skip
    )
    classifier, result, accuracy = run_classifier(run)
    assert result.step == 200
    assert accuracy[0] > 0.6
    assert accuracy[0] - accuracy[900] > 0.3
    alphas = hk.NoiseSchedule.cosine(1000).sqrt_alphas_cumprod.float()
    assert torch.equal(load_classifier(tmp_path / "run" / "model").input_scale, alphas)
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert saved["config"]["schedule"]["beta_schedule"] == "cosine"
    assert saved["heldout_accuracy"]["0"] == accuracy[0]


def test_cli_trains_a_classifier_folder_and_rejects_bad_widths(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(main, ["train-classifier", "--data", "digits", "--resolution", "8",
                                  "--channels", "8,16", "--steps", "2", "--batch-size", "8",
                                  "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "held-out accuracy by t" in result.output
    assert load_classifier(out / "model").config.num_classes == 10
    bad = runner.invoke(main, ["train-classifier", "--channels", "8,x", "--out", str(out)])
    assert bad.exit_code == 2 and "must be widths" in bad.output


def test_input_is_scaled_by_alpha_t_so_no_noise_level_without_signal_has_a_gradient():
    """x_t is read as alpha_t x_t (linearly between entries for fractional t): at t = T - 1 of a
    cosine schedule (alpha ~ 1e-4) the gradient of log p(y | x_t) is ~1e4 times smaller than the
    same network's without the scale."""
    net = NoisyClassifier(_config()).eval()
    torch.nn.init.normal_(net.head.weight)
    x = torch.randn(2, 1, 8, 8)
    half = net.scaled_input(x, torch.tensor([0.5, 0.5]))
    net.input_scale.copy_(hk.NoiseSchedule.cosine(1000).sqrt_alphas_cumprod.float())
    torch.testing.assert_close(half, x)  # all ones before the recipe sets it
    mid = (net.input_scale[10] + net.input_scale[11]) / 2
    torch.testing.assert_close(net.scaled_input(x, torch.tensor([10.5, 10.5])), x * mid)

    def grad_norm(t: int) -> float:
        x_in = x.clone().requires_grad_(True)
        net(x_in, torch.tensor([t, t])).log_softmax(-1)[:, 0].sum().backward()
        return float(x_in.grad.norm())

    scaled = grad_norm(999)
    net.input_scale.fill_(1.0)
    assert scaled < 1e-3 * grad_norm(999)


def test_shipped_weights_saved_with_the_old_flat_keys_give_the_logits_they_gave():
    """The shipped classifier's file predates the shared `UNetEncoder` (keys `blocks.N`); renamed
    on load, its logits are those the code that wrote it computed (recorded at that commit)."""
    from safetensors.torch import load_file

    from hwaksan.registry import resolve

    saved = load_file(str(resolve("digits_classifier_noisy") / "classifier.safetensors"))
    assert any(k.startswith("blocks.") for k in saved)
    net = load_classifier("digits_classifier_noisy")
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    ref = torch.tensor([[-1.852568, -4.155709, 0.701357, -0.642064],
                        [-1.657086, -4.330547, -3.190602, -1.150254]])  # fmt: skip
    torch.testing.assert_close(net(x, torch.tensor([0, 250.5]))[:, :4], ref, atol=1e-4, rtol=0)


def test_old_keys_with_attention_and_two_layers_per_level_load_into_the_encoder():
    net = NoisyClassifier(_config(attention_resolutions=(8, 4), layers_per_block=2)).eval()
    torch.nn.init.normal_(net.head.weight)
    inverse = {new: old for old, new in legacy_key_renames(net.encoder).items()}
    old_keys = {}
    for key, value in net.state_dict().items():
        prefix = next((p for p in inverse if key.startswith(p)), "")
        old_keys[inverse.get(prefix, "") + key[len(prefix) :]] = value
    assert "blocks.1.attn.to_q.weight" in old_keys and "blocks.4.conv.weight" in old_keys
    fresh = NoisyClassifier(_config(attention_resolutions=(8, 4), layers_per_block=2)).eval()
    fresh.load_state_dict(old_keys)  # strict: every key found its new name
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 300])
    assert torch.equal(fresh(x, t), net(x, t))
    assert fresh.encoder.mid is None  # the classifier's trunk has no middle block
