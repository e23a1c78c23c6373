"""CycleGAN photo <-> painting (Zhu, Park, Isola & Efros, "Unpaired Image-to-Image Translation using
Cycle-Consistent Adversarial Networks", ICCV 2017), trained with the ``nntools`` Experiment.

Domain A = photos, domain B = paintings. ``G_A: A -> B`` (photo2painting), ``G_B: B -> A`` (painting2photo);
``D_A`` judges paintings (real B vs G_A's fakes), ``D_B`` judges photos, as in junyanz/pytorch-CycleGAN-and-pix2pix.

Full objective (eq. 3): L_GAN(G_A, D_A) + L_GAN(G_B, D_B) + lambda L_cyc (eq. 2), plus the identity loss of sec. 5.2
weighted 0.5 lambda; least-squares GAN losses (sec. 4), a history of 50 generated images for the discriminators
(sec. 4, Shrivastava et al. 2017), Adam lr 2e-4, beta1 0.5, constant lr then linear decay to zero (sec. 4 / 7.1).

Command line::

    python code/cli.py cyclegan --photos DIR --paintings DIR --output runs/cyclegan --size 128 --n-blocks 6 --ngf 32 \
        --n-epochs 10 --n-epochs-decay 10 --max-minutes 120 --export"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

import checkpoint
import imaging
import nntools
import runtime
import torch
import weights
from imaging import UnpairedFileDataset, domain_files, pad_to_multiple, split_held_out
from losses import cycle_consistency_loss, identity_loss, lsgan_loss
from models import PatchDiscriminator, ResnetGenerator, init_weights
from runtime import precision_autocast, resolve_precision
from torch import nn

DIRECTIONS = {"photo2painting": "G_A", "painting2photo": "G_B"}


# ----------------------------------------------------------------------------------------------------- options
@dataclass
class CycleGANOptions:
    """Every CycleGAN hyper-parameter in one place; defaults are the paper's (section and source in comments)."""

    size: int = 256             # crop size; 256x256 training crops (sec. 4 / appendix 7.1)
    load_size: int | None = None  # resize shorter side before the random crop; None -> size * 286 / 256 (reference)
    ngf: int = 64               # generator filters in the first layer (appendix 7.2: c7s1-64)
    ndf: int = 64               # discriminator filters in the first layer (appendix 7.2: C64)
    n_blocks: int = 9           # residual blocks: 6 for 128x128, 9 for 256x256 and higher (appendix 7.2)
    n_layers_d: int = 3         # PatchGAN depth: 3 gives the 70x70 PatchGAN (appendix 7.2)
    upsampling: Literal["transpose", "resize"] = "transpose"  # fractionally-strided convs (appendix 7.2); "resize" = upsample + conv
    norm: str = "instance"      # instance normalisation (Ulyanov et al. 2016; appendix 7.2)
    init_gain: float = 0.02     # weights from N(0, 0.02) (appendix 7.1)
    lambda_cycle: float = 10.0  # lambda of eq. 3 (sec. 4: "We set lambda = 10")
    lambda_identity: float = 0.5  # identity loss weight, times lambda (sec. 5.2 / reference --lambda_identity 0.5)
    pool_size: int = 50         # history of generated images for D (sec. 4: "a buffer that stores the 50 ...")
    lr: float = 2e-4            # Adam learning rate (sec. 4 / appendix 7.1)
    beta1: float = 0.5          # Adam beta1 (reference --beta1 0.5)
    beta2: float = 0.999        # Adam beta2 (PyTorch/reference default)
    n_epochs: int = 100         # epochs at constant lr (sec. 4: "same learning rate for the first 100 epochs")
    n_epochs_decay: int = 100   # epochs of linear decay to zero (sec. 4: "linearly decay ... over the next 100")
    batch_size: int = 1         # appendix 7.1: batch size 1
    flip: bool = True           # random horizontal flips (reference default)
    crop_scale: tuple[float, float] | None = None  # *ours*: random crop side as a fraction (low, high) of the loaded
                                # shorter side, resized to ``size`` (multi-scale crops from few large paintings);
                                # None = the reference's fixed ``size`` crop of the ``load_size`` image

    def __post_init__(self) -> None:
        if self.load_size is None:
            self.load_size = round(self.size * 286 / 256)
        imaging.integer("size", self.size, 16)
        if self.size % 4:
            raise ValueError(f"size must be a multiple of 4 (two stride-2 downsamplings), got {self.size}")
        if self.load_size < self.size:
            raise ValueError(f"load_size ({self.load_size}) must be at least size ({self.size})")
        if self.n_epochs < 0 or self.n_epochs_decay < 0 or self.n_epochs + self.n_epochs_decay == 0:
            raise ValueError("n_epochs and n_epochs_decay must be >= 0 and not both 0")
        for name, minimum in (("size", 16), ("load_size", 16), ("ngf", 1), ("ndf", 1), ("n_blocks", 0),
                              ("n_layers_d", 1), ("pool_size", 0), ("n_epochs", 0), ("n_epochs_decay", 0),
                              ("batch_size", 1)):
            imaging.integer(name, getattr(self, name), minimum)
        for name in ("init_gain", "lambda_cycle", "lambda_identity"):
            imaging.number(name, getattr(self, name), minimum=0)
        imaging.number("lr", self.lr, positive=True)
        imaging.number("beta1", self.beta1, minimum=0, maximum=0.9999)
        imaging.number("beta2", self.beta2, minimum=0, maximum=0.9999)
        if self.upsampling not in ("transpose", "resize"):
            raise ValueError(f"upsampling must be 'transpose' or 'resize', got {self.upsampling!r}")
        if self.crop_scale is not None:
            self.crop_scale = (float(self.crop_scale[0]), float(self.crop_scale[1]))
            if not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
                raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")

    def train_crop_scale(self) -> tuple[float, float]:
        """The crop fraction of the loaded shorter side used for training crops."""
        fixed = self.size / self.load_size
        return self.crop_scale if self.crop_scale is not None else (fixed, fixed)

    @property
    def total_epochs(self) -> int:
        return self.n_epochs + self.n_epochs_decay

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def linear_decay_factor(n_epochs: int, n_epochs_decay: int) -> Callable[[int], float]:
    """lr multiplier of epoch e (0-based): 1 for e < n_epochs, then 1 - (e + 1 - n_epochs) / (n_epochs_decay + 1).

    The reference's ``lambda_rule`` (epoch_count = 1): the last epoch runs at lr / (n_epochs_decay + 1), the next
    would run at zero.
    """
    def factor(epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)
    return factor


# -------------------------------------------------------------------------------------------------- image pool
class ImagePool:
    """History of generated images (Shrivastava et al. 2017; Zhu et al. sec. 4), as the reference's ``ImagePool``.

    While fewer than ``pool_size`` images are stored each query image is stored and returned unchanged; afterwards,
    with probability 1/2 a random stored image is returned and replaced by the query image, otherwise the query image
    itself is returned. Its own ``torch.Generator`` draws the coin flips, so the global RNG is untouched and
    ``state_dict()`` (tensors and ints only) restores it exactly.
    """

    def __init__(self, pool_size: int = 50, seed: int = 0) -> None:
        self.pool_size = pool_size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    def _uniform(self) -> float:
        return float(torch.rand((), generator=self.generator))

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) for the discriminator, drawn from the history as described above."""
        if self.pool_size == 0:
            return images
        returned = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image.clone())
                returned.append(image)
            elif self._uniform() > 0.5:
                index = int(torch.randint(0, self.pool_size, (), generator=self.generator))
                returned.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                returned.append(image)
        return torch.cat(returned, 0)

    def state_dict(self) -> dict[str, Any]:
        """Stored images (on CPU) and the RNG state, for checkpoints loaded with ``weights_only=True``."""
        return {"pool_size": self.pool_size, "images": [image.detach().cpu() for image in self.images],
                "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        if int(state["pool_size"]) != self.pool_size:
            raise ValueError(f"pool_size differs: checkpoint {state['pool_size']}, this pool {self.pool_size}")
        self.images = [image.to(device) for image in state["images"]]
        self.generator.set_state(state["rng"])


# ------------------------------------------------------------------------------------------------------- model
def build_generator(options: CycleGANOptions) -> ResnetGenerator:
    return ResnetGenerator(3, 3, options.ngf, options.n_blocks, options.norm, options.upsampling)


def build_discriminator(options: CycleGANOptions) -> PatchDiscriminator:
    return PatchDiscriminator(3, options.ndf, options.n_layers_d, options.norm)


class CycleGANModel(nntools.TrainingModel):
    """The CycleGAN training step (the reference's ``CycleGANModel``): generators first, then discriminators.

    Batches are ``{"A": photos, "B": paintings}`` in [0, 1]; everything inside runs in [-1, 1], so the L1 cycle and
    identity losses are on the reference's scale and lambda = 10 means the same. Reported losses are the weighted
    terms (as the reference prints them): ``cycle_A`` = lambda * ||G_B(G_A(a)) - a||_1 in [-1, 1] units.
    """

    def __init__(self, options: CycleGANOptions | None = None, seed: int = 0) -> None:
        super().__init__()
        self.options = options = options or CycleGANOptions()
        with torch.random.fork_rng(devices=[]):  # initial weights are a function of the seed alone
            torch.manual_seed(seed)
            self.netG_A, self.netG_B = build_generator(options), build_generator(options)
            self.netD_A, self.netD_B = build_discriminator(options), build_discriminator(options)
            for network in (self.netG_A, self.netG_B, self.netD_A, self.netD_B):
                init_weights(network, options.init_gain)
        self.networks = {"G_A": self.netG_A, "G_B": self.netG_B, "D_A": self.netD_A, "D_B": self.netD_B}
        betas = (options.beta1, options.beta2)
        self.optimizer_G = torch.optim.Adam([*self.netG_A.parameters(), *self.netG_B.parameters()], options.lr, betas)
        self.optimizer_D = torch.optim.Adam([*self.netD_A.parameters(), *self.netD_B.parameters()], options.lr, betas)
        self.optimizers = {"G": self.optimizer_G, "D": self.optimizer_D}
        factor = linear_decay_factor(options.n_epochs, options.n_epochs_decay)
        self.schedulers = {name: torch.optim.lr_scheduler.LambdaLR(opt, factor) for name, opt in self.optimizers.items()}
        self.loss_names = ["D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"]
        self.fake_A_pool = ImagePool(options.pool_size, seed=runtime.derive_seed("pool_A", seed))
        self.fake_B_pool = ImagePool(options.pool_size, seed=runtime.derive_seed("pool_B", seed))

    # -- data
    def set_input(self, batch: dict[str, torch.Tensor]) -> None:
        """``batch["A"]`` photos, ``batch["B"]`` paintings, (N, 3, H, W) in [0, 1]."""
        self.real_A = to_signed(batch["A"].to(self.device))
        self.real_B = to_signed(batch["B"].to(self.device))

    def forward(self) -> None:
        """fake_B = G_A(A), rec_A = G_B(G_A(A)), fake_A = G_B(B), rec_B = G_A(G_B(B))."""
        self.fake_B = self.netG_A(self.real_A)
        self.rec_A = self.netG_B(self.fake_B)
        self.fake_A = self.netG_B(self.real_B)
        self.rec_B = self.netG_A(self.fake_A)

    # -- losses
    def generator_losses(self) -> dict[str, torch.Tensor]:
        """Adversarial (LSGAN), weighted cycle (eq. 2) and identity (sec. 5.2) terms of the generators."""
        o = self.options
        losses = {}
        if o.lambda_identity > 0:
            self.idt_A = self.netG_A(self.real_B)  # G_A should be the identity on paintings
            self.idt_B = self.netG_B(self.real_A)
            losses["idt_A"] = identity_loss(self.idt_A, self.real_B) * o.lambda_cycle * o.lambda_identity
            losses["idt_B"] = identity_loss(self.idt_B, self.real_A) * o.lambda_cycle * o.lambda_identity
        else:
            zero = torch.zeros((), device=self.device)
            losses["idt_A"], losses["idt_B"] = zero, zero
        losses["G_A"] = lsgan_loss(self.netD_A(self.fake_B), True)
        losses["G_B"] = lsgan_loss(self.netD_B(self.fake_A), True)
        losses["cycle_A"] = cycle_consistency_loss(self.rec_A, self.real_A) * o.lambda_cycle
        losses["cycle_B"] = cycle_consistency_loss(self.rec_B, self.real_B) * o.lambda_cycle
        return losses

    @staticmethod
    def discriminator_loss(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """(L_LSGAN(D(real), 1) + L_LSGAN(D(fake), 0)) / 2: halved to slow D relative to G (sec. 7.1, reference)."""
        return 0.5 * (lsgan_loss(discriminator(real), True) + lsgan_loss(discriminator(fake.detach()), False))

    def optimize_parameters(self) -> dict[str, torch.Tensor]:
        """One iteration: forward, G_A and G_B step (Ds frozen), then D_A and D_B step on pooled fakes."""
        discriminators = [self.netD_A, self.netD_B]
        with self.autocast():
            self.forward()
            self.set_requires_grad(discriminators, False)
            losses = self.generator_losses()
            loss_G = sum(losses.values())
        self.backward_step(loss_G, self.optimizer_G, update_scaler=False)  # one scale update per iteration, below
        self.set_requires_grad(discriminators, True)
        fake_B = self.fake_B_pool.query(self.fake_B)
        fake_A = self.fake_A_pool.query(self.fake_A)
        with self.autocast():
            losses["D_A"] = self.discriminator_loss(self.netD_A, self.real_B, fake_B)
            losses["D_B"] = self.discriminator_loss(self.netD_B, self.real_A, fake_A)
        # The two discriminators share no parameters: one backward of the sum equals the reference's two backwards.
        self.backward_step(losses["D_A"] + losses["D_B"], self.optimizer_D)
        return {name: losses[name].detach() for name in self.loss_names}

    def validate_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Unweighted cycle reconstruction errors (mean L1 in [0, 1] units) on a held-out batch."""
        real_A, real_B = batch["A"].to(self.device), batch["B"].to(self.device)
        with self.autocast():
            rec_A = to_unit(self.netG_B(self.netG_A(to_signed(real_A))))
            rec_B = to_unit(self.netG_A(self.netG_B(to_signed(real_B))))
        return {"cycle_l1_A": float(cycle_consistency_loss(rec_A, real_A)),
                "cycle_l1_B": float(cycle_consistency_loss(rec_B, real_B))}

    def visuals(self) -> dict[str, torch.Tensor]:
        """Last batch in [0, 1]: real_A, fake_B, rec_A, real_B, fake_A, rec_B."""
        names = ("real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B")
        return {n: to_unit(getattr(self, n).detach().float()).clamp(0, 1).cpu() for n in names if hasattr(self, n)}

    # -- checkpoint hooks
    def extra_state(self) -> dict[str, Any]:
        return {"fake_A_pool": self.fake_A_pool.state_dict(), "fake_B_pool": self.fake_B_pool.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "fake_A_pool" in state:
            self.fake_A_pool.load_state_dict(state["fake_A_pool"], self.device)
            self.fake_B_pool.load_state_dict(state["fake_B_pool"], self.device)

    def describe(self) -> dict[str, Any]:
        options = self.options.as_dict()
        if options["crop_scale"] is None:  # runs from before the option existed resume unchanged
            del options["crop_scale"]
        return {"cyclegan": options}


def train_cyclegan(
    photos_dir: str | os.PathLike,
    paintings_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    options: CycleGANOptions | None = None,
    max_minutes: float | None = None,
    max_iterations: int | None = None,
    *,
    hold_out_photos: int = 8,
    hold_out_paintings: int = 6,
    seed: int = 0,
    checkpoint_every: int | None = None,
    checkpoint_minutes: float | None = 10.0,
    keep_every_epochs: int | None = None,
    device: torch.device | str | None = None,
    amp: bool | str = False,
    plot: Callable[[nntools.Experiment], Any] | None = None,
    export_each_epoch: bool = False,
    assets_dir: Path = weights.ASSETS_DIR,
    accept_config_changes: Iterable[str] | str = (),
    progress: bool = True,
    limit_images: int | None = None,
    log_every: int | None = 10,
    init_from: str | os.PathLike | None = None,
) -> nntools.Experiment:
    """Build the data and the Experiment, then train (resuming from ``output_dir`` if it holds a checkpoint).

    Stops after ``options.total_epochs`` epochs, at ``max_iterations`` (total), or before ``max_minutes`` of this
    call have passed (checked between chunks of at most 100 iterations, sized from the measured speed); rerunning
    the same call continues where it stopped. A checkpoint is written every ``checkpoint_minutes`` of wall time
    and/or every ``checkpoint_every`` iterations (None switches one off) and whenever the call stops.
    ``hold_out_*`` images (fixed seed) are excluded from training and recorded in ``output_dir/split.json`` and in
    the exported recipe. ``plot(exp)`` is called after
    every epoch; ``export_each_epoch`` stores the generators in ``assets_dir`` at every epoch end. ``limit_images``
    keeps only the first N training images of each domain (quick runs); losses are logged every ``log_every``
    iterations in ``exp.iteration_history``. ``init_from`` (a folder with exported generators and their MANIFEST.json,
    e.g. ``assets/``) warm-starts a fresh run's generators (:func:`warm_start_generators`); a resumed run ignores it.
    """
    started = time.monotonic()
    options = options or CycleGANOptions()
    output_dir = Path(output_dir)
    train_set, val_set, config, split = _cyclegan_data(photos_dir, paintings_dir, options, hold_out_photos,
                                                       hold_out_paintings, seed, limit_images)
    model = CycleGANModel(options, seed=seed)
    exp = nntools.Experiment(model, train_set, val_set, output_dir=output_dir, batch_size=options.batch_size,
                             config=config, accept_config_changes=accept_config_changes, seed=seed,
                             checkpoint_every=None, keep_every_epochs=keep_every_epochs, device=device, amp=amp,
                             progress=progress, log_every=log_every)
    if init_from is not None and exp.iteration == 0:
        record = warm_start_generators(model, init_from)
        if exp.rank == 0:
            (output_dir / "warm_start.json").write_text(json.dumps(record, indent=2) + "\n")
    if exp.rank == 0:  # under DDP only rank 0 writes
        (output_dir / "split.json").write_text(json.dumps(split, indent=2))
    clock = checkpoint.WallClock(output_dir)
    exp.autosave = False  # checkpoints follow `schedule` (and the stop), not every chunk or epoch
    schedule = checkpoint.CheckpointSchedule(checkpoint_every, checkpoint_minutes, exp.iteration)
    exp.run_for(options.total_epochs, max_iterations, max_minutes=max_minutes, started=started, schedule=schedule,
                plot=_on_epoch_end(exp.epoch, clock, plot, assets_dir if export_each_epoch else None))
    if exp.rank == 0:
        clock.add()
    return exp


def _cyclegan_data(photos_dir: str | os.PathLike, paintings_dir: str | os.PathLike, options: CycleGANOptions,
                   hold_out_photos: int, hold_out_paintings: int, seed: int, limit_images: int | None
                   ) -> tuple[UnpairedFileDataset, UnpairedFileDataset, dict[str, Any], dict[str, Any]]:
    """The training and held-out sets of :func:`train_cyclegan`, the data part of its config and its split."""
    photos = domain_files(photos_dir, "Photo (domain A)")
    paintings = domain_files(paintings_dir, "Painting (domain B)")
    train_photos, held_photos = split_held_out(photos, hold_out_photos, seed)
    train_paintings, held_paintings = split_held_out(paintings, hold_out_paintings, seed)
    if limit_images is not None:
        train_photos, train_paintings = train_photos[:limit_images], train_paintings[:limit_images]
    train_set = UnpairedFileDataset(train_photos, train_paintings, options.size, options.load_size, options.flip,
                                    crop_scale=options.train_crop_scale())
    # Validation pairs a held-out photo with a held-out painting: with none held out in a domain there is none.
    val_set = (UnpairedFileDataset(held_photos, held_paintings, options.size, options.load_size, train=False)
               if held_photos and held_paintings else None)
    config = {"data": {"photos_dir": str(Path(photos_dir).resolve()), "paintings_dir": str(Path(paintings_dir).resolve()),
                       "train_photos": len(train_set.domain_a), "train_paintings": len(train_set.domain_b),
                       "held_out_photos": [p.name for p in held_photos],
                       "held_out_paintings": [p.name for p in held_paintings]}}
    split = {"held_out_photos": [str(p) for p in held_photos], "held_out_paintings": [str(p) for p in held_paintings],
             "train_photos": len(train_set.domain_a), "train_paintings": len(train_set.domain_b)}
    return train_set, val_set, config, split


def _on_epoch_end(start_epoch: int, clock: checkpoint.WallClock, plot: Callable[[nntools.Experiment], Any] | None,
                  export_to: Path | None) -> Callable[[nntools.Experiment], None]:
    """The per-epoch hook of :func:`train_cyclegan` (rank 0): record the wall time, export the generators to
    ``export_to`` (if given), call ``plot``. run() also calls it at the start of every chunk: only new epochs count."""
    last_epoch = start_epoch

    def on_epoch_end(experiment: nntools.Experiment) -> None:
        nonlocal last_epoch
        if experiment.epoch == last_epoch:
            return
        last_epoch = experiment.epoch
        if experiment.rank != 0:
            return
        clock.add()
        if export_to is not None:
            export_generators(experiment, training_recipe(experiment), assets_dir=export_to)
        if plot is not None:
            plot(experiment)

    return on_epoch_end


def training_recipe(exp: nntools.Experiment) -> dict[str, Any]:
    """How the generators of ``exp`` were made: data, split, epochs, iterations, resolution, loss weights, time."""
    model: CycleGANModel = exp.model  # type: ignore[assignment]
    o = model.options
    data = {k.split(".", 1)[1]: v for k, v in exp.config.items() if k.startswith("data.")}
    return {
        "method": "CycleGAN (Zhu et al. 2017), domain A = photos, domain B = paintings",
        "data": data,
        "epochs_completed": exp.epoch, "iterations": exp.iteration,
        "n_epochs": o.n_epochs, "n_epochs_decay": o.n_epochs_decay, "batch_size": o.batch_size,
        "size": o.size, "load_size": o.load_size, "ngf": o.ngf, "ndf": o.ndf, "n_blocks": o.n_blocks,
        "n_layers_d": o.n_layers_d,
        "upsampling": o.upsampling, "norm": o.norm, "crop_scale": list(o.train_crop_scale()),
        "lambda_cycle": o.lambda_cycle, "lambda_identity": o.lambda_identity, "pool_size": o.pool_size,
        "lr": o.lr, "beta1": o.beta1, "seed": exp.seed,
        "wall_time_s": round(checkpoint.WallClock(exp.output_dir).recorded(), 1),
        "device": runtime.device_description(exp.device), "torch": torch.__version__,
        "last_epoch_losses": {k: round(v, 4) for k, v in (exp.history[-1] if exp.history else {}).items()
                              if isinstance(v, float)},
        **({"warm_start": json.loads(warm_start.read_text())}
           if (warm_start := Path(exp.output_dir) / "warm_start.json").exists() else {}),
    }


def export_generators(exp_or_model: nntools.Experiment | CycleGANModel, recipe: dict[str, Any],
                      assets_dir: Path = weights.ASSETS_DIR) -> dict[str, Path]:
    """Store G_A as ``cyclegan_photo2painting.pth`` and G_B as ``cyclegan_painting2photo.pth`` (fp16, SHA in manifest)."""
    model = exp_or_model.model if isinstance(exp_or_model, nntools.Experiment) else exp_or_model
    paths = {}
    for direction, network in DIRECTIONS.items():
        entry = dict(recipe, direction=direction, network=network, architecture="ResnetGenerator")
        paths[direction] = weights.save_fp16_weights(model.networks[network].state_dict(),
                                                    f"cyclegan_{direction}.pth", entry, assets_dir=assets_dir)
    return paths


def load_generator(direction: str, *, ngf: int | None = None, n_blocks: int | None = None,
                   upsampling: str | None = None, assets_dir: Path = weights.ASSETS_DIR,
                   device: torch.device | str | None = None, precision: str = "auto") -> ResnetGenerator:
    """The shipped generator ``"photo2painting"`` or ``"painting2photo"``, SHA-256 checked, in eval mode, on
    ``device`` (None: the GPU if there is a usable one, see :func:`runtime.pick_device`). ``precision`` ("auto",
    "fp32", "bf16", "fp16"; see :func:`runtime.resolve_precision`) is what ``translate`` autocasts to.

    The architecture comes from the recipe in the manifest unless ``ngf``/``n_blocks``/``upsampling`` are given; a file
    that does not fit raises :class:`weights.WeightsError` saying what was expected and what the file holds.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {direction!r}")
    name = f"cyclegan_{direction}.pth"
    state = weights.load_verified_weights(name, assets_dir=assets_dir)
    recipe = weights.read_manifest(Path(assets_dir) / "MANIFEST.json")[name].get("recipe", {})
    ngf = ngf if ngf is not None else int(recipe.get("ngf", 64))
    n_blocks = n_blocks if n_blocks is not None else int(recipe.get("n_blocks", 9))
    upsampling = upsampling or recipe.get("upsampling", "transpose")
    generator = ResnetGenerator(ngf=ngf, n_blocks=n_blocks, upsampling=upsampling)
    source = f"{Path(assets_dir) / name} (recipe: ngf={recipe.get('ngf')}, n_blocks={recipe.get('n_blocks')})"
    try:
        weights.load_state_into(generator, state, source)
    except weights.WeightsError as error:
        raise weights.WeightsError(f"expected a ResnetGenerator with ngf={ngf}, n_blocks={n_blocks}, "
                                  f"upsampling={upsampling}: {error}") from error
    device = runtime.pick_device(device)
    runtime.resolve_precision(precision, device)  # a bad value fails here, not at the first image
    generator.precision = precision
    return generator.to(device).eval()


def copy_generator_weights(source: ResnetGenerator, target: ResnetGenerator) -> int:
    """Copy ``source``'s weights into ``target`` (same ngf and blocks), also across upsampling modes; returns how many
    transposed convolutions were converted.

    The convolutions correspond in order. A fractionally-strided convolution (stride 2) is a convolution with the
    flipped kernel over the zero-interleaved input; over the nearest-upsampled input the same flipped kernel gives a
    smoothed version of it, and the instance norm that follows each upsampling layer removes the change of scale. So a
    transposed-convolution generator warm-starts a resize-convolution one (Odena et al. 2016) with every other layer
    exact.
    """
    def convolutions(generator: ResnetGenerator) -> list[nn.Module]:
        return [m for m in generator.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]

    pairs = list(zip(convolutions(source), convolutions(target), strict=True))
    converted = 0
    with torch.no_grad():
        for old, new in pairs:
            weight = old.weight
            if isinstance(old, nn.ConvTranspose2d) and not isinstance(new, nn.ConvTranspose2d):
                weight, converted = weight.transpose(0, 1).flip(2, 3), converted + 1  # (in, out) -> (out, in), flipped
            elif isinstance(new, nn.ConvTranspose2d) and not isinstance(old, nn.ConvTranspose2d):
                raise ValueError("copying a resize-convolution generator into a transposed-convolution one is not supported")
            if weight.shape != new.weight.shape:
                raise ValueError(f"generators differ: a convolution of shape {tuple(weight.shape)} meets "
                                 f"{tuple(new.weight.shape)} (ngf or n_blocks differ)")
            new.weight.copy_(weight)
            if new.bias is not None:
                new.bias.copy_(old.bias)
    return converted


def warm_start_generators(model: CycleGANModel, assets_dir: str | Path) -> dict[str, Any]:
    """Load the generators exported in ``assets_dir`` (SHA-256 checked; see :func:`load_generator`) into the fresh
    ``model``, converting the upsampling layers if needed; the discriminators keep their initialisation. Returns a
    record of what was loaded (kept in the recipe as ``warm_start``)."""
    manifest = weights.read_manifest(Path(assets_dir) / "MANIFEST.json")
    record: dict[str, Any] = {"from": str(assets_dir), "discriminators": "fresh (initialised as a new run)"}
    for direction, network in DIRECTIONS.items():
        trained = load_generator(direction, assets_dir=Path(assets_dir), device="cpu")
        converted = copy_generator_weights(trained, model.networks[network])
        entry = manifest[f"cyclegan_{direction}.pth"]
        record[network] = {"file": f"cyclegan_{direction}.pth", "sha256": entry["sha256"],
                           "upsampling": trained.upsampling, "converted_transposed_convolutions": converted,
                           **{key: entry.get("recipe", {}).get(key) for key in ("iterations", "wall_time_s", "warm_start")}}
    return record


def shipped_summary(assets_dir: Path = weights.ASSETS_DIR) -> str:
    """'a 1.6 CPU-hour run (128 px, ngf 32, 6 blocks, resize upsampling)' from the shipped generators' recipes, or
    'runs of 7.2 and 5.5 CPU-hours (...)' (photo -> painting, then painting -> photo) when their chains differ."""
    manifest = weights.read_manifest(Path(assets_dir) / "MANIFEST.json")
    recipes = [manifest[f"cyclegan_{direction}.pth"]["recipe"] for direction in ("photo2painting", "painting2photo")]
    hours = [round(r.get("cpu_hours_chain", r.get("wall_time_s", 0) / 3600), 1) for r in recipes]
    recipe = recipes[0]
    runs = (f"a {hours[0]:.1f} CPU-hour run" if hours[0] == hours[1]
            else f"runs of {hours[0]:.1f} and {hours[1]:.1f} CPU-hours")
    return (f"{runs} ({recipe['size']} px, ngf {recipe['ngf']}, {recipe['n_blocks']} blocks, "
            f"{recipe.get('upsampling', 'transpose')} upsampling)")


def to_signed(image01: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1], the networks' input range."""
    return image01 * 2.0 - 1.0


def to_unit(image_signed: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return (image_signed + 1.0) * 0.5


def generator_input(generator: nn.Module, batch01: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) images in [0, 1] as a ResnetGenerator takes them: on its device and dtype, padded to a multiple
    of 4 (8 px at least: the bottleneck's reflection padding must fit), in [-1, 1]."""
    parameter = next(generator.parameters(), batch01)  # a network without parameters takes the images as they are
    return to_signed(pad_to_multiple(batch01.to(parameter.device, parameter.dtype), 4, minimum=8))


@torch.no_grad()
def translate(generator: ResnetGenerator, image01: torch.Tensor, precision: str | None = None) -> torch.Tensor:
    """Apply a generator to RGB image(s) in [0, 1] of any size; returns the same shape in [0, 1].

    Accepts (3, H, W) or (N, 3, H, W); runs on the generator's device and dtype; pads to a multiple of 4 and crops back.
    ``precision``: autocast of the forward pass (None: the generator's ``precision`` attribute, set by
    ``cyclegan.load_generator``, else "auto": bf16 where native, see :func:`runtime.resolve_precision`).
    """
    single = image01.dim() == 3
    batch = image01.unsqueeze(0) if single else image01
    if batch.dim() != 4 or batch.shape[1] != 3:
        raise ValueError(f"translate expects RGB images of shape (N, 3, H, W), got {tuple(image01.shape)}")
    parameter = next(generator.parameters())
    was_training = generator.training
    generator.eval()
    try:
        height, width = batch.shape[-2:]
        signed_input = generator_input(generator, batch)
        ran = resolve_precision(precision or getattr(generator, "precision", "auto"), parameter.device)
        with precision_autocast(ran, parameter.device):
            signed = generator(signed_input)
        output = to_unit(signed.to(parameter.dtype))[..., :height, :width].clamp(0, 1)
    finally:
        generator.train(was_training)
    output = output.to(image01.device, image01.dtype)
    return output[0] if single else output
