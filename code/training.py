"""The epoch loop behind :class:`nntools.Experiment` (:class:`TrainingLoop`), and what it needs to be exact:

* reproducible data order: a permutation that is a pure function of (seed, epoch), resumable at any position
  (:class:`ResumableSampler`), every sample produced under a seed derived from (seed, epoch, position)
  (:class:`SeededDataset`);
* epochs of mini-batches (:meth:`TrainingLoop.run`), time-bounded chunks (:meth:`TrainingLoop.run_for`, sized by
  :func:`chunk_size`), validation (:meth:`TrainingLoop.evaluate`), the per-epoch and per-iteration history
  (:func:`flatten_numeric` for plots and progress lines), :class:`NonFiniteLossError` for a NaN/inf loss;
* DDP ranks kept in step: the rank (:func:`dist_info`), agreement on every decision to stop or save
  (:func:`any_rank`, :func:`min_over_ranks`, :func:`barrier`), :func:`stop_when_parent_dies` for workers of a
  killed launcher.

The checkpoint files are :class:`checkpoint.Checkpoint`'s; the model, the data and :meth:`TrainingLoop.save` are set
by :class:`nntools.Experiment`."""
from __future__ import annotations

import math
import os
import random
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
from checkpoint import Checkpoint, CheckpointSchedule, plain
from runtime import derive_seed
from torch.utils.data import DataLoader, Dataset, Sampler

if TYPE_CHECKING:  # nntools imports this module
    from nntools import Experiment, TrainingModel

try:  # tqdm is optional: without it there is simply no progress bar.
    from tqdm.auto import tqdm as _tqdm
except ImportError:  # pragma: no cover - depends on the environment
    _tqdm = None


class NonFiniteLossError(RuntimeError):
    """A loss (or parameter) became NaN or infinite; nothing was saved after it."""


# ----------------------------------------------------------------------------- DDP ranks kept in step
def dist_info() -> tuple[int, int]:
    """(rank, world_size); (0, 1) unless torch.distributed is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _collective_device(device: torch.device) -> torch.device:
    return device if dist.get_backend() == "nccl" else torch.device("cpu")


def any_rank(flag: bool, device: torch.device) -> bool:
    """``flag`` or-ed over all DDP ranks (all-reduce MAX), the same on every rank; just ``flag`` without DDP.

    Use it for every decision to stop (time limits): saving a checkpoint is collective, so ranks that disagree on
    whether to go on would wait for each other for ever. ``device``: this rank's training device."""
    if dist_info()[1] == 1:
        return bool(flag)
    value = torch.tensor([1.0 if flag else 0.0], device=_collective_device(device))
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def min_over_ranks(value: float, device: torch.device) -> float:
    """The smallest ``value`` over all DDP ranks (e.g. how many iterations still fit in a time limit)."""
    if dist_info()[1] == 1:
        return value
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=_collective_device(device))
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return tensor.item()


def barrier(device: torch.device) -> None:
    """Wait for every DDP rank (nothing without DDP)."""
    if dist_info()[1] > 1:
        if dist.get_backend() == "nccl":  # tells NCCL the rank's GPU (else it guesses, and may hang)
            dist.barrier(device_ids=[device.index])
        else:
            dist.barrier()


_watchdog_started = False


def stop_when_parent_dies(interval: float = 0.5) -> None:
    """Start a daemon thread that SIGKILLs this process once its parent (e.g. the torchrun launcher) is gone.

    Checkpoint writes are atomic, so stopping at any moment loses at most the work since the last checkpoint,
    whereas a worker orphaned by a killed launcher would keep writing into a folder a restarted run also uses.
    """
    global _watchdog_started
    if _watchdog_started:
        return
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="stop-when-parent-dies", daemon=True).start()
    _watchdog_started = True


# ----------------------------------------------------------------------------- seeded data order
class ResumableSampler(Sampler):
    """Per-epoch permutation that is a pure function of (seed, epoch), resumable at any position.

    Yields ``(dataset_index, sample_seed)`` pairs for :class:`SeededDataset`. Under DDP each
    rank takes the permutation positions ``start + rank, start + rank + world_size, ...``.
    """

    def __init__(self, length: int, seed: int, shuffle: bool = True, rank: int = 0,
                 world_size: int = 1, stream: str = "train") -> None:
        self.length, self.seed, self.shuffle = length, seed, shuffle
        self.rank, self.world_size, self.stream = rank, world_size, stream
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch and the global permutation position to start from."""
        self.epoch, self.start = epoch, start

    def permutation(self, epoch: int) -> list[int]:
        """The full (unsharded) order of dataset indices for ``epoch``."""
        if not self.shuffle:
            return list(range(self.length))
        generator = torch.Generator().manual_seed(derive_seed("perm", self.seed, epoch))
        return torch.randperm(self.length, generator=generator).tolist()

    def __len__(self) -> int:
        return max(self.length - self.start, 0) // self.world_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self.permutation(self.epoch)
        for i in range(len(self)):
            position = self.start + i * self.world_size + self.rank
            yield order[position], derive_seed(self.stream, self.seed, self.epoch, position)


class SeededDataset(Dataset):
    """Wraps a dataset so that item ``(index, sample_seed)`` is produced under that seed.

    The torch CPU, python ``random`` and NumPy global generators are seeded for the call and
    restored afterwards, so random crops/flips are reproducible whatever the resume point or
    ``num_workers``, and the caller's RNG streams are not disturbed.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        if not isinstance(key, tuple):
            return self.dataset[key]
        index, sample_seed = key
        python_state, numpy_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(sample_seed)
            random.seed(sample_seed)
            np.random.seed(sample_seed % 2**32)
            try:
                return self.dataset[index]
            finally:
                random.setstate(python_state)
                np.random.set_state(numpy_state)


# ----------------------------------------------------------------------------- history
_NOT_PLOTTED = ("epoch", "iteration", "lr")


def flatten_numeric(entry: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric values of a history entry (for plots and progress lines), nested keys joined by '/' (epoch/iteration/lr skipped)."""
    out: dict[str, float] = {}
    for key, value in entry.items():
        if not prefix and key in _NOT_PLOTTED:
            continue
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten_numeric(value, name))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def open_tensorboard(output_dir: Path, iteration: int) -> Any:
    """A ``SummaryWriter`` in ``output_dir/tensorboard`` that drops the steps after ``iteration`` (those a resumed
    run repeats, not in its checkpoint); None, with a warning, when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.warn("tensorboard=True but tensorboard is not installed (pip install tensorboard)")
        return None
    return SummaryWriter(str(output_dir / "tensorboard"), purge_step=iteration + 1)


def log_scalars(writer: Any, group: str, values: Mapping[str, float], iteration: int) -> None:
    """Add ``values`` to tensorboard as ``group/name`` at step ``iteration`` (nothing without a ``writer``)."""
    if writer is not None:
        for name, value in values.items():
            writer.add_scalar(f"{group}/{name}", value, iteration)


# ----------------------------------------------------------------------------- time-bounded chunks
def chunk_size(iteration: int, chunk: int, align: int | None, schedule: CheckpointSchedule,
               seconds_left: float | None, seconds_per_iteration: float | None) -> int:
    """Iterations of :meth:`TrainingLoop.run_for`'s next chunk after ``iteration``: at most ``chunk``, ending at a
    multiple of ``align`` and when ``schedule``'s next checkpoint is due; with a time limit (``seconds_left`` not
    None), 5 while the speed is unknown, then what fits in 95 % of ``seconds_left`` (< 1: the time is up)."""
    size = chunk if not align else min(chunk, align - iteration % align)
    if schedule.iterations is not None:
        size = max(1, min(size, schedule.iterations - (iteration - schedule.last_iteration)))
    if seconds_left is None:
        return size
    if seconds_per_iteration is None:  # speed unknown yet: a short first chunk measures it
        return min(size, 5)
    return min(size, int(seconds_left / seconds_per_iteration * 0.95))


# ----------------------------------------------------------------------------- the loop
class TrainingLoop:
    """The loop an :class:`nntools.Experiment` runs: epochs of mini-batches (:meth:`run`), within a time limit
    (:meth:`run_for`), validation (:meth:`evaluate`). The Experiment sets the model, data, counters and
    :meth:`save`; all DDP ranks take every decision to stop or save together (:meth:`any_rank`)."""

    model: TrainingModel
    checkpoint: Checkpoint

    def save(self) -> None:
        """Write a checkpoint (collective under DDP)."""
        raise NotImplementedError

    def any_rank(self, flag: bool) -> bool:
        """``flag`` or-ed over all DDP ranks (:func:`any_rank`): use it for every decision to stop."""
        return any_rank(flag, self.device)

    def min_over_ranks(self, value: float) -> float:
        """The smallest ``value`` over all DDP ranks (e.g. how many iterations still fit in a time limit)."""
        return min_over_ranks(value, self.device)

    def run(self, num_epochs: int, plot: Callable[[Experiment], Any] | None = None,
            max_iterations: int | None = None) -> list[dict[str, Any]]:
        """Train until ``num_epochs`` epochs are done in total (or ``self.iteration`` reaches
        ``max_iterations``, counted in total too). ``plot(exp)`` is called after every epoch."""
        self.model.train()
        if self.progress and self.rank == 0 and self.epoch < num_epochs and not self._announced:
            self._announced = True
            print(f"{'Continue' if self.iteration else 'Start'} training at epoch {self.epoch + 1} "
                  f"(iteration {self.iteration}) in {self.output_dir}", flush=True)
        if plot is not None and self.history:
            plot(self)
        writer = self._tensorboard()
        while self.epoch < num_epochs:
            if max_iterations is not None and self.iteration >= max_iterations:
                break
            if not self._run_epoch(num_epochs, max_iterations, writer):
                break
            if plot is not None:
                plot(self)
        if writer is not None:
            writer.flush()
        return self.history

    def run_for(self, num_epochs: int, max_iterations: int | None = None, *, max_minutes: float | None = None,
                started: float | None = None, schedule: CheckpointSchedule | None = None, chunk: int = 100,
                align: int | None = None, after_chunk: Callable[[Experiment], Any] | None = None,
                plot: Callable[[Experiment], Any] | None = None) -> None:
        """:meth:`run` in chunks of at most ``chunk`` iterations that end at multiples of ``align``, until
        ``max_minutes`` after ``started`` (a ``time.monotonic()`` value; default: now): chunks are sized from the
        measured speed (the first one is 5 iterations) so that the last one ends before the limit.

        After every chunk: a checkpoint when ``schedule`` says one is due (chunks end every ``schedule.iterations``
        at the latest), then ``after_chunk(self)``; at the end, a checkpoint if iterations were done since the last
        one. Calling it again on the same folder continues where it stopped."""
        deadline = None if max_minutes is None else (time.monotonic() if started is None else started) + max_minutes * 60
        schedule = schedule or CheckpointSchedule(None, None, self.iteration)
        seconds_per_iteration = None
        while self.epoch < num_epochs and (max_iterations is None or self.iteration < max_iterations):
            size = self._chunk_size(chunk, align, schedule, deadline, seconds_per_iteration)
            if size < 1:
                break
            stop_at = self.iteration + size if max_iterations is None else min(max_iterations, self.iteration + size)
            chunk_start, first = time.monotonic(), self.iteration
            self.run(num_epochs, plot=plot, max_iterations=stop_at)
            if self.iteration > first:
                seconds_per_iteration = (time.monotonic() - chunk_start) / (self.iteration - first)
            if self.any_rank(schedule.due(self.iteration)):  # time-based: the DDP ranks agree (save() is collective)
                self.save()
                schedule.saved(self.iteration)
            if after_chunk is not None:
                after_chunk(self)
        if self.iteration > schedule.last_iteration:
            self.save()
            schedule.saved(self.iteration)

    def _chunk_size(self, chunk: int, align: int | None, schedule: CheckpointSchedule, deadline: float | None,
                    seconds_per_iteration: float | None) -> int:
        """Iterations of the next chunk of :meth:`run_for`; 0 when the time limit is reached (on any rank)."""
        remaining = None if deadline is None else deadline - time.monotonic()
        size = chunk_size(self.iteration, chunk, align, schedule, remaining, seconds_per_iteration)
        if remaining is None:
            return size
        size = int(self.min_over_ranks(size))  # DDP ranks agree (save() is collective)
        return 0 if self.any_rank(remaining <= 0 or size < 1) else size

    def _run_epoch(self, num_epochs: int, max_iterations: int | None, writer: Any) -> bool:
        """Train (the rest of) one epoch; False if stopped by ``max_iterations``."""
        epoch = self.epoch
        if self.position == 0:
            self._epoch_sums, self._epoch_batches = {}, 0
            self.model.on_epoch_start(epoch)
        self.sampler.set_epoch(epoch, self.position)
        loader = self._loader(self.train_set, self.sampler, self.drop_last)
        bar = None
        if self.progress and self.rank == 0 and _tqdm is not None:
            bar = _tqdm(total=self._epoch_batches + len(loader), initial=self._epoch_batches, leave=False,
                        desc=f"Epoch {epoch + 1}/{num_epochs}")
        try:
            for i, batch in enumerate(loader):
                self.model.set_input(batch)
                losses = {k: float(v.detach() if isinstance(v, torch.Tensor) else v)
                          for k, v in self.model.optimize_parameters().items()}
                self._record_step(epoch, losses, writer, bar)
                if max_iterations is not None and self.iteration >= max_iterations:
                    if self.autosave:
                        self.save()
                    return False
                last = i == len(loader) - 1
                if self.checkpoint_every and self.iteration % self.checkpoint_every == 0 and not last:
                    self.save()
        finally:
            if bar is not None:
                bar.close()
        self._finish_epoch(epoch, writer)
        return True

    def _record_step(self, epoch: int, losses: dict[str, float], writer: Any, bar: Any) -> None:
        """Count one training step and log its ``losses`` (NonFiniteLossError for a NaN/inf one)."""
        self._check_finite(losses)
        self.iteration += 1
        self.position += self.batch_size * self.world_size
        self._epoch_batches += 1
        for k, v in losses.items():
            self._epoch_sums[k] = self._epoch_sums.get(k, 0.0) + v
        if self.log_every and self.iteration % self.log_every == 0:
            self.iteration_history.append({"iteration": self.iteration, "epoch": epoch + 1, **losses})
        log_scalars(writer, "train", losses, self.iteration)
        if bar is not None:
            bar.set_postfix({k: f"{s / self._epoch_batches:.4g}" for k, s in self._epoch_sums.items()})
            bar.update()

    def _finish_epoch(self, epoch: int, writer: Any) -> None:
        n = max(self._epoch_batches, 1)
        entry: dict[str, Any] = {"epoch": epoch + 1, "iteration": self.iteration}
        entry.update({k: s / n for k, s in self._epoch_sums.items()})
        entry.update(self.model.epoch_summary())
        if self.perform_validation_during_training and self.val_set is not None:
            entry["val"] = self.evaluate()
        entry["lr"] = {name: opt.param_groups[0]["lr"] for name, opt in self.model.optimizers.items()}
        for scheduler in self.model.schedulers.values():
            scheduler.step()
        self.history.append(plain(entry))
        self.epoch, self.position = epoch + 1, 0
        self._epoch_sums, self._epoch_batches = {}, 0
        copy_due = bool(self.keep_every_epochs) and self.epoch % self.keep_every_epochs == 0
        if copy_due and self.epoch not in self._epoch_copies:
            self._epoch_copies.append(self.epoch)  # saved first, so a resume knows the copy is due
        if self.autosave or copy_due:
            self.save()
        if copy_due and self.rank == 0:  # atomic; a kill during the copy is repaired on resume
            self.checkpoint.keep_epoch_copy(self.epoch)
        log_scalars(writer, "epoch", flatten_numeric(self.history[-1]), self.iteration)
        if self.progress and self.rank == 0:
            summary = ", ".join(f"{k}={v:.4g}" for k, v in flatten_numeric(self.history[-1]).items())
            print(f"Epoch {self.epoch}: {summary}", flush=True)

    def evaluate(self) -> Any:
        """Mean validation losses (for the course's supervised nets: ``stats_manager.summarize()``)."""
        if self.val_set is None:
            raise ValueError("evaluate() needs a val_set")
        self.model.eval()
        self.model.on_evaluate_start()
        sums: dict[str, float] = {}
        count = 0
        sampler = ResumableSampler(len(self.val_set), self.seed, shuffle=False, stream="val")  # type: ignore[arg-type]
        try:
            for batch in self._loader(self.val_set, sampler, drop_last=False):
                with torch.no_grad():
                    losses = self.model.validate_batch(batch)
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                count += 1
        finally:
            self.model.train()
        return self.model.evaluate_summary({k: s / max(count, 1) for k, s in sums.items()})

    def _loader(self, dataset: Dataset, sampler: Sampler, drop_last: bool) -> DataLoader:
        return DataLoader(SeededDataset(dataset), batch_size=self.batch_size, sampler=sampler,
                          num_workers=self.num_workers, collate_fn=self.collate_fn,
                          drop_last=drop_last, pin_memory=self.device.type == "cuda",
                          generator=torch.Generator().manual_seed(self.seed))  # keeps global RNG untouched

    def _tensorboard(self) -> Any:
        if self._want_tensorboard and self._writer is None and self.rank == 0:
            self._writer = open_tensorboard(self.output_dir, self.iteration)
            self._want_tensorboard = self._writer is not None
        return self._writer

    def _check_finite(self, losses: dict[str, float]) -> None:
        for name, value in losses.items():
            if not math.isfinite(value):
                self._poisoned = True
                raise NonFiniteLossError(
                    f"loss {name!r} is {value} at epoch {self.epoch + 1}, iteration {self.iteration + 1}; "
                    f"this state was not saved and the last good checkpoint {self.checkpoint.path} is "
                    "untouched. Lower the learning rate (accept_config_changes=[...]) or disable amp, "
                    "then construct the Experiment again to resume.")
