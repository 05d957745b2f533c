"""The shapes world as a torch Dataset: item i is scene i of a seeded stream, rendered on demand."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from hwaksan.data.shapes.renderer import edge_map, render, scene_rng, segmentation_mask, to_tensor
from hwaksan.data.shapes.scene import Scene, sample_scene
from hwaksan.data.shapes.watermark import stamp_watermark
from hwaksan.data.shapes.world import ALL_SHAPES, COLORS, SIZES, ShapesConfig

MAX_OBJECTS = 3


class ShapesDataset(Dataset):
    """`length` scenes drawn from `config`, deterministic in (seed, index); every field collates.

    item: image [3, H, W] in [-1, 1], caption (str), class_id, num_objects,
    objects [3, 3] long (index in ALL_SHAPES, COLORS, SIZES; rows past num_objects are -1),
    boxes [3, 4] float (x0, y0, x1, y1 in pixels; -1 padded), edges [1, H, W] in {0, 1},
    mask [H, W] long (0 background, k + 1 object k).
    """

    def __init__(
        self,
        config: ShapesConfig | None = None,
        length: int = 10_000,
        seed: int = 0,
        control: bool = True,  # add the edges and mask control maps
    ) -> None:
        self.config = config or ShapesConfig()
        self.length, self.seed, self.control = length, seed, control

    def __len__(self) -> int:
        return self.length

    def scene(self, index: int) -> Scene:
        """The ground-truth scene of item `index`."""
        if not 0 <= index < self.length:
            raise IndexError(index)
        return sample_scene(scene_rng(self.seed, index), self.config)

    def __getitem__(self, index: int) -> dict:
        scene = self.scene(index)
        image = render(scene)
        if self.config.watermark:
            stamp_watermark(image)
        objects = torch.full((MAX_OBJECTS, 3), -1, dtype=torch.long)
        boxes = torch.full((MAX_OBJECTS, 4), -1.0)
        for k, o in enumerate(scene.objects):
            objects[k] = torch.tensor(
                [ALL_SHAPES.index(o.shape), COLORS.index(o.color), SIZES.index(o.size)]
            )
            boxes[k] = torch.tensor(o.box)
        item = dict(image=to_tensor(image), caption=scene.caption, class_id=scene.class_id,
                    num_objects=len(scene.objects), objects=objects, boxes=boxes)  # fmt: skip
        if self.control:
            item["edges"] = torch.from_numpy(edge_map(image))[None]
            item["mask"] = torch.from_numpy(segmentation_mask(scene))
        return item
