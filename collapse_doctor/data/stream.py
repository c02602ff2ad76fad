"""The data order of a run: sample i of seed s is rebuilt from (s, i) alone, and batches are stacked
on a PAD canvas with a mask for the missing support pairs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from collapse_doctor.config import Config
from collapse_doctor.data.arc import Sample, Task, make_sample
from collapse_doctor.encoding import PAD


@dataclass
class Batch:
    query_input: torch.Tensor  # (B, S, S)
    query_target: torch.Tensor  # (B, S, S), IGNORE_INDEX outside the grid
    support_inputs: torch.Tensor  # (B, N, S, S)
    support_outputs: torch.Tensor  # (B, N, S, S)
    pair_mask: torch.Tensor  # (B, N) bool

    def to(self, device: torch.device) -> "Batch":
        return Batch(
            *(
                t.to(device)
                for t in (
                    self.query_input,
                    self.query_target,
                    self.support_inputs,
                    self.support_outputs,
                    self.pair_mask,
                )
            )
        )


def collate(samples: list[Sample]) -> Batch:
    """Stack samples; N is the most pairs in the batch, missing slots are PAD grids with mask False."""
    n = max(s.support_inputs.shape[0] for s in samples)
    size = samples[0].query_input.shape[-1]
    inputs = np.full((len(samples), n, size, size), PAD, dtype=np.int64)
    outputs = np.full_like(inputs, PAD)
    mask = np.zeros((len(samples), n), dtype=bool)
    for i, s in enumerate(samples):
        k = s.support_inputs.shape[0]
        inputs[i, :k], outputs[i, :k], mask[i, :k] = s.support_inputs, s.support_outputs, True
    query = np.stack([s.query_input for s in samples])
    target = np.stack([s.query_target for s in samples])
    return Batch(*(torch.from_numpy(a) for a in (query, target, inputs, outputs, mask)))


class SampleStream:
    """Sample number i of a run: task order reshuffled every pass over the tasks, augmentation from (seed, i).

    Any batch can be rebuilt from its index alone, so a resumed or parallel run sees the same data.
    """

    def __init__(self, tasks: list[Task], config: Config, seed: int):
        self.tasks, self.data, self.seed = tasks, config.data, seed
        self.canvas = config.model.max_grid_size
        self._orders: dict[int, np.ndarray] = {}

    def task_for(self, index: int) -> Task:
        epoch, position = divmod(index, len(self.tasks))
        if epoch not in self._orders:
            self._orders[epoch] = np.random.default_rng([self.seed, epoch, 1]).permutation(len(self.tasks))
        return self.tasks[int(self._orders[epoch][position])]

    def batch(self, batch_index: int, batch_size: int) -> Batch:
        first = batch_index * batch_size
        return collate(
            [
                make_sample(self.task_for(i), self.data, self.canvas, self.seed, i)
                for i in range(first, first + batch_size)
            ]
        )
