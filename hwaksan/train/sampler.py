"""A data order that is seeded, sharded across processes and resumable from a saved position.

Epoch e visits the examples in `randperm(n, seed + e)`; process `rank` of `world_size` takes
every `world_size`-th index of that order (disjoint shards, equal lengths). The position is two
integers, so a resumed run sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import torch


class ShardedEpochSampler:
    """Hands out batches of dataset indices, epoch after epoch, without end."""

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.seed, self.rank, self.world_size = n, seed, rank, world_size
        self.shard_len = n // world_size
        self.epoch, self.position = 0, 0
        self._order = self._shard(0)

    def _shard(self, epoch: int) -> list[int]:
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch))
        return order[self.rank :: self.world_size][: self.shard_len].tolist()

    def next_indices(self, batch_size: int) -> list[int]:
        """The next `batch_size` indices of this process's shard, rolling into the next epoch."""
        out: list[int] = []
        while len(out) < batch_size:
            if self.position == self.shard_len:
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._shard(self.epoch)
            take = min(batch_size - len(out), self.shard_len - self.position)
            out += self._order[self.position : self.position + take]
            self.position += take
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
        self._order = self._shard(self.epoch)


def collate(items: list) -> dict | tuple:
    """Batch dataset items (dicts or tuples): stack tensors and numbers, keep the rest as lists."""
    if isinstance(items[0], dict):
        return {k: _stack([it[k] for it in items]) for k in items[0]}
    return tuple(_stack(list(column)) for column in zip(*items))


def _stack(values: list):
    first = values[0]
    if torch.is_tensor(first):
        return torch.stack(values)
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return torch.tensor(values)
    return values  # captions, object lists, ...
