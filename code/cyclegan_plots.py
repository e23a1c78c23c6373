"""Figures for CycleGAN training (Zhu et al. 2017): loss curves, per-epoch sample grids, the style evidence."""
from __future__ import annotations

from typing import Any

import nntools
from imaging import show_images

GENERATOR_LOSSES = ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B")
DISCRIMINATOR_LOSSES = ("D_A", "D_B")


def plot_losses(exp: nntools.Experiment, title: str = "CycleGAN training losses") -> Any:
    """Generator-side and discriminator-side losses against the iteration (``iteration_history``, else per epoch)."""
    import matplotlib.pyplot as plt

    records = exp.iteration_history or exp.history
    x_name = "iteration" if exp.iteration_history else "epoch"
    figure, axes = plt.subplots(1, 2, figsize=(12, 4))
    for axis, names, label in ((axes[0], GENERATOR_LOSSES, "generators (weighted terms)"),
                               (axes[1], DISCRIMINATOR_LOSSES, "discriminators (halved LSGAN)")):
        for name in names:
            points = [(r[x_name], r[name]) for r in records if name in r]
            if not points:
                continue
            xs, ys = map(list, zip(*points))
            window = max(1, len(ys) // 25)  # moving mean: single-iteration GAN losses are noisy
            if window > 1:
                ys = [sum(ys[max(0, i - window + 1):i + 1]) / len(ys[max(0, i - window + 1):i + 1])
                      for i in range(len(ys))]
            label = name if window == 1 else f"{name} (mean of {window} logs)"
            axis.plot(xs, ys, label=label, marker="o" if len(xs) < 30 else None)
        axis.set_xlabel(x_name)
        axis.set_ylabel("loss")
        axis.set_title(label)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(f"{title} (epoch {exp.epoch}, iteration {exp.iteration})")
    figure.tight_layout()
    return figure


def show_samples(exp: nntools.Experiment, caption: str | None = None) -> Any:
    """The last training batch: real A | fake B | rec A (top) and real B | fake A | rec B (bottom)."""
    visuals = exp.model.visuals()
    if not visuals:  # no batch seen yet in this process
        return None
    order = ["real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"]
    titles = ["real photo (A)", "G_A(photo): fake painting", "G_B(G_A(photo)): reconstruction",
              "real painting (B)", "G_B(painting): fake photo", "G_A(G_B(painting)): reconstruction"]
    return show_images([visuals[name][:1] for name in order], titles, columns=3, panel_size=2.6,
                       suptitle=f"Samples after epoch {exp.epoch} (iteration {exp.iteration})",
                       caption=caption or "Training crops of the last batch; the cycle loss compares columns 1 and 3.")


def progress_callback(exp: nntools.Experiment) -> None:
    """``plot=`` callback for :func:`cyclegan.train_cyclegan`: losses and samples after every epoch."""
    import matplotlib.pyplot as plt

    plot_losses(exp)
    show_samples(exp)
    plt.show()


def plot_evidence(results: dict[str, Any]) -> Any:
    """Bar chart of the relative Gram distances of each image group to the photo set and to the painting set."""
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(results["style"])
    to_photos = [results["style"][n]["to_photos"] for n in names]
    to_paintings = [results["style"][n]["to_paintings"] for n in names]
    positions = np.arange(len(names))
    figure, axis = plt.subplots(figsize=(11, 4.5))
    axis.bar(positions - 0.2, to_photos, 0.4, label="distance to photo set")
    axis.bar(positions + 0.2, to_paintings, 0.4, label="distance to painting set")
    axis.set_xticks(positions, [n.replace(": ", ":\n") for n in names], fontsize=8)
    axis.set_ylabel("mean relative Gram distance")
    axis.set_title("Style statistic (VGG19 relu1_1..relu4_1 Gram matrices): where do the images sit?")
    axis.legend()
    axis.grid(axis="y", alpha=0.3)
    figure.text(0.5, -0.02, "Lower = closer. ||G(x) - mean G(set)||_F / ||mean G(set)||_F averaged over layers and "
                "images; sets = training photos / paintings. Generated paintings should move toward the painting set.",
                ha="center", fontsize=8, wrap=True)
    figure.tight_layout()
    return figure
