"""Tests for ``training``: the seeded data order behind exact resume and the size of run_for's time-bounded chunks.

The loop itself is exercised through ``nntools.Experiment`` in tests/test_nntools.py (resume, NaN losses, history)."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import training
from checkpoint import CheckpointSchedule


class AugmentedData(torch.utils.data.Dataset):
    """Random augmentation drawn from torch's, python's and NumPy's global generators."""

    def __len__(self) -> int:
        return 20

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = torch.full((6,), float(i)) + 0.1 * torch.randn(6)
        if random.random() < 0.5:
            x = x.flip(0)
        return x * float(1 + np.random.rand()), i


# ----------------------------------------------------------------------------- data order and augmentation
def test_sampler_is_a_pure_resumable_function_of_seed_and_epoch() -> None:
    sampler = training.ResumableSampler(20, seed=3)
    sampler.set_epoch(2)
    whole = list(sampler)
    sampler.set_epoch(2, start=8)
    assert list(sampler) == whole[8:]
    sampler.set_epoch(3)
    assert [i for i, _ in sampler] != [i for i, _ in whole]
    assert sorted(i for i, _ in whole) == list(range(20))
    shards = []
    for rank in range(2):  # DDP: ranks take interleaved positions of the same permutation
        shard = training.ResumableSampler(20, seed=3, rank=rank, world_size=2)
        shard.set_epoch(2, start=4)
        shards.append(list(shard))
    assert shards[0] == whole[4::2] and shards[1] == whole[5::2]


def test_seeded_dataset_is_reproducible_and_leaves_global_rng_alone() -> None:
    data = training.SeededDataset(AugmentedData())
    torch.manual_seed(1)
    random.seed(1)
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    first = data[(3, 12345)][0]
    assert torch.equal(torch.get_rng_state(), before[0]) and random.getstate() == before[1]
    assert np.array_equal(np.random.get_state()[1], before[2])
    torch.manual_seed(99)
    assert torch.equal(data[(3, 12345)][0], first)
    assert not torch.equal(data[(3, 54321)][0], first)


# ----------------------------------------------------------------------------- time-bounded chunks
@pytest.mark.parametrize(("iteration", "align", "every", "seconds_left", "per_iteration", "expected"), [
    (0, None, None, None, None, 100),    # no limit: the whole chunk
    (30, 50, None, None, None, 20),      # ends at the next multiple of align
    (30, None, 40, None, None, 10),      # ends when the next checkpoint is due (last one at iteration 0)
    (0, None, None, 60.0, None, 5),      # speed unknown: a short first chunk measures it
    (0, None, None, 10.0, 0.5, 19),      # what fits in 95 % of the time left
    (0, None, None, 0.1, 0.5, 0),        # the time is up
])
def test_chunk_size(iteration: int, align: int | None, every: int | None, seconds_left: float | None,
                    per_iteration: float | None, expected: int) -> None:
    schedule = CheckpointSchedule(every, None, 0)
    assert training.chunk_size(iteration, 100, align, schedule, seconds_left, per_iteration) == expected
