"""Training utilities: the course's ``nntools`` generalised to multi-network models.

The familiar course API still works::

    exp = Experiment(net, train_set, val_set, optimizer, stats_manager,
                     output_dir="runs/denoise", batch_size=16,
                     perform_validation_during_training=True)
    exp.run(num_epochs=20, plot=lambda exp: ...)

and any model with several networks/optimisers (CycleGAN, real-time style
transfer) subclasses :class:`TrainingModel` (pytorch-CycleGAN-and-pix2pix style).

What :class:`Experiment` guarantees:

* checkpoints are written atomically (temporary file, fsync, ``os.replace``); the
  previous good one is kept as ``checkpoint.prev.pth.tar`` and used if the latest
  is corrupt; everything loads with ``torch.load(..., weights_only=True)``;
* exact resume: data order is a pure function of (seed, epoch), every sample is
  produced under a seed derived from (seed, epoch, position), and the global RNG
  states are checkpointed, so a run killed at any moment and restarted ends with
  bit-identical weights (single process, CPU, same thread count);
* ``config.json`` is compared on resume and differences must be accepted on
  purpose (``accept_config_changes``); accepted optimiser changes are applied;
* a NaN/inf loss raises :class:`NonFiniteLossError` without saving anything, and so does a NaN/inf parameter,
  optimiser state or loss scale found before a save (under DDP the ranks agree: none saves what one found bad);
* epoch copies are atomic too; one lost to a kill during the copy is recreated on resume, and orphan ``.tmp``
  files are removed (with a warning);
* ``output_dir`` is locked (``run_lock``): a second live process gets :class:`OutputDirLockedError` naming the
  holder, a stale lock of a killed process is taken over; DDP workers stop when their launcher dies."""
from __future__ import annotations

import abc
import contextlib
import json
import math
import os
import random
import re
import shutil
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

try:  # tqdm is optional: without it there is simply no progress bar.
    from tqdm.auto import tqdm as _tqdm
except ImportError:  # pragma: no cover - depends on the environment
    _tqdm = None

import checkpoint
from checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    PREV_CHECKPOINT_NAME,
    CheckpointError,
    ConfigMismatchError,
    OutputDirLockedError,
    _atomic_write_bytes,
    _capture_rng_state,
    _config_diff,
    _flatten,
    _fsync_dir,
    _optimizer_hyperparameters,
    _plain,
    _restore_rng_state,
    first_non_finite,
)
from runtime import (
    _dist_info,
    _seed_global_rngs,
    derive_seed,
    grad_scaler,
    resolve_amp,
    resolve_device,
    to_device,
)


class NonFiniteLossError(RuntimeError):
    """A loss (or parameter) became NaN or infinite; nothing was saved after it."""


# ----------------------------------------------------------------------------- course classes
class NeuralNetwork(nn.Module, metaclass=abc.ABCMeta):
    """The course's base class: a network that also knows its loss ``criterion(y, d)``."""

    @abc.abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the network output."""

    @abc.abstractmethod
    def criterion(self, y: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Loss between the output ``y`` and the desired output ``d``."""


class StatsManager:
    """Accumulates statistics over an epoch; the default one tracks the mean loss."""

    def __init__(self) -> None:
        self.init()

    def __repr__(self) -> str:
        return self.__class__.__name__

    def init(self) -> None:
        """Reset the statistics (start of an epoch / evaluation)."""
        self.running_loss = 0.0
        self.number_update = 0

    def accumulate(self, loss: float, x: Any = None, y: Any = None, d: Any = None) -> None:
        """Add the loss (and optionally input, output, target) of one mini-batch."""
        self.running_loss += float(loss)
        self.number_update += 1

    def summarize(self) -> Any:
        """Statistics of the epoch (default: the mean loss)."""
        return self.running_loss / self.number_update if self.number_update else float("nan")


# ----------------------------------------------------------------------------- data
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


class TrainingModel:
    """Base class of everything an :class:`Experiment` trains.

    Subclasses fill ``networks``, ``optimizers``, ``schedulers`` (stepped once per epoch) and
    ``loss_names`` in ``__init__`` (after ``super().__init__()``) and implement
    :meth:`set_input` and :meth:`optimize_parameters`. ``device``, ``amp``, ``amp_dtype`` and ``scaler``
    are set by the Experiment.
    """

    def __init__(self) -> None:
        self.networks: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}
        self.loss_names: list[str] = []
        self.device = torch.device("cpu")
        self.amp = False
        self.amp_dtype: torch.dtype | None = None
        self.scaler = grad_scaler("cpu", enabled=False)

    # -- to implement
    def set_input(self, batch: Any) -> None:
        """Receive one mini-batch (move it to ``self.device``, e.g. with :func:`to_device`)."""
        raise NotImplementedError

    def optimize_parameters(self) -> dict[str, float | torch.Tensor]:
        """One training step on the current input; returns the named losses."""
        raise NotImplementedError

    def validate_batch(self, batch: Any) -> dict[str, float]:
        """Losses on one validation batch (no gradients needed); used by ``evaluate()``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement validate_batch()")

    def visuals(self) -> dict[str, torch.Tensor]:
        """Images of the last batch, for display (optional)."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        """Additional state to checkpoint (tensors/lists/numbers only), e.g. an image pool."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""

    def describe(self) -> dict[str, Any]:
        """Extra entries for the automatically derived config (optional)."""
        return {}

    # -- hooks used by the Experiment (defaults do nothing special)
    def on_epoch_start(self, epoch: int) -> None:
        """Called before the first batch of every epoch (not when resuming mid-epoch)."""

    def epoch_summary(self) -> dict[str, Any]:
        """Extra entries for the epoch's history record."""
        return {}

    def on_evaluate_start(self) -> None:
        """Called before ``evaluate()`` iterates over the validation set."""

    def evaluate_summary(self, mean_losses: dict[str, float]) -> Any:
        """What ``evaluate()`` returns (default: the mean of the ``validate_batch`` dicts)."""
        return mean_losses

    def set_precision(self, amp: bool | str | None, device: torch.device) -> None:
        """Set ``amp``, ``amp_dtype`` and the loss scaler from an ``amp`` choice (see :func:`resolve_amp`)."""
        self.amp_dtype = resolve_amp(amp, device)
        self.amp = self.amp_dtype is not None
        scaled = self.amp_dtype == torch.float16  # bf16 has fp32's exponent range: no loss scaling
        self.scaler = grad_scaler("cuda" if scaled else "cpu", enabled=scaled)

    # -- helpers for subclasses
    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed-precision context: autocast to ``amp_dtype`` (fp16 on CUDA, bf16 on CPU or CUDA) when amp is on,
        else a no-op."""
        if not self.amp or self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                      networks: Iterable[nn.Module] | None = None,
                      clip_grad_norm: float | None = None, update_scaler: bool = True) -> None:
        """zero_grad, (scaled) backward, optional clipping, optimizer step, scaler update.

        ``networks``: modules whose gradients are also cleared first (e.g. a discriminator the
        generator loss back-propagates through) and, with ``clip_grad_norm``, the modules clipped
        (default: the optimizer's parameters). With several optimizers per iteration, pass
        ``update_scaler=False`` to all but the last: the loss scale is updated once per iteration (AMP docs,
        "working with multiple models, losses, and optimizers").
        """
        networks = list(networks or [])
        optimizer.zero_grad(set_to_none=True)
        for network in networks:
            network.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if clip_grad_norm is not None:
            self.scaler.unscale_(optimizer)
            params = ([p for n in networks for p in n.parameters()] if networks else
                      [p for g in optimizer.param_groups for p in g["params"]])
            nn.utils.clip_grad_norm_(params, clip_grad_norm)
        self.scaler.step(optimizer)
        if update_scaler:
            self.scaler.update()

    @staticmethod
    def set_requires_grad(networks: Iterable[nn.Module], requires_grad: bool) -> None:
        """Freeze/unfreeze networks (e.g. the discriminators during the generator step)."""
        for network in networks:
            for param in network.parameters():
                param.requires_grad_(requires_grad)

    def train(self) -> None:
        for network in self.networks.values():
            network.train()

    def eval(self) -> None:
        for network in self.networks.values():
            network.eval()

    def to(self, device: torch.device | str) -> "TrainingModel":
        self.device = torch.device(device)
        for network in self.networks.values():
            network.to(self.device)
        return self


class SupervisedModel(TrainingModel):
    """Adapts the course's ``(NeuralNetwork, optimizer, StatsManager)`` to ``(x, d)`` batches."""

    def __init__(self, net: nn.Module, optimizer: torch.optim.Optimizer,
                 stats_manager: StatsManager | None = None) -> None:
        super().__init__()
        if not callable(getattr(net, "criterion", None)):
            raise TypeError(f"{type(net).__name__} needs a criterion(y, d) method (see NeuralNetwork)")
        self.net, self.optimizer = net, optimizer
        self.stats_manager = stats_manager if stats_manager is not None else StatsManager()
        self.networks, self.optimizers, self.loss_names = {"net": net}, {"net": optimizer}, ["loss"]

    def set_input(self, batch: Any) -> None:
        self.x, self.d = to_device(batch, self.device)

    def optimize_parameters(self) -> dict[str, torch.Tensor]:
        with self.autocast():
            self.y = self.net(self.x)
            loss = self.net.criterion(self.y, self.d)
        self.backward_step(loss, self.optimizer)
        with torch.no_grad():
            self.stats_manager.accumulate(loss.item(), self.x, self.y, self.d)
        return {"loss": loss.detach()}

    def validate_batch(self, batch: Any) -> dict[str, float]:
        x, d = to_device(batch, self.device)
        with torch.no_grad(), self.autocast():
            y = self.net(x)
            loss = self.net.criterion(y, d)
        self.stats_manager.accumulate(loss.item(), x, y, d)
        return {"loss": loss.item()}

    def visuals(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in ("x", "y", "d") if isinstance(getattr(self, k, None), torch.Tensor)}

    def describe(self) -> dict[str, Any]:
        return {"stats_manager": type(self.stats_manager).__name__}

    def on_epoch_start(self, epoch: int) -> None:
        self.stats_manager.init()

    def epoch_summary(self) -> dict[str, Any]:
        return {"train": self.stats_manager.summarize()}

    def on_evaluate_start(self) -> None:
        self.stats_manager.init()

    def evaluate_summary(self, mean_losses: dict[str, float]) -> Any:
        return self.stats_manager.summarize()

    def extra_state(self) -> dict[str, Any]:
        """The StatsManager's plain attributes, so a mid-epoch resume keeps the epoch's stats."""
        return {"stats": {k: _plain(v) for k, v in vars(self.stats_manager).items()
                          if isinstance(v, (bool, int, float, np.generic, torch.Tensor))}}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        for key, value in state.get("stats", {}).items():
            setattr(self.stats_manager, key, value)


# ----------------------------------------------------------------------------- experiment
class Experiment:
    """Trains a :class:`TrainingModel` (or a course ``NeuralNetwork``) with resumable checkpoints.

    ``Experiment(net, train_set, val_set, optimizer, stats_manager, output_dir, batch_size,
    perform_validation_during_training)`` is the course's signature; pass a TrainingModel as
    first argument (and no optimizer) for anything else. Constructing it again with the same
    ``output_dir`` resumes from the last checkpoint. See the module docstring for guarantees.
    """

    def __init__(self, model_or_net: TrainingModel | nn.Module, train_set: Dataset,
                 val_set: Dataset | None = None, optimizer: torch.optim.Optimizer | None = None,
                 stats_manager: StatsManager | None = None, output_dir: str | os.PathLike | None = None,
                 batch_size: int = 16, perform_validation_during_training: bool = False, *,
                 config: Mapping[str, Any] | None = None,
                 accept_config_changes: Iterable[str] | str = (), seed: int = 0,
                 num_workers: int = 0, checkpoint_every: int | None = 200,
                 keep_every_epochs: int | None = None, device: torch.device | str | None = None,
                 amp: bool | str = False, tensorboard: bool = False, collate_fn: Callable | None = None,
                 drop_last: bool = True, progress: bool = True, log_every: int | None = None) -> None:
        if isinstance(model_or_net, TrainingModel):
            if optimizer is not None:
                raise TypeError("pass the optimizers inside the TrainingModel, not as `optimizer`")
            self.model = model_or_net
        elif isinstance(model_or_net, nn.Module):
            if optimizer is None:
                raise TypeError("Experiment(net, ...) needs an optimizer (course signature)")
            self.model = SupervisedModel(model_or_net, optimizer, stats_manager)
        else:
            raise TypeError(f"expected a TrainingModel or nn.Module, got {type(model_or_net).__name__}")
        if not hasattr(self.model, "networks"):
            raise TypeError(f"{type(self.model).__name__}.__init__ must call super().__init__()")

        self.train_set, self.val_set = train_set, val_set
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers
        self.perform_validation_during_training = perform_validation_during_training
        self.checkpoint_every, self.keep_every_epochs = checkpoint_every, keep_every_epochs
        # True: save at every epoch end and when run() stops at max_iterations. False: the caller decides when
        # (realtime.py, cyclegan.py checkpoint by time and iteration count; run() never saves then, except for
        # checkpoint_every and keep_every_epochs).
        self.autosave = True
        self.collate_fn, self.drop_last, self.progress = collate_fn, drop_last, progress
        self.log_every = log_every
        self.rank, self.world_size = _dist_info()
        if (perform_validation_during_training and val_set is not None
                and type(self.model).validate_batch is TrainingModel.validate_batch):
            raise TypeError(f"{type(self.model).__name__} must implement validate_batch() for validation")
        if drop_last and len(train_set) // self.world_size < batch_size:  # type: ignore[arg-type]
            raise ValueError(f"train_set has {len(train_set)} items: fewer than one batch of "  # type: ignore[arg-type]
                             f"{batch_size} per process (use drop_last=False or a smaller batch_size)")

        # Device and precision.
        self.device = resolve_device(device)
        if self.world_size > 1:
            if self.device.type == "cuda":  # NCCL uses the current device: one GPU per rank
                torch.cuda.set_device(self.device)
            checkpoint.stop_when_parent_dies()  # a killed torchrun launcher must not leave workers writing
        self.model.set_precision(amp, self.device)
        self.amp, self.amp_dtype = self.model.amp, self.model.amp_dtype
        self.model.to(self.device)

        # State.
        self.history: list[dict[str, Any]] = []
        self.iteration_history: list[dict[str, Any]] = []  # losses every `log_every` iterations
        self.config_changes: list[dict[str, Any]] = []
        self.epoch = 0          # completed epochs
        self.iteration = 0      # completed training steps
        self.position = 0       # samples of the current epoch already consumed (global, all ranks)
        self._epoch_sums: dict[str, float] = {}
        self._epoch_batches = 0
        self._poisoned = False
        self._epoch_copies: list[int] = []  # epochs whose checkpoint_epochNNNN copy is due (kept in checkpoints)
        self._announced = False  # the "Start/Continue training" line is printed once
        self._latest_is_corrupt = False
        self._verified_weights_only = False
        self._writer = None
        self._want_tensorboard = tensorboard
        self.sampler = ResumableSampler(len(train_set), seed, rank=self.rank,  # type: ignore[arg-type]
                                        world_size=self.world_size)

        if output_dir is None:
            output_dir = f"experiment_{time.time()}"
        self.output_dir = Path(output_dir)
        self._release_lock: Callable[[], Any] = lambda: None
        self._lock_output_dir()
        try:
            self._resume_or_start(config, accept_config_changes, seed)
        except BaseException:
            self._release_lock()  # a failed construction leaves the folder as it found it
            raise

    def _resume_or_start(self, config: Mapping[str, Any] | None, accept_config_changes: Iterable[str] | str,
                         seed: int) -> None:
        """Check the stored config, then resume from the checkpoint (or seed a fresh start)."""
        # Config: derived description + user's dict; check against what is stored.
        self.config = self._derive_config(config or {})
        checkpoint, checkpoint_file = self._read_checkpoint()
        stored = self._read_stored_config(checkpoint)
        if stored is not None:
            differences = _config_diff(stored, self.config)
            accept_all = accept_config_changes == "all"
            accepted = set() if accept_all else {accept_config_changes} if isinstance(
                accept_config_changes, str) else set(accept_config_changes)
            refused = {k: v for k, v in differences.items() if not accept_all and k not in accepted}
            if refused:
                raise ConfigMismatchError(self._mismatch_message(refused))
        if checkpoint is not None:
            self._apply_checkpoint(checkpoint, checkpoint_file)
            if self.rank == 0:
                self._restore_epoch_copies(checkpoint, checkpoint_file)
        else:
            _seed_global_rngs(seed)
        if self.rank == 0 and (stored != self.config or not self.config_path.exists()):
            self._write_config()
        self._barrier()

    # ------------------------------------------------------------------ course-compatible aliases
    @property
    def net(self) -> nn.Module | None:
        """The course's ``exp.net`` (supervised models only)."""
        return getattr(self.model, "net", None)

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        return getattr(self.model, "optimizer", None)

    @property
    def stats_manager(self) -> StatsManager | None:
        return getattr(self.model, "stats_manager", None)

    @property
    def checkpoint_path(self) -> Path:
        return self.output_dir / CHECKPOINT_NAME

    @property
    def prev_checkpoint_path(self) -> Path:
        return self.output_dir / PREV_CHECKPOINT_NAME

    @property
    def config_path(self) -> Path:
        return self.output_dir / "config.json"

    def __repr__(self) -> str:
        return "\n".join(f"{k}: {v}" for k, v in self.config.items())

    # ------------------------------------------------------------------ config
    def _derive_config(self, user_config: Mapping[str, Any]) -> dict[str, Any]:
        derived: dict[str, Any] = {"model": type(self.model).__name__}
        for name, network in self.model.networks.items():
            derived[f"network.{name}.class"] = type(network).__name__
            derived[f"network.{name}.parameters"] = sum(p.numel() for p in network.parameters())
        for name, optimizer in self.model.optimizers.items():
            derived[f"optimizer.{name}.class"] = type(optimizer).__name__
            for key, value in _optimizer_hyperparameters(optimizer).items():
                derived[f"optimizer.{name}.{key}"] = value
        for name, scheduler in self.model.schedulers.items():
            derived[f"scheduler.{name}.class"] = type(scheduler).__name__
        derived.update(self.model.describe())
        derived.update({"train_set.class": type(self.train_set).__name__,
                        "train_set.length": len(self.train_set),  # type: ignore[arg-type]
                        "batch_size": self.batch_size, "seed": self.seed, "drop_last": self.drop_last})
        config: dict[str, Any] = {}
        _flatten("", dict(user_config), config)
        for key, value in derived.items():
            if key not in config:
                _flatten(key, value, config)
        return config

    def _read_stored_config(self, checkpoint: dict[str, Any] | None) -> dict[str, Any] | None:
        if self.config_path.exists():
            try:
                return json.loads(self.config_path.read_text())
            except (OSError, ValueError) as error:
                warnings.warn(f"{self.config_path} cannot be read ({error}); comparing with the "
                              "config stored in the checkpoint instead")
        return dict(checkpoint["config"]) if checkpoint is not None and "config" in checkpoint else None

    def _mismatch_message(self, refused: dict[str, tuple[Any, Any]]) -> str:
        lines = [f"The configuration differs from the one stored in {self.output_dir}:"]
        lines += [f"  {k}: stored {stored!r}, new {new!r}" for k, (stored, new) in refused.items()]
        keys = ", ".join(repr(k) for k in refused)
        lines += ["If this change is on purpose, accept it explicitly (it is recorded and, for optimizer",
                  "hyper-parameters, applied on top of the resumed optimizer state):",
                  f"  Experiment(..., accept_config_changes=[{keys}])   # or accept_config_changes=\"all\"",
                  "Otherwise use another output_dir or restore the previous settings."]
        return "\n".join(lines)

    def _write_config(self) -> None:
        text = json.dumps(self.config, indent=2)
        _atomic_write_bytes(self.config_path, lambda f: f.write(text.encode()))
        txt = "\n".join(f"{k}: {v}" for k, v in self.config.items()) + "\n"
        _atomic_write_bytes(self.output_dir / "config.txt", lambda f: f.write(txt.encode()))

    # ------------------------------------------------------------------ output folder
    def _lock_output_dir(self) -> None:
        """Rank 0 creates ``output_dir`` and locks it (see run_lock); then removes orphan temporary files that a
        killed writer left (only safe once the lock is held). Under DDP every rank raises if rank 0 failed."""
        error: BaseException | None = None
        if self.rank == 0:
            try:
                if self.output_dir.exists() and not self.output_dir.is_dir():
                    raise FileExistsError(f"output_dir {self.output_dir} exists and is not a folder")
                self.output_dir.mkdir(parents=True, exist_ok=True)
                if not os.access(self.output_dir, os.W_OK | os.X_OK):
                    raise PermissionError(f"output_dir {self.output_dir} is not writable")
                self._release_lock = checkpoint.acquire(self.output_dir, self)
            except (OSError, OutputDirLockedError) as caught:
                error = caught
        if self.any_rank(error is not None):
            raise error if error is not None else OutputDirLockedError(
                f"rank 0 could not lock output_dir {self.output_dir} (see its error)")
        if self.rank == 0:
            for orphan in sorted(self.output_dir.glob("*.tmp")):
                if orphan.name.startswith(("checkpoint", "config")):
                    size = orphan.stat().st_size
                    orphan.unlink()
                    warnings.warn(f"Removed {orphan} ({size} bytes), left by a process killed while writing it")

    def _restore_epoch_copies(self, state: Mapping[str, Any], path: Path | None) -> None:
        """Recreate epoch copies that the checkpoint says were due but are missing (a kill during the copy) when
        the loaded checkpoint is that epoch's end state; report the others."""
        for epoch in self._epoch_copies:
            copy = self._epoch_copy_path(epoch)
            if copy.exists():
                continue
            if path is not None and int(state["epoch"]) == epoch and int(state.get("position", 0)) == 0:
                self._write_epoch_copy(path, copy)
                warnings.warn(f"Recreated {copy} from {path} (the copy was interrupted)")
            else:
                warnings.warn(f"{copy} is missing (epoch {epoch} ended at iteration "
                              f"{self._iteration_of_epoch(epoch)}) and cannot be recreated: the checkpoints now "
                              "hold a later state")

    def _iteration_of_epoch(self, epoch: int) -> Any:
        return next((h.get("iteration") for h in self.history if h.get("epoch") == epoch), "?")

    def _epoch_copy_path(self, epoch: int) -> Path:
        return self.output_dir / f"checkpoint_epoch{epoch:04d}.pth.tar"

    @staticmethod
    def _write_epoch_copy(source: Path, destination: Path) -> None:
        with open(source, "rb") as src:
            _atomic_write_bytes(destination, lambda f: shutil.copyfileobj(src, f))

    # ------------------------------------------------------------------ DDP agreement
    def _collective_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    def any_rank(self, flag: bool) -> bool:
        """``flag`` or-ed over all DDP ranks (all-reduce MAX), the same on every rank; just ``flag`` without DDP.

        Use it for every decision to stop (time limits): ``save()`` is collective, so ranks that disagree on
        whether to go on would wait for each other for ever."""
        if self.world_size == 1:
            return bool(flag)
        value = torch.tensor([1.0 if flag else 0.0], device=self._collective_device())
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def min_over_ranks(self, value: float) -> float:
        """The smallest ``value`` over all DDP ranks (e.g. how many iterations still fit in a time limit)."""
        if self.world_size == 1:
            return value
        tensor = torch.tensor([float(value)], dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
        return tensor.item()

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly (all weights_only-loadable)."""
        m = self.model
        return {
            "format": CHECKPOINT_FORMAT,
            "networks": {k: v.state_dict() for k, v in m.networks.items()},
            "optimizers": {k: v.state_dict() for k, v in m.optimizers.items()},
            "schedulers": {k: v.state_dict() for k, v in m.schedulers.items()},
            "scaler": m.scaler.state_dict(),
            "extra_state": m.extra_state(),
            "history": self.history, "iteration_history": self.iteration_history,
            "config": self.config, "config_changes": self.config_changes,
            "epoch": self.epoch, "iteration": self.iteration, "position": self.position,
            "epoch_sums": dict(self._epoch_sums), "epoch_batches": self._epoch_batches,
            "rng": _capture_rng_state(self.device),
            "epoch_copies": list(self._epoch_copies),
        }

    def save(self) -> None:
        """Write the checkpoint atomically, keeping the previous one (collective under DDP)."""
        if self._poisoned:
            raise NonFiniteLossError("refusing to save: training produced a non-finite loss; "
                                     f"the last good checkpoint {self.checkpoint_path} is kept")
        bad = first_non_finite(self.model)
        if self.any_rank(bad is not None):  # no rank saves a state that another rank found poisoned
            self._poisoned = True
            where = f"{bad} is not finite" if bad else "another DDP rank found a non-finite tensor"
            raise NonFiniteLossError(
                f"refusing to save at iteration {self.iteration} (epoch {self.epoch + 1}): {where} "
                f"(rank {self.rank}); this state was not saved and the last good checkpoint {self.checkpoint_path} "
                "is untouched. Lower the learning rate (accept_config_changes=[...]), clip gradients or disable "
                "amp, then construct the Experiment again to resume.")
        if self.rank == 0:
            state = self.state_dict()
            tmp = self.checkpoint_path.with_name(CHECKPOINT_NAME + ".tmp")
            with open(tmp, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            if not self._verified_weights_only:
                try:
                    torch.load(tmp, map_location="cpu", weights_only=True)
                except Exception as error:
                    raise TypeError("the checkpoint cannot be loaded with weights_only=True; keep "
                                    "extra_state()/history to tensors, lists, dicts and numbers: "
                                    f"{error}") from error
                self._verified_weights_only = True
            if self.checkpoint_path.exists():
                if self._latest_is_corrupt:  # keep the good .prev; set the corrupt file aside
                    os.replace(self.checkpoint_path, self.output_dir / f"checkpoint.corrupt-{int(time.time())}.pth.tar")
                    self._latest_is_corrupt = False
                else:
                    os.replace(self.checkpoint_path, self.prev_checkpoint_path)
            os.replace(tmp, self.checkpoint_path)
            _fsync_dir(self.output_dir)
        self._barrier()

    def _keep_epoch_copy(self) -> None:
        """Copy the end-of-epoch checkpoint atomically; a kill during the copy is repaired on resume."""
        self._write_epoch_copy(self.checkpoint_path, self._epoch_copy_path(self.epoch))

    def _read_checkpoint(self) -> tuple[dict[str, Any] | None, Path | None]:
        """Load the latest checkpoint, falling back to the previous one; raise if all are bad."""
        problems: list[str] = []
        candidates = [self.checkpoint_path, self.prev_checkpoint_path]
        for i, path in enumerate(candidates):
            if not path.exists():
                continue
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                missing = {"networks", "optimizers", "epoch", "iteration", "rng"} - set(state)
                if missing:
                    raise KeyError(f"not an nntools checkpoint (missing {sorted(missing)})")
            except Exception as error:  # noqa: BLE001 - any failure means "unusable file"
                problem = f"{path}: {type(error).__name__}: {str(error)[:300]}"
                problems.append(problem)
                rest = [str(p) for p in candidates[i + 1:] if p.exists()]
                warnings.warn(f"Checkpoint {problem} -- " + (f"falling back to {rest[0]}" if rest else "no fallback"))
                if path == self.checkpoint_path:
                    self._latest_is_corrupt = True
                continue
            if problems or path != self.checkpoint_path:
                warnings.warn(f"Resuming from {path} (epoch {state['epoch']}, iteration {state['iteration']})")
            return state, path
        if problems:
            epoch_copies = sorted(p.name for p in self.output_dir.glob("checkpoint_epoch*.pth.tar"))
            hint = (f" Epoch copies exist ({', '.join(epoch_copies)}): copy one to {self.checkpoint_path} "
                    "to resume from it." if epoch_copies else "")
            raise CheckpointError("No loadable checkpoint; nothing was deleted or overwritten:\n  "
                                  + "\n  ".join(problems) + "\nMove these files away to start from "
                                  "scratch, or use another output_dir." + hint)
        return None, None

    def _apply_checkpoint(self, state: dict[str, Any], path: Path | None) -> None:
        m = self.model
        saved_config = state.get("config", {})
        changed = _config_diff(saved_config, self.config) if saved_config else {}
        try:
            for name, network in m.networks.items():
                network.load_state_dict(state["networks"][name])
            for name, optimizer in m.optimizers.items():
                if f"optimizer.{name}.class" in changed:
                    warnings.warn(f"optimizer {name!r} changed class: its state is not restored")
                    continue
                optimizer.load_state_dict(state["optimizers"][name])
            for name, scheduler in m.schedulers.items():
                if name in state.get("schedulers", {}):
                    scheduler.load_state_dict(state["schedulers"][name])
        except (KeyError, RuntimeError, ValueError) as error:
            raise CheckpointError(f"{path} does not fit this model: {type(error).__name__}: {error}") from error
        if m.scaler.is_enabled() and state.get("scaler"):
            m.scaler.load_state_dict(state["scaler"])
        m.load_extra_state(state.get("extra_state", {}))
        self.history = list(state.get("history", []))
        self.iteration_history = list(state.get("iteration_history", []))
        self.config_changes = list(state.get("config_changes", []))
        self.epoch, self.iteration = int(state["epoch"]), int(state["iteration"])
        self.position = int(state.get("position", 0))
        self._epoch_sums = dict(state.get("epoch_sums", {}))
        self._epoch_batches = int(state.get("epoch_batches", 0))
        self._epoch_copies = [int(e) for e in state.get("epoch_copies", [])]  # absent in older checkpoints
        for key, (old, new) in changed.items():
            self.config_changes.append({"key": key, "stored": old, "new": new,
                                        "epoch": self.epoch, "iteration": self.iteration})
            self._apply_optimizer_change(key, new)
        _restore_rng_state(state["rng"], self.device)

    def _apply_optimizer_change(self, key: str, value: Any) -> None:
        """Set an accepted optimizer hyper-parameter on top of the restored optimizer state."""
        match = re.fullmatch(r"optimizer\.(.+?)\.(?:group(\d+)\.)?([^.]+)", key)
        if not match or match.group(3) == "class" or match.group(1) not in self.model.optimizers:
            return
        optimizer = self.model.optimizers[match.group(1)]
        index, hp = int(match.group(2) or 0), match.group(3)
        if index >= len(optimizer.param_groups) or value == "<missing>":
            return
        group = optimizer.param_groups[index]
        if hp != "lr":
            group[hp] = tuple(value) if isinstance(group.get(hp), tuple) else value
            return
        old_base = group.get("initial_lr", group["lr"])
        group["lr"] = value * (group["lr"] / old_base) if old_base else value  # keep the decay factor
        if "initial_lr" in group:
            group["initial_lr"] = value
        for scheduler in self.model.schedulers.values():
            if getattr(scheduler, "optimizer", None) is optimizer and hasattr(scheduler, "base_lrs"):
                scheduler.base_lrs[index] = value
                if hasattr(scheduler, "_last_lr"):
                    scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]

    def load(self) -> None:
        """Reload the latest (or, if it is corrupt, the previous) checkpoint from disk."""
        state, path = self._read_checkpoint()
        if state is None:
            raise CheckpointError(f"no checkpoint in {self.output_dir}")
        self._apply_checkpoint(state, path)

    # ------------------------------------------------------------------ training
    def _barrier(self) -> None:
        if self.world_size > 1:
            if dist.get_backend() == "nccl":  # tells NCCL the rank's GPU (else it guesses, and may hang)
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def _loader(self, dataset: Dataset, sampler: Sampler, drop_last: bool) -> DataLoader:
        return DataLoader(SeededDataset(dataset), batch_size=self.batch_size, sampler=sampler,
                          num_workers=self.num_workers, collate_fn=self.collate_fn,
                          drop_last=drop_last, pin_memory=self.device.type == "cuda",
                          generator=torch.Generator().manual_seed(self.seed))  # keeps global RNG untouched

    def _tensorboard(self) -> Any:
        if self._want_tensorboard and self._writer is None and self.rank == 0:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._writer = SummaryWriter(str(self.output_dir / "tensorboard"),  # drop steps not in the
                                             purge_step=self.iteration + 1)  # checkpoint
            except ImportError:
                warnings.warn("tensorboard=True but tensorboard is not installed (pip install tensorboard)")
                self._want_tensorboard = False
        return self._writer

    def _check_finite(self, losses: dict[str, float]) -> None:
        for name, value in losses.items():
            if not math.isfinite(value):
                self._poisoned = True
                raise NonFiniteLossError(
                    f"loss {name!r} is {value} at epoch {self.epoch + 1}, iteration {self.iteration + 1}; "
                    f"this state was not saved and the last good checkpoint {self.checkpoint_path} is "
                    "untouched. Lower the learning rate (accept_config_changes=[...]) or disable amp, "
                    "then construct the Experiment again to resume.")

    def run(self, num_epochs: int, plot: Callable[["Experiment"], Any] | None = None,
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

    def _run_epoch(self, num_epochs: int, max_iterations: int | None, writer: Any) -> bool:
        """Train (the rest of) one epoch; False if stopped by ``max_iterations``."""
        epoch = self.epoch
        if self.position == 0:
            self._epoch_sums, self._epoch_batches = {}, 0
            self.model.on_epoch_start(epoch)
        self.sampler.set_epoch(epoch, self.position)
        loader = self._loader(self.train_set, self.sampler, self.drop_last)
        batches_per_epoch = self._epoch_batches + len(loader)
        bar = None
        if self.progress and self.rank == 0 and _tqdm is not None:
            bar = _tqdm(total=batches_per_epoch, initial=self._epoch_batches, leave=False,
                        desc=f"Epoch {epoch + 1}/{num_epochs}")
        try:
            for i, batch in enumerate(loader):
                self.model.set_input(batch)
                losses = {k: float(v.detach() if isinstance(v, torch.Tensor) else v)
                          for k, v in self.model.optimize_parameters().items()}
                self._check_finite(losses)
                self.iteration += 1
                self.position += self.batch_size * self.world_size
                self._epoch_batches += 1
                for k, v in losses.items():
                    self._epoch_sums[k] = self._epoch_sums.get(k, 0.0) + v
                if self.log_every and self.iteration % self.log_every == 0:
                    self.iteration_history.append({"iteration": self.iteration, "epoch": epoch + 1, **losses})
                if writer is not None:
                    for k, v in losses.items():
                        writer.add_scalar(f"train/{k}", v, self.iteration)
                if bar is not None:
                    bar.set_postfix({k: f"{s / self._epoch_batches:.4g}" for k, s in self._epoch_sums.items()})
                    bar.update()
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
        self.history.append(_plain(entry))
        self.epoch, self.position = epoch + 1, 0
        self._epoch_sums, self._epoch_batches = {}, 0
        copy_due = bool(self.keep_every_epochs) and self.epoch % self.keep_every_epochs == 0
        if copy_due and self.epoch not in self._epoch_copies:
            self._epoch_copies.append(self.epoch)  # saved first, so a resume knows the copy is due
        if self.autosave or copy_due:
            self.save()
        if copy_due and self.rank == 0:
            self._keep_epoch_copy()
        if writer is not None:
            for key, value in _flatten_numeric(self.history[-1]).items():
                writer.add_scalar(f"epoch/{key}", value, self.iteration)
        if self.progress and self.rank == 0:
            summary = ", ".join(f"{k}={v:.4g}" for k, v in _flatten_numeric(self.history[-1]).items())
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


# ----------------------------------------------------------------------------- plotting
_NOT_PLOTTED = ("epoch", "iteration", "lr")


def _flatten_numeric(entry: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric values of a history entry, nested keys joined by '/' (epoch/iteration/lr skipped)."""
    out: dict[str, float] = {}
    for key, value in entry.items():
        if not prefix and key in _NOT_PLOTTED:
            continue
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(_flatten_numeric(value, name))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out
