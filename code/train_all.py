"""Train every shipped model in one resumable, time-bounded command (for a borrowed GPU, or a long CPU run).

    python code/train_all.py --photos DIR --paintings DIR --out runs/all --minutes 9 --export-dir $OUT

Each call continues the checkpoints in ``--out`` for at most ``--minutes`` and then exports compact fp16 weights
(with SHA-256 and recipe in a MANIFEST.json) to ``--export-dir``: chain calls until both phases report "finished",
then compare the exported models with the shipped ones (``realtime.py compare``, ``evaluation.evaluate_shipped``)
and copy them to ``assets/`` only if they are better. Phases, in order:

1. real-time network, the four shipped styles in one network (conditional instance norm): Johnson et al.'s
   setting, 256 px crops, batch 4, 40,000 iterations (10,000 per style);
2. CycleGAN photo <-> painting: the paper's generator (ngf 64, 9 blocks) at 256 px, 20 + 20 epochs over the photos."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cyclegan
import realtime
import runtime
from weights import ASSETS_DIR

REALTIME_STYLES = ("starry_night", "great_wave", "kandinsky_composition_viii", "night_cafe")


# Config keys that follow the machine of each call: a run started on a GPU (fp16) may be resumed on a CPU (fp32) and
# back without ConfigMismatchError; the change is recorded in the checkpoint's config_changes.
DEVICE_DEPENDENT_KEYS = ("options.amp",)


def amp_for_this_device() -> str | bool:
    """fp16 autocast on a usable CUDA GPU (every CUDA GPU has fp16 units, not every one bf16), else fp32."""
    return "fp16" if runtime.pick_device().type == "cuda" else False


def train_all(photos: Path, paintings: Path, out: Path, minutes: float, export_dir: Path,
              realtime_iterations: int = 40_000, cyclegan_epochs: tuple[int, int] = (20, 20)) -> dict[str, str]:
    """Run the unfinished phases for at most ``minutes``; returns each phase's state ("finished"/"stopped")."""
    deadline = time.monotonic() + minutes * 60
    state: dict[str, str] = {}
    amp = amp_for_this_device()
    options = realtime.RealtimeOptions(iterations=realtime_iterations, sample_every=500, export_every=None,
                                       style_weight=1.0, amp=amp)
    styles = {name: ASSETS_DIR / f"{name}.jpg" for name in REALTIME_STYLES}
    remaining = (deadline - time.monotonic()) / 60
    experiment = realtime.train_realtime(photos, styles, out / "realtime", options, max_minutes=max(remaining - 0.5, 0.1),
                                         export_name="realtime_4styles", assets_dir=export_dir, progress=False,
                                         accept_config_changes=DEVICE_DEPENDENT_KEYS)
    state["realtime"] = "finished" if experiment.iteration >= options.iterations else f"stopped at {experiment.iteration}"
    remaining = (deadline - time.monotonic()) / 60
    if experiment.iteration >= options.iterations and remaining > 1:
        gan_options = cyclegan.CycleGANOptions(n_epochs=cyclegan_epochs[0], n_epochs_decay=cyclegan_epochs[1])
        exp = cyclegan.train_cyclegan(photos, paintings, out / "cyclegan", gan_options, max_minutes=remaining - 0.5,
                                      amp=amp, progress=False)
        cyclegan.export_generators(exp, cyclegan.training_recipe(exp), assets_dir=export_dir)
        state["cyclegan"] = "finished" if exp.epoch >= gan_options.total_epochs else f"stopped at epoch {exp.epoch}"
    else:
        state["cyclegan"] = "waiting for the real-time phase"
    (out / "train_all_state.json").write_text(json.dumps(state, indent=2) + "\n")
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, required=True, help="training photos (COCO on the cluster)")
    parser.add_argument("--paintings", type=Path, required=True, help="paintings for CycleGAN's domain B")
    parser.add_argument("--out", type=Path, default=Path("runs/all"), help="checkpoints (rerun to resume)")
    parser.add_argument("--minutes", type=float, default=9.0, help="wall-time budget of this call")
    parser.add_argument("--export-dir", type=Path, required=True, help="where the fp16 weights are written")
    parser.add_argument("--realtime-iterations", type=int, default=40_000)
    parser.add_argument("--cyclegan-epochs", type=int, nargs=2, default=(20, 20), metavar=("CONSTANT", "DECAY"))
    args = parser.parse_args()
    for folder, name in ((args.photos, "--photos"), (args.paintings, "--paintings")):
        if not folder.is_dir():
            parser.error(f"{name} folder {folder} does not exist")
    state = train_all(args.photos, args.paintings, args.out, args.minutes, args.export_dir,
                      args.realtime_iterations, tuple(args.cyclegan_epochs))
    print(json.dumps(state))


if __name__ == "__main__":
    main()
