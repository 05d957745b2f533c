"""Small stand-ins for the training tests: a conv denoiser with the U-Net's call signature."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset


class TinyDenoiser(nn.Module):
    """model(x, t, class_labels=None) -> same shape as x; a few thousand parameters."""

    def __init__(self, channels: int = 1, width: int = 16, num_classes: int | None = None) -> None:
        super().__init__()
        self.time = nn.Linear(1, width)
        self.label = nn.Embedding(num_classes + 1, width) if num_classes else None
        self.num_classes = num_classes
        self.conv_in = nn.Conv2d(channels, width, 3, padding=1)
        self.conv_mid = nn.Conv2d(width, width, 3, padding=1)
        self.conv_out = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, x, t, class_labels=None):
        emb = self.time(t.float().reshape(-1, 1) / 1000)
        if self.label is not None:
            if class_labels is None:
                class_labels = torch.full((x.shape[0],), self.num_classes, device=x.device)
            emb = emb + self.label(class_labels)
        h = torch.nn.functional.silu(self.conv_in(x) + emb[:, :, None, None])
        h = torch.nn.functional.silu(self.conv_mid(h))
        return self.conv_out(h)


class BlobDataset(Dataset):
    """n images [C, R, R] in [-1, 1]: a bright square whose position depends on the class."""

    def __init__(self, n: int = 64, channels: int = 1, resolution: int = 8, num_classes: int = 4):
        g = torch.Generator().manual_seed(0)
        self.labels = torch.randint(0, num_classes, (n,), generator=g)
        self.images = torch.full((n, channels, resolution, resolution), -1.0)
        half = resolution // 2
        for i, c in enumerate(self.labels.tolist()):
            y, x = (c // 2) * half, (c % 2) * half
            self.images[i, :, y : y + half, x : x + half] = 1.0
        self.images += 0.05 * torch.randn(self.images.shape, generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "class_id": int(self.labels[i])}
