"""Long API calls show a progress bar by default at a terminal only; `progress=False` hides it."""

from __future__ import annotations

import io

import pytest
import torch

import hwaksan as hk


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _zero_model(x, t):
    return torch.zeros_like(x)


@pytest.mark.parametrize(
    "stream, progress, shown",
    [(_Terminal, None, True), (_Terminal, False, False), (io.StringIO, None, False),
     (io.StringIO, True, True)],
)  # fmt: skip
def test_sample_shows_a_bar_at_a_terminal_unless_told_not_to(monkeypatch, stream, progress, shown):
    err = stream()
    monkeypatch.setattr("sys.stderr", err)
    x = hk.sample(_zero_model, (1, 1, 2, 2), schedule=hk.NoiseSchedule.cosine(100), steps=3,
                  progress=progress, generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert x.shape == (1, 1, 2, 2)
    assert ("3/3" in err.getvalue()) == shown, err.getvalue()


def test_generate_shows_a_bar_at_a_terminal_by_default(monkeypatch):
    from hwaksan.nets import build_unet
    from hwaksan.pipeline import Pipeline

    torch.manual_seed(0)
    unet = build_unet("tiny", resolution=8, channels=(16, 32), norm_groups=8).eval()
    pipe = Pipeline(unet=unet, schedule=hk.NoiseSchedule.cosine(100), image_shape=(3, 8, 8),
                    prediction_type="epsilon", steps=2)  # fmt: skip
    err = _Terminal()
    monkeypatch.setattr("sys.stderr", err)
    pipe.generate(1, output_type="pt")
    assert "2/2" in err.getvalue()
    err.truncate(0)
    pipe.generate(1, output_type="pt", progress=False)
    assert "2/2" not in err.getvalue()
