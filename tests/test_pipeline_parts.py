"""`generate` runs a list of parts: a feature is a part appended, reading its own named inputs;
an input no part reads is a one-line error."""

from __future__ import annotations

import pytest
import torch

import hwaksan as hk
from hwaksan.errors import HwaksanError
from hwaksan.nets import UNet, unet_tiny
from hwaksan.pipeline import Part, Pipeline, Plan
from hwaksan.sampling import sample


class Damped(Part):
    """A tiny guide: the prediction times `damping`, and a per-image offset it adds to x."""

    inputs = ("damping",)

    def __init__(self):
        self.batches = []

    def prepare(self, pipe, plan: Plan, inputs: dict):
        damping = inputs.get("damping")
        if damping is None:
            return None
        plan.per_image["offset"] = torch.arange(plan.n, dtype=torch.float32)  # (n,)

        def wrap(model, part):
            offset = plan.per_image["offset"][part]  # (b,)
            self.batches.append(offset.tolist())
            return lambda x, t, **c: damping * model(x, t, **c) + 0.01 * offset[:, None, None, None]

        return wrap


def _pipe() -> Pipeline:
    torch.manual_seed(0)
    unet = UNet(unet_tiny(in_channels=1, resolution=8, num_classes=3, attention_resolutions=()))
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return Pipeline(
        unet=unet.eval(), schedule=hk.NoiseSchedule.cosine(100), prediction_type="epsilon",
        image_shape=(1, 8, 8), num_classes=3, steps=3,
    )  # fmt: skip


def test_an_appended_part_reads_its_input_and_wraps_each_batch():
    pipe = _pipe()
    damped = Damped()
    pipe.parts.append(damped)
    plain = pipe.generate(5, seed=1, class_labels=[2], output_type="pt")
    assert torch.equal(pipe.generate(5, seed=1, class_labels=[2], output_type="pt"), plain)
    ours = pipe.generate(5, seed=1, class_labels=[2], damping=0.5, output_type="pt", batch_size=2)
    assert damped.batches == [[0.0, 1.0], [2.0, 3.0], [4.0]]  # each batch sees its own rows
    offset = 0.01 * torch.arange(5.0)[:, None, None, None]
    x_T = torch.randn((5, 1, 8, 8), generator=torch.Generator().manual_seed(1))

    def by_hand(x, t, class_labels):
        return 0.5 * pipe.unet(x, t, class_labels=class_labels) + offset

    expected = sample(by_hand, (5, 1, 8, 8), schedule=pipe.schedule, steps=3,
                      prediction_type="epsilon", timestep_spacing="trailing", x_T=x_T,
                      cond={"class_labels": torch.full((5,), 2)})  # fmt: skip
    torch.testing.assert_close(ours, expected.clamp(-1, 1))
    assert not torch.allclose(ours, plain)


def test_an_input_no_part_reads_is_a_one_line_error_naming_what_the_model_reads():
    with pytest.raises(HwaksanError, match="unknown input.*'promt'.*reads class_labels, "):
        _pipe().generate(1, promt="a red circle")


def test_a_callback_sees_every_step_of_every_batch_and_may_replace_x():
    pipe = _pipe()
    seen = []
    plain = pipe.generate(3, seed=1, batch_size=2, output_type="pt")

    def watch(step):
        seen.append((step.index, step.x.shape[0]))

    same = pipe.generate(3, seed=1, batch_size=2, output_type="pt", callback=watch)
    assert torch.equal(plain, same)  # watching changes nothing
    assert seen == [(0, 2), (1, 2), (2, 2), (0, 1), (1, 1), (2, 1)]  # 3 steps, batches of 2 + 1
    pinned = pipe.generate(2, seed=1, output_type="pt", callback=lambda step: step.x * 0)
    assert torch.equal(pinned, torch.zeros_like(pinned))  # the last step's x replaced by zeros
    with pytest.raises(HwaksanError, match="callback must be a function"):
        pipe.generate(1, callback=3)
