"""The course API: the course's ``nntools`` generalised to multi-network models.

The familiar course API still works::

    exp = Experiment(net, train_set, val_set, optimizer, stats_manager,
                     output_dir="runs/denoise", batch_size=16,
                     perform_validation_during_training=True)
    exp.run(num_epochs=20, plot=lambda exp: ...)

and any model with several networks/optimisers (CycleGAN, real-time style transfer) subclasses
:class:`TrainingModel` (pytorch-CycleGAN-and-pix2pix style); :meth:`Experiment.run_for` trains within a time limit.

This module holds the course classes (:class:`NeuralNetwork`, :class:`StatsManager`, :class:`TrainingModel`,
:class:`SupervisedModel` with :func:`as_training_model`) and :class:`Experiment`, which sets up a run (device,
precision, the locked ``output_dir``, the config, resume) and saves it. The epoch loop it inherits, the seeded data
order and the DDP agreement are in :mod:`training`; the files in :class:`checkpoint.Checkpoint`.

What :class:`Experiment` guarantees:

* checkpoints are written atomically, the previous good one is used if the latest is corrupt, everything loads
  with ``torch.load(..., weights_only=True)``; epoch copies lost to a kill are recreated on resume;
* exact resume: data order is a pure function of (seed, epoch), every sample is produced under a seed derived from
  (seed, epoch, position) (:class:`training.ResumableSampler`), and the global RNG states are checkpointed, so a run
  killed at any moment and restarted ends with bit-identical weights (single process, CPU, same thread count);
* ``config.json`` is compared on resume and differences must be accepted on purpose (``accept_config_changes``);
  accepted optimiser changes are applied;
* a NaN/inf loss raises :class:`training.NonFiniteLossError` without saving anything, and so does a NaN/inf
  parameter, optimiser state or loss scale found before a save (under DDP the ranks agree: none saves what one
  found bad);
* ``output_dir`` is locked (:func:`runtime.acquire_output_dir`); DDP workers stop when their launcher dies."""
from __future__ import annotations

import abc
import contextlib
import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import runtime
import torch
import training
from checkpoint import (
    CHECKPOINT_FORMAT,
    Checkpoint,
    CheckpointError,
    apply_optimizer_change,
    capture_rng_state,
    config_diff,
    first_non_finite,
    flatten_config,
    optimizer_hyperparameters,
    plain,
    restore_rng_state,
)
from runtime import OutputDirLockedError, grad_scaler, resolve_amp, to_device
from torch import nn
from torch.utils.data import Dataset
from training import NonFiniteLossError, ResumableSampler, TrainingLoop


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

    def state_dict(self) -> dict[str, Any]:
        """The networks', optimizers', schedulers' and loss scaler's states and :meth:`extra_state`."""
        return {"networks": {k: v.state_dict() for k, v in self.networks.items()},
                "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
                "schedulers": {k: v.state_dict() for k, v in self.schedulers.items()},
                "scaler": self.scaler.state_dict(), "extra_state": self.extra_state()}

    def load_state_dict(self, state: Mapping[str, Any], source: Path | str | None,
                        skip_optimizers: Iterable[str] = ()) -> None:
        """Inverse of :meth:`state_dict` (``skip_optimizers``: names whose state does not fit any more);
        :class:`CheckpointError` naming ``source`` when the state does not fit these networks."""
        try:
            for name, network in self.networks.items():
                network.load_state_dict(state["networks"][name])
            for name, optimizer in self.optimizers.items():
                if name not in skip_optimizers:
                    optimizer.load_state_dict(state["optimizers"][name])
            for name, scheduler in self.schedulers.items():
                if name in state.get("schedulers", {}):
                    scheduler.load_state_dict(state["schedulers"][name])
        except (KeyError, RuntimeError, ValueError) as error:
            raise CheckpointError(f"{source} does not fit this model: {type(error).__name__}: {error}") from error
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.load_extra_state(state.get("extra_state", {}))

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

    def to(self, device: torch.device | str) -> TrainingModel:
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
        return {"stats": {k: plain(v) for k, v in vars(self.stats_manager).items()
                          if isinstance(v, (bool, int, float, np.generic, torch.Tensor))}}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        for key, value in state.get("stats", {}).items():
            setattr(self.stats_manager, key, value)


def as_training_model(model_or_net: TrainingModel | nn.Module, optimizer: torch.optim.Optimizer | None,
                      stats_manager: StatsManager | None) -> TrainingModel:
    """What an Experiment trains: ``model_or_net`` itself, or a course network (with ``criterion``) and its
    ``optimizer`` in a :class:`SupervisedModel`."""
    if isinstance(model_or_net, TrainingModel):
        if optimizer is not None:
            raise TypeError("pass the optimizers inside the TrainingModel, not as `optimizer`")
        model = model_or_net
    elif isinstance(model_or_net, nn.Module):
        if optimizer is None:
            raise TypeError("Experiment(net, ...) needs an optimizer (course signature)")
        model = SupervisedModel(model_or_net, optimizer, stats_manager)
    else:
        raise TypeError(f"expected a TrainingModel or nn.Module, got {type(model_or_net).__name__}")
    if not hasattr(model, "networks"):
        raise TypeError(f"{type(model).__name__}.__init__ must call super().__init__()")
    return model


def derive_config(model: TrainingModel, train_set: Dataset, batch_size: int, seed: int, drop_last: bool,
                  user_config: Mapping[str, Any]) -> dict[str, Any]:
    """A run's configuration as stored in ``config.json``: ``user_config`` (flattened to dotted keys) plus what the
    model, its optimizers and the data say about themselves (user keys win)."""
    derived: dict[str, Any] = {"model": type(model).__name__}
    for name, network in model.networks.items():
        derived[f"network.{name}.class"] = type(network).__name__
        derived[f"network.{name}.parameters"] = sum(p.numel() for p in network.parameters())
    for name, optimizer in model.optimizers.items():
        derived[f"optimizer.{name}.class"] = type(optimizer).__name__
        for key, value in optimizer_hyperparameters(optimizer).items():
            derived[f"optimizer.{name}.{key}"] = value
    for name, scheduler in model.schedulers.items():
        derived[f"scheduler.{name}.class"] = type(scheduler).__name__
    derived.update(model.describe())
    derived.update({"train_set.class": type(train_set).__name__,
                    "train_set.length": len(train_set),  # type: ignore[arg-type]
                    "batch_size": batch_size, "seed": seed, "drop_last": drop_last})
    config: dict[str, Any] = {}
    flatten_config("", dict(user_config), config)
    for key, value in derived.items():
        if key not in config:
            flatten_config(key, value, config)
    return config


# ----------------------------------------------------------------------------- experiment
class Experiment(TrainingLoop):
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
        self.model = as_training_model(model_or_net, optimizer, stats_manager)
        self.train_set, self.val_set = train_set, val_set
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers
        self.perform_validation_during_training = perform_validation_during_training
        self.checkpoint_every, self.keep_every_epochs = checkpoint_every, keep_every_epochs
        # True: save at every epoch end and when run() stops at max_iterations. False: the caller decides when
        # (run_for() follows a CheckpointSchedule; run() never saves then, except for checkpoint_every and
        # keep_every_epochs).
        self.autosave = True
        self.collate_fn, self.drop_last, self.progress = collate_fn, drop_last, progress
        self.log_every = log_every
        self.rank, self.world_size = training.dist_info()
        self._check_data()
        self._set_device(device, amp)
        self.history: list[dict[str, Any]] = []
        self.iteration_history: list[dict[str, Any]] = []  # losses every `log_every` iterations
        self.config_changes: list[dict[str, Any]] = []
        self.epoch = 0          # completed epochs
        self.iteration = 0      # completed training steps
        self.position = 0       # samples of the current epoch already consumed (global, all ranks)
        self._epoch_sums: dict[str, float] = {}
        self._epoch_batches = 0
        self._epoch_copies: list[int] = []  # epochs whose checkpoint_epochNNNN copy is due (kept in checkpoints)
        self._poisoned = False
        self._announced = False  # the "Start/Continue training" line is printed once
        self._writer, self._want_tensorboard = None, tensorboard
        self.sampler = ResumableSampler(len(train_set), seed, rank=self.rank,  # type: ignore[arg-type]
                                        world_size=self.world_size)
        self.output_dir = Path(output_dir if output_dir is not None else f"experiment_{time.time()}")
        self.checkpoint = Checkpoint(self.output_dir)
        self._release_lock: Callable[[], Any] = lambda: None
        self._lock_output_dir()
        try:
            self._resume_or_start(config, accept_config_changes, seed)
        except BaseException:
            self._release_lock()  # a failed construction leaves the folder as it found it
            raise

    def _check_data(self) -> None:
        if (self.perform_validation_during_training and self.val_set is not None
                and type(self.model).validate_batch is TrainingModel.validate_batch):
            raise TypeError(f"{type(self.model).__name__} must implement validate_batch() for validation")
        if self.drop_last and len(self.train_set) // self.world_size < self.batch_size:  # type: ignore[arg-type]
            raise ValueError(f"train_set has {len(self.train_set)} items: fewer than one batch of "  # type: ignore[arg-type]
                             f"{self.batch_size} per process (use drop_last=False or a smaller batch_size)")

    def _set_device(self, device: torch.device | str | None, amp: bool | str) -> None:
        self.device = runtime.pick_device(device)
        if self.world_size > 1:
            if self.device.type == "cuda":  # NCCL uses the current device: one GPU per rank
                torch.cuda.set_device(self.device)
            training.stop_when_parent_dies()  # a killed torchrun launcher must not leave workers writing
        self.model.set_precision(amp, self.device)
        self.amp, self.amp_dtype = self.model.amp, self.model.amp_dtype
        self.model.to(self.device)

    def _resume_or_start(self, config: Mapping[str, Any] | None, accept_config_changes: Iterable[str] | str,
                         seed: int) -> None:
        """Check the stored config, then resume from the checkpoint (or seed a fresh start)."""
        self.config = derive_config(self.model, self.train_set, self.batch_size, seed, self.drop_last, config or {})
        state, path = self.checkpoint.read()
        stored = self.checkpoint.stored_config(state)
        self.checkpoint.check_config(self.config, stored, accept_config_changes)
        if state is not None:
            self._apply_checkpoint(state, path)
            if self.rank == 0:
                self.checkpoint.restore_epoch_copies(self._epoch_copies, state, path)
        else:
            runtime.seed_global_rngs(seed)
        if self.rank == 0 and (stored != self.config or not self.checkpoint.config_path.exists()):
            self.checkpoint.write_config(self.config)
        training.barrier(self.device)

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
        return self.checkpoint.path

    def __repr__(self) -> str:
        return "\n".join(f"{k}: {v}" for k, v in self.config.items())

    def _lock_output_dir(self) -> None:
        """Rank 0 creates ``output_dir`` and locks it; then removes orphan temporary files that a killed writer
        left (only safe once the lock is held). Under DDP every rank raises if rank 0 failed."""
        error: BaseException | None = None
        if self.rank == 0:
            try:
                if self.output_dir.exists() and not self.output_dir.is_dir():
                    raise FileExistsError(f"output_dir {self.output_dir} exists and is not a folder")
                self.output_dir.mkdir(parents=True, exist_ok=True)
                if not os.access(self.output_dir, os.W_OK | os.X_OK):
                    raise PermissionError(f"output_dir {self.output_dir} is not writable")
                self._release_lock = runtime.acquire_output_dir(self.output_dir, self)
            except (OSError, OutputDirLockedError) as caught:
                error = caught
        if self.any_rank(error is not None):
            raise error if error is not None else OutputDirLockedError(
                f"rank 0 could not lock output_dir {self.output_dir} (see its error)")
        if self.rank == 0:
            self.checkpoint.remove_orphans()

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly (all weights_only-loadable)."""
        return {"format": CHECKPOINT_FORMAT, **self.model.state_dict(),
                "history": self.history, "iteration_history": self.iteration_history,
                "config": self.config, "config_changes": self.config_changes,
                "epoch": self.epoch, "iteration": self.iteration, "position": self.position,
                "epoch_sums": dict(self._epoch_sums), "epoch_batches": self._epoch_batches,
                "rng": capture_rng_state(self.device), "epoch_copies": list(self._epoch_copies)}

    def save(self) -> None:
        """Write the checkpoint atomically, keeping the previous one (collective under DDP)."""
        if self._poisoned:
            raise NonFiniteLossError("refusing to save: training produced a non-finite loss; "
                                     f"the last good checkpoint {self.checkpoint.path} is kept")
        bad = first_non_finite(self.model)
        if self.any_rank(bad is not None):  # no rank saves a state that another rank found poisoned
            self._poisoned = True
            where = f"{bad} is not finite" if bad else "another DDP rank found a non-finite tensor"
            raise NonFiniteLossError(
                f"refusing to save at iteration {self.iteration} (epoch {self.epoch + 1}): {where} "
                f"(rank {self.rank}); this state was not saved and the last good checkpoint {self.checkpoint.path} "
                "is untouched. Lower the learning rate (accept_config_changes=[...]), clip gradients or disable "
                "amp, then construct the Experiment again to resume.")
        if self.rank == 0:
            self.checkpoint.write(self.state_dict())
        training.barrier(self.device)

    def _apply_checkpoint(self, state: dict[str, Any], path: Path | None) -> None:
        saved_config = state.get("config", {})
        changed = config_diff(saved_config, self.config) if saved_config else {}
        skip = [name for name in self.model.optimizers if f"optimizer.{name}.class" in changed]
        for name in skip:
            warnings.warn(f"optimizer {name!r} changed class: its state is not restored")
        self.model.load_state_dict(state, path, skip_optimizers=skip)
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
            apply_optimizer_change(self.model, key, new)
        restore_rng_state(state["rng"], self.device)

    def load(self) -> None:
        """Reload the latest (or, if it is corrupt, the previous) checkpoint from disk."""
        state, path = self.checkpoint.read()
        if state is None:
            raise CheckpointError(f"no checkpoint in {self.output_dir}")
        self._apply_checkpoint(state, path)
