"""Few-step distillation (issue 16): the consistency boundary, progressive distillation's target
and one halving on an exact Gaussian model, consistency training's curriculum, the consistency
sampler against diffusers, the consistency distances, distilled model folders saved and loaded
(the `hwaksan distill` command end to end: test_distill_command.py)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import hwaksan as hk
from hwaksan.diffusion.consistency import (
    consistency_scalings,
    ct_discretization,
    ct_weight,
    lognormal_level_probs,
)
from hwaksan.diffusion.exact import GaussianDenoiser
from hwaksan.nets import UNet, UNetConfig
from hwaksan.nets.consistency import ConsistencyUNet
from hwaksan.sampling.consistency import consistency_table, sigma_range
from hwaksan.train.conditioners import ClassLabels, Unconditional
from hwaksan.train.consistency import ConsistencyTraining, karras_levels
from hwaksan.train.loop import TrainConfig, train
from hwaksan.train.progressive import ProgressiveDistillation, student_grid

SCHEDULE = hk.NoiseSchedule.cosine(1000)


def tiny_unet(num_classes: int | None = 3) -> UNet:
    torch.manual_seed(0)
    config = UNetConfig(in_channels=1, resolution=8, channels=(8, 16), attention_resolutions=(),
                        num_heads=1, norm_groups=4, num_classes=num_classes)  # fmt: skip
    unet = UNet(config).eval()
    with torch.no_grad():  # the zero-initialized output layer would make every output 0
        for p in unet.parameters():
            if not p.any():
                p.normal_(0, 0.1)
    return unet


def test_boundary_condition_holds_exactly():
    cm = ConsistencyUNet.from_unet(tiny_unet(), SCHEDULE)
    sigma_min = torch.tensor([cm.config.sigma_min], dtype=torch.float64)
    c_skip, c_out = consistency_scalings(sigma_min, cm.config.sigma_min, cm.config.sigma_data)
    assert c_skip.item() == 1.0 and c_out.item() == 0.0
    assert cm.sigma(torch.zeros(1)).item() == cm.config.sigma_min  # t = 0 is sigma_min
    x_t = torch.randn(4, 1, 8, 8)
    out = cm(x_t, torch.zeros(4), class_labels=torch.tensor([0, 1, 2, 3]))
    alpha = (1 + sigma_min**2).rsqrt().float()
    assert torch.equal(out, x_t / alpha)  # f(x, sigma_min) = x, the network ignored
    # away from the boundary f is the teacher's own x0 estimate, up to the shifted sigma
    t = torch.full((4,), 500.0)
    v = cm.unet(x_t, t, class_labels=torch.tensor([0, 1, 2, 3]))
    a, s = SCHEDULE.alpha_sigma_at(t, x_t)
    teacher_x0 = a * x_t - s * v
    got = cm(x_t, t, class_labels=torch.tensor([0, 1, 2, 3]))
    assert torch.allclose(got, teacher_x0, atol=2e-2)


def gaussian_teacher():
    mu = torch.tensor([0.5, -0.3, 0.1, 0.8]).reshape(1, 2, 2)
    s = torch.tensor([0.2, 0.5, 0.3, 0.1]).reshape(1, 2, 2)
    return GaussianDenoiser(mu, s, SCHEDULE, prediction_type="v_prediction"), mu, s


def test_progressive_target_is_two_teacher_ddim_steps():
    """The student's target: the x0 whose one DDIM step lands where the exact teacher's two
    DDIM steps (hk.sample, diffusers' DDIM) land."""
    teacher, _, _ = gaussian_teacher()
    recipe = ProgressiveDistillation(nn.Identity(), teacher, SCHEDULE, (1, 2, 2), Unconditional(),
                                     student_steps=2, num_samples=0)  # fmt: skip
    x_T = torch.randn(8, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    seen = []
    hk.sample(teacher, (8, 1, 2, 2), schedule=SCHEDULE, sampler="ddim", steps=4,
              prediction_type="v_prediction", timestep_spacing="trailing", x_T=x_T,
              callback=lambda step: seen.append(step))  # fmt: skip
    assert [int(s.timestep) for s in seen] == [999, 749, 499, 249]
    for level, (start, after_two) in enumerate([(x_T, seen[1]), (seen[1].x, seen[3])]):
        sigma, sigma_next = recipe.sigmas[2 * level], recipe.sigmas[2 * level + 2]
        alpha = (1 + sigma**2).rsqrt().float()
        x = start / alpha  # VE x at the student's level
        x0 = recipe.target(x, torch.full((8,), 2 * level), {})
        one_step = x0 + (sigma_next / sigma).float() * (x - x0)  # the student's DDIM step
        landed = after_two.x / after_two.alpha.float()  # the teacher's, in VE terms
        assert torch.allclose(one_step, landed, rtol=1e-4, atol=1e-4)


class PerLevelAffine(nn.Module):
    """v = a[t] * x_t + b[t] per pixel: holds the exact Gaussian answer at every level."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.zeros(1000, 1, 2, 2))
        self.b = nn.Parameter(torch.zeros(1000, 1, 2, 2))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        i = t.round().long()
        return self.a[i] * x_t + self.b[i]


class GaussianData(torch.utils.data.Dataset):
    def __init__(self, mu, s, n=512):
        self.x = mu + s * torch.randn(n, *mu.shape, generator=torch.Generator().manual_seed(0))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"image": self.x[i]}


def test_one_halving_reproduces_the_teachers_two_steps(tmp_path):
    """A student trained for one halving on the Gaussian toy samples in 2 steps what the exact
    teacher samples in 4 (both deterministic DDIM from the same noise)."""
    teacher, mu, s = gaussian_teacher()
    student = PerLevelAffine()
    recipe = ProgressiveDistillation(student, teacher, SCHEDULE, (1, 2, 2), Unconditional(),
                                     student_steps=2, num_samples=0)  # fmt: skip
    config = TrainConfig(out_dir=str(tmp_path), steps=400, batch_size=128, lr=0.05, ema_decay=None,
                         grad_clip=None, progress=False, checkpoint_every=10**6)  # fmt: skip
    train(recipe, GaussianData(mu, s), config)
    x_T = torch.randn(256, 1, 2, 2, generator=torch.Generator().manual_seed(3))
    common = dict(schedule=SCHEDULE, sampler="euler", prediction_type="v_prediction",
                  timestep_spacing="trailing", x_T=x_T)  # fmt: skip
    want = hk.sample(teacher, (256, 1, 2, 2), steps=4, **common)
    got = hk.sample(student, (256, 1, 2, 2), steps=2, **common)
    assert (got - want).abs().max() < 2e-2
    before = hk.sample(teacher, (256, 1, 2, 2), steps=2, **common)
    assert (before - want).abs().max() > 10 * (got - want).abs().max()  # the halving mattered


def test_student_grid_is_every_other_teacher_level():
    for steps in (1, 2, 4, 8, 16, 32, 64):
        teacher_t, teacher_sigmas = student_grid(SCHEDULE, 2 * steps)
        t, sigmas = student_grid(SCHEDULE, steps)
        assert torch.equal(t, teacher_t[::2]) and torch.equal(sigmas, teacher_sigmas[::2])


def test_consistency_training_curriculum():
    """N(k) = min(s0 2^floor(k / K'), s1) + 1, K' = floor(K / (log2(s1 / s0) + 1)) (Song &
    Dhariwal 2023, eq. 9): eight equal stages 11, 21, ..., 1281 over K steps."""
    K = 800
    table = [ct_discretization(k, K) for k in range(K + 50)]
    stages = [table[i] for i in range(0, K, 100)]
    assert stages == [10 * 2**j + 1 for j in range(8)]
    assert all(table[i] == table[i - i % 100] for i in range(K))  # constant inside a stage
    assert set(table[K:]) == {1281}
    assert ct_discretization(0, 100, s0=2, s1=8) == 3 and ct_discretization(99, 100, 2, 8) == 9


def test_consistency_training_levels_and_noise_distribution():
    t, sigmas = karras_levels(SCHEDULE, 41)
    sigma_min, sigma_max = sigma_range(SCHEDULE)
    assert t[0] == 0 and sigmas[0] == sigma_min and math.isclose(sigmas[-1], sigma_max)
    assert bool((sigmas[1:] > sigmas[:-1]).all())
    # sigma^(1/7) evenly spaced (Karras et al. 2022, eq. 5)
    assert torch.allclose(sigmas.pow(1 / 7).diff(), sigmas.pow(1 / 7).diff()[0].expand(40))
    probs = lognormal_level_probs(sigmas)
    assert math.isclose(float(probs.sum()), 1.0, rel_tol=1e-9)
    # against sampling log sigma ~ N(-1.1, 2^2) and binning
    draws = (torch.randn(200_000, generator=torch.Generator().manual_seed(0)) * 2 - 1.1).exp()
    inside = draws[(draws >= sigmas[0]) & (draws < sigmas[-1])]
    counts = torch.bucketize(inside, sigmas.float(), right=True) - 1
    empirical = torch.bincount(counts, minlength=40).double() / len(inside)
    assert (empirical - probs).abs().max() < 5e-3
    assert torch.allclose(ct_weight(sigmas[:-1], sigmas[1:]), 1 / sigmas.diff())


def test_consistency_sampler_matches_diffusers():
    diffusers = pytest.importorskip("diffusers")
    cm = ConsistencyUNet.from_unet(tiny_unet(None), SCHEDULE)
    sigma_min, sigma_max = sigma_range(SCHEDULE)
    for steps in (1, 2, 4):
        scheduler = diffusers.CMStochasticIterativeScheduler(
            num_train_timesteps=steps + 1, sigma_min=sigma_min, sigma_max=sigma_max,
            sigma_data=1.0, rho=7.0, clip_denoised=False,
        )  # fmt: skip
        scheduler.set_timesteps(steps)
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(2, 1, 8, 8, generator=generator) * scheduler.init_noise_sigma
        ours_t, ours_sigmas = consistency_table(SCHEDULE, steps)
        for i, t in enumerate(scheduler.timesteps):
            x_t = scheduler.scale_model_input(x, t)  # x / sqrt(sigma^2 + 1): the VP input
            assert math.isclose(float(scheduler.sigmas[i]), float(ours_sigmas[i]), rel_tol=1e-6)
            F = -cm.unet(x_t, ours_t[i].expand(2))
            x = scheduler.step(F, t, x, generator=generator).prev_sample
        ours = hk.sample(cm, (2, 1, 8, 8), schedule=SCHEDULE, sampler="consistency", steps=steps,
                         prediction_type="sample",
                         generator=torch.Generator().manual_seed(0))  # fmt: skip
        assert torch.allclose(ours, x, rtol=1e-4, atol=1e-4), steps


@pytest.mark.parametrize("kind", ["consistency", "progressive"])
def test_distilled_folder_round_trip(kind, tmp_path):
    """A distilled folder says its sampler and steps: loaded, it samples as made, no arguments."""
    unet = tiny_unet()
    if kind == "consistency":
        net, fields = ConsistencyUNet.from_unet(unet, SCHEDULE), dict(prediction_type="sample")
        fields.update(sampler="consistency", steps=2)
    else:
        net, fields = unet, dict(prediction_type="v_prediction", sampler="euler", steps=4)
    pipe = hk.Pipeline(unet=net, schedule=SCHEDULE, image_shape=(1, 8, 8), num_classes=3,
                       timestep_spacing="trailing", **fields)  # fmt: skip
    pipe.save(tmp_path / "m")
    loaded = hk.load(tmp_path / "m", device="cpu")
    assert type(loaded.unet) is type(net)
    assert (loaded.sampler, loaded.steps) == (fields["sampler"], fields["steps"])
    labels = [0, 1, 2]
    want = pipe.generate(3, seed=1, class_labels=labels, output_type="pt", progress=False)
    got = loaded.generate(3, seed=1, class_labels=labels, output_type="pt", progress=False)
    assert torch.equal(got, want)
    explicit = loaded.generate(3, sampler=fields["sampler"], steps=fields["steps"], seed=1,
                               class_labels=labels, output_type="pt", progress=False)  # fmt: skip
    assert torch.equal(got, explicit)


def test_consistency_training_trains_on_the_loop(tmp_path):
    """CT from scratch: the loss is finite, each step logs its curriculum level count."""
    cm = ConsistencyUNet.from_unet(tiny_unet(), SCHEDULE)
    images = torch.rand(32, 1, 8, 8) * 2 - 1

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return 32

        def __getitem__(self, i):
            return {"image": images[i], "class_id": i % 3}

    recipe = ConsistencyTraining(cm, SCHEDULE, (1, 8, 8), ClassLabels(3, 0.0), total_steps=8,
                                 s0=2, s1=8, num_samples=0)  # fmt: skip
    config = TrainConfig(out_dir=str(tmp_path), steps=8, batch_size=8, ema_decay=None,
                         progress=False, log_every=1, checkpoint_every=10**6)  # fmt: skip
    train(recipe, Data(), config)
    log = (tmp_path / "log.csv").read_text().splitlines()
    column = log[0].split(",").index("num_levels")
    assert [float(row.split(",")[column]) for row in log[1:]] == [3, 3, 5, 5, 9, 9, 9, 9]


def test_consistency_distances():
    """l2 is the mean squared error, pseudo-Huber the paper's closed form, lpips the shapes
    perceptual net's LPIPS (0 on equal images, gray images read as RGB); all per sample [B]."""
    from hwaksan.diffusion.consistency import pseudo_huber
    from hwaksan.nets.perceptual import shapes_perceptual
    from hwaksan.train.consistency import consistency_distance

    torch.manual_seed(0)
    a, b = torch.rand(3, 3, 16, 16) * 2 - 1, torch.rand(3, 3, 16, 16) * 2 - 1
    assert torch.allclose(consistency_distance("l2")(a, b), (a - b).square().mean((1, 2, 3)))
    assert torch.equal(consistency_distance("pseudo_huber")(a, b), pseudo_huber(a, b))
    lpips = consistency_distance("lpips")
    assert torch.allclose(lpips(a, b), shapes_perceptual()(a, b))
    assert lpips(a, a).abs().max() < 1e-6 and bool((lpips(a, b) > 0.01).all())
    gray = a[:, :1]
    assert torch.allclose(
        lpips(gray, b[:, :1]), lpips(gray.expand(-1, 3, -1, -1), b[:, :1].expand(-1, 3, -1, -1))
    )


def test_teacher_guidance_is_folded_into_the_target():
    """guidance_scale w: the teacher's x0 is the classifier-free mix uncond + w (cond - uncond)
    of its x0 estimates (linear in the prediction), in both distillation recipes."""
    from hwaksan.train.consistency import ConsistencyDistillation
    from hwaksan.train.teacher import x0_at

    unet = tiny_unet()
    labels = torch.tensor([0, 1, 2, 0])
    cond, null = {"class_labels": labels}, {"class_labels": torch.full_like(labels, 3)}
    x = torch.randn(4, 1, 8, 8)
    pd = ProgressiveDistillation(unet, unet, SCHEDULE, (1, 8, 8), ClassLabels(3, 0.0),
                                 student_steps=4, guidance_scale=3.0, num_samples=0)  # fmt: skip
    i = torch.full((4,), 3)
    sigma, t = pd.sigmas[i], pd.t[i]
    parts = [x0_at(unet, x, sigma, t, "v_prediction", c) for c in (cond, null)]
    want = parts[1] + 3.0 * (parts[0] - parts[1])
    assert (want - parts[0]).abs().max() > 1e-2  # guidance changes it
    assert torch.allclose(pd.teacher_x0(x, i, cond), want, atol=1e-5)
    cd = ConsistencyDistillation(ConsistencyUNet.from_unet(unet, SCHEDULE), unet, SCHEDULE,
                                 (1, 8, 8), ClassLabels(3, 0.0), guidance_scale=3.0,
                                 num_samples=0)  # fmt: skip
    assert torch.allclose(cd.teacher_x0(x, sigma, t, cond), want, atol=1e-5)
