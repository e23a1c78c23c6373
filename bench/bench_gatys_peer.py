"""Benchmark: this project's Gatys optimisation against neural-style-pt on the same work, in one run.

    python bench/bench_gatys_peer.py [--size 512] [--threads 2] [--iterations 20] [--repeats 3] [--reach 300]
                                     [--peers ../shared/peers]

The work (the peer's documented benchmark, ../shared/peers/README.md): Tübingen in the style of Starry Night at 512 px,
Caffe ImageNet VGG19 (the project's exact offline reconstruction, handed to the peer in its own file format),
content relu4_2, style relu1_1..relu5_1, max pooling, no TV term, L-BFGS (history 100, no line search) from the
content image. Both programs get the same pixels (the peer's own resizing, reproduced) and the same objective: the
peer's weights (content 5, style 100, mean squared errors of features and of Gram matrices / (C H W)) expressed in
this project's convention (:func:`peer_objective`), so one fp32 evaluation scores both outputs.

Measured, each program in a fresh process (peak RSS is per process):
1. seconds per iteration, fp32 for both: the median of the intervals between consecutive loss evaluations (after
   2 warm-up ones) inside each run, timed in-process for both programs: this project through its per-iteration
   callback, the peer through a global forward pre-hook that stamps each call of its network (its code unchanged);
   ``--repeats`` runs of ``--iterations`` each, the programs alternating so that a change of load hits both; the
   median over the runs, and the largest peak RSS;
2. for context only, one more peer run under the glibc allocator setting this project's Gatys makes for itself
   (allocations of ``runtime.LARGE_BUFFER_BYTES`` or more mmapped, ``runtime.return_large_cpu_buffers``), through
   glibc's environment variable;
3. the peer's loss after ``--reach`` iterations, and the time this project's *default* settings (precision "auto",
   channels_last, everything else default except the objective) take to get there: its output is scored every 5
   iterations; the time counts from the start of ``StyleTransfer.run`` (targets included); the peer's is the sum of
   its ``reach`` iteration intervals (start-up and target capture excluded).
The peer's files are never copied: it runs from ``--peers`` through runpy, and everything is skipped (exit status 2
with a message) when that folder is missing. Writes bench/results/gatys_peer_<device>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import runpy
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "code"))

# nothing of the project is imported at module level: the peer's worker process must not carry its memory

PEER_CONTENT_WEIGHT, PEER_STYLE_WEIGHT = 5.0, 100.0  # neural_style.py's defaults
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CHANNELS = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512, "relu5_1": 512, "relu4_2": 512}
SCORE_EVERY = 5


def peer_images(data: Path, size: int):
    """Content and style as the peer loads them (PIL, longest side ``size`` by its formula, torchvision Resize)."""
    from PIL import Image
    from torchvision import transforms

    images = []
    for path in (data / "content" / "tubingen.jpg", data / "styles" / "starry_night.jpg"):
        image = Image.open(path).convert("RGB")
        shape = tuple(int(size / max(image.size) * x) for x in (image.height, image.width))
        images.append(transforms.Compose([transforms.Resize(shape), transforms.ToTensor()])(image).unsqueeze(0))
    return images


def load_images(folder: Path):
    """The peer's pixels, prepared once by the parent (so this project's workers never import torchvision)."""
    import torch

    images = torch.load(folder / "images.pt", weights_only=True)
    return images["content"], images["style"]


def iteration_seconds(stamps: list[float]) -> float:
    """Median interval between consecutive evaluations, after 2 warm-up ones."""
    intervals = [b - a for a, b in zip(stamps[2:], stamps[3:])]
    return statistics.median(intervals)


def peer_objective(height: int, width: int) -> dict:
    """GatysOptions fields giving neural-style-pt's objective exactly, for an output of height x width.

    Peer: 5 * mean((F - P)^2) at relu4_2 and, per style layer, 100 * mean((G/(C M) - G_s/(C M_s))^2).
    Here: alpha * 1/2 sum (F - P)^2 and w_l * sum (G - A)^2 / (4 C^2 M^2) with A = G_s / M_s * M, so
    alpha = 10 / (C H4 W4) at relu4_2 (H4 = H // 8) and w_l = 400 / C_l^2 with beta = 1."""
    content_elements = CHANNELS["relu4_2"] * (height // 8) * (width // 8)
    return {"content_weight": 2 * PEER_CONTENT_WEIGHT / content_elements, "style_weight": 1.0, "tv_weight": 0.0,
            "content_layers": {"relu4_2": 1.0}, "weights": "imagenet",
            "style_layers": {name: 4 * PEER_STYLE_WEIGHT / CHANNELS[name] ** 2 for name in STYLE_LAYERS}}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_peer_model(folder: Path) -> Path:
    """The project's Caffe ImageNet VGG19 in the peer's format (torchvision keys features.N, conv layers only)."""
    import torch
    from weights import load_vgg_weights

    model = folder / "models" / "vgg19-d01eb7cb.pth"
    model.parent.mkdir(parents=True, exist_ok=True)
    conv_index = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]  # torchvision's features.N
    state = load_vgg_weights("vgg19", "imagenet")
    convs = sorted({k.rsplit(".", 1)[0] for k in state}, key=lambda n: (int(n[4]), int(n[6])))
    torch.save({f"features.{conv_index[i]}.{p}": state[f"{name}.{p}"] for i, name in enumerate(convs)
                for p in ("weight", "bias")}, model)
    return model


def run_peer(peers: Path, data: Path, size: int, iterations: int, out: Path, model: Path) -> dict:
    """neural_style.py in this process, unmodified, with the benchmark's settings; wall time and peak RSS."""
    sys.argv = ["neural_style.py", "-content_image", str(data / "content" / "tubingen.jpg"),
                "-style_image", str(data / "styles" / "starry_night.jpg"), "-image_size", str(size), "-gpu", "c",
                "-model_file", str(model), "-disable_check", "-init", "image", "-tv_weight", "0",
                "-num_iterations", str(iterations), "-print_iter", str(iterations), "-save_iter", "0",
                "-output_image", str(out)]
    sys.path.insert(0, str(peers / "neural-style-pt"))
    import torch

    stamps: list[float] = []
    # the peer's network is the one nn.Sequential it calls: once per capture, then once per loss evaluation
    hook = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, inputs: stamps.append(time.perf_counter()) if type(module) is torch.nn.Sequential else None)
    start = time.perf_counter()
    runpy.run_path(str(peers / "neural-style-pt" / "neural_style.py"), run_name="__main__")
    end = time.perf_counter()
    hook.remove()
    evaluations = stamps[2:] + [end]  # after the content and the style capture; the end closes the last one
    return {"seconds": end - start, "peak_rss_mib": round(peak_rss_mib(), 1),
            "s_per_iteration": iteration_seconds(evaluations), "optimisation_seconds": evaluations[-1] - evaluations[0]}


def run_ours(folder: Path, iterations: int, out: Path, precision: str, snapshots: Path | None = None) -> dict:
    """StyleTransfer on the peer's pixels and objective: wall time, per-iteration time, peak RSS, and
    (``snapshots``) the image and its time from the start of ``run`` every SCORE_EVERY iterations, as 8-bit tensors."""
    import torch
    from gatys import GatysOptions, StyleTransfer
    from imaging import save_image

    start = time.perf_counter()
    content, style = load_images(folder)
    options = GatysOptions(size=max(content.shape[-2:]), iterations=iterations, init="content", precision=precision,
                           snapshot_every=1, progress=False, device="cpu", **peer_objective(*content.shape[-2:]))
    transfer = StyleTransfer(options)
    shots: list[tuple[int, float, torch.Tensor]] = []
    stamps: list[float] = []
    run_start = time.perf_counter()

    def keep(iteration: int, image: torch.Tensor, record: dict) -> None:
        stamps.append(time.perf_counter())
        if snapshots and iteration % SCORE_EVERY == 0:
            shots.append((iteration, stamps[-1] - run_start, (image * 255).round().to(torch.uint8)))

    result = transfer.run(content, style, callback=keep)
    seconds = time.perf_counter() - start
    save_image(result.image, out)
    if snapshots:
        torch.save(shots, snapshots)
    return {"seconds": seconds, "peak_rss_mib": round(peak_rss_mib(), 1), "precision": result.precision,
            "channels_last": options.channels_last, "s_per_iteration": iteration_seconds(stamps)}


def score(folder: Path, images: list[Path], snapshots: Path | None) -> dict:
    """The peer objective in fp32 (normalised-free Caffe VGG19) for each saved image and snapshot."""
    import torch
    from gatys import GatysOptions, StyleTransfer
    from imaging import load_image

    content, style = load_images(folder)
    options = GatysOptions(size=max(content.shape[-2:]), precision="fp32", progress=False, device="cpu",
                           **peer_objective(*content.shape[-2:]))
    transfer = StyleTransfer(options)
    with torch.no_grad():
        content_targets = {n: f for n, f in transfer.features(content).items() if n == "relu4_2"}
        style_targets = transfer.style_targets([style], [1.0])

        def loss(image: torch.Tensor) -> float:
            return float(transfer.losses(image, content_targets, style_targets)["total"])

        scores = {str(path): loss(load_image(path)) for path in images}
        if snapshots:
            shots = torch.load(snapshots, weights_only=True)
            scores["snapshots"] = [(it, t, loss(image.float() / 255)) for it, t, image in shots]
    return scores


def worker(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    kind, rest = args.worker[0], args.worker[1:]
    folder = Path(args.work)
    if kind == "peer":
        row = run_peer(Path(args.peers), Path(args.data), args.size, int(rest[0]), Path(rest[1]),
                       folder / "models" / "vgg19-d01eb7cb.pth")
    elif kind == "ours":
        row = run_ours(folder, int(rest[0]), Path(rest[1]), rest[2], Path(rest[3]) if len(rest) > 3 else None)
    else:
        row = score(folder, [Path(p) for p in rest[1:]], Path(rest[0]) if rest[0] != "-" else None)
    print("RESULT " + json.dumps(row))


def call(args: argparse.Namespace, *worker_args: str, env: dict[str, str] | None = None) -> dict:
    command = [sys.executable, __file__, "--size", str(args.size), "--peers", args.peers, "--data", args.data,
               "--work", args.work, "--worker", *worker_args] + (["--threads", str(args.threads)] if args.threads else [])
    completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if completed.returncode:
        raise SystemExit(f"worker {worker_args} failed:\n{completed.stderr[-3000:]}")
    peer_loss = [line for line in completed.stdout.splitlines() if line.strip().startswith("Total loss")]
    row = json.loads([line for line in completed.stdout.splitlines() if line.startswith("RESULT ")][-1][7:])
    if peer_loss:
        row["peer_printed_loss"] = float(peer_loss[-1].split(":")[1])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=20, help="iterations of each timing run")
    parser.add_argument("--repeats", type=int, default=3, help="timing runs per program (median taken)")
    parser.add_argument("--reach", type=int, default=300, help="the peer's iterations whose loss ours must reach")
    parser.add_argument("--peers", default=str(ROOT.parent / "shared" / "peers"))
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "reference"))
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--output", default=None, help="JSON file (default: bench/results/gatys_peer_cpu.json)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if not (Path(args.peers) / "neural-style-pt" / "neural_style.py").exists():
        print(f"--peers {args.peers}: no neural-style-pt/neural_style.py there (see ../shared/peers/README.md)",
              file=sys.stderr)
        raise SystemExit(2)
    from benchlib import load_average, utc_timestamp, write_json
    from runtime import LARGE_BUFFER_BYTES, device_description

    load_start = load_average()
    tmp = Path(tempfile.mkdtemp())
    args.work = str(tmp)
    write_peer_model(tmp)
    import torch

    content, style = peer_images(Path(args.data), args.size)
    torch.save({"content": content, "style": style}, tmp / "images.pt")
    rows: dict = {"peer": {"runs": []}, "ours fp32": {"runs": []}}
    programs = {"peer": ("peer",), "ours fp32": ("ours", "fp32")}
    for repeat in range(args.repeats):  # alternating, so that a change of load hits both programs
        for name, (kind, *extra) in programs.items():
            run = call(args, kind, str(args.iterations), str(tmp / f"{kind}.png"), *extra)
            rows[name]["runs"].append(run)
            print(f"{name} (run {repeat + 1}): {run['s_per_iteration']:.3f} s/iteration", flush=True)
    for name, row in rows.items():
        row["s_per_iteration"] = statistics.median(r["s_per_iteration"] for r in row["runs"])
        row["peak_rss_mib"] = max(r["peak_rss_mib"] for r in row["runs"])
        print(f"{name}: {row['s_per_iteration']:.3f} s/iteration (median of {args.repeats} runs), peak RSS "
              f"{row['peak_rss_mib']:.0f} MiB", flush=True)
    # context, not the comparison: the peer under the allocator setting this project's Gatys makes for itself
    # (runtime.return_large_cpu_buffers), given through glibc's environment variable; its code is unchanged
    context = call(args, "peer", str(args.iterations), str(tmp / "peer.png"),
                   env={"MALLOC_MMAP_THRESHOLD_": str(LARGE_BUFFER_BYTES)})
    rows[f"peer, {LARGE_BUFFER_BYTES >> 20} MiB mmap threshold (context)"] = context
    print(f"peer with this project's allocator setting: peak RSS {context['peak_rss_mib']:.0f} MiB", flush=True)
    peer_reach = call(args, "peer", str(args.reach), str(tmp / "peer_reach.png"))
    ours_default = call(args, "ours", str(args.reach), str(tmp / "ours_reach.png"), "auto", str(tmp / "shots.pt"))
    scores = call(args, "score", str(tmp / "shots.pt"), str(tmp / "peer_reach.png"), str(tmp / "ours_reach.png"))
    target = scores[str(tmp / "peer_reach.png")]
    reached = next(((it, t) for it, t, loss in scores["snapshots"] if loss <= target), None)
    peer_seconds = peer_reach["optimisation_seconds"]
    summary = {
        "device": device_description(), "threads": args.threads, "size": args.size,
        "load_average_1min_start": load_start, "load_average_1min": load_average(),
        "time": utc_timestamp(), "rows": rows,
        "fp32_time_ratio": rows["ours fp32"]["s_per_iteration"] / rows["peer"]["s_per_iteration"],
        "fp32_memory_ratio": rows["ours fp32"]["peak_rss_mib"] / rows["peer"]["peak_rss_mib"],
        "reach": {"peer_iterations": args.reach, "peer_loss_fp32": target,
                  "peer_printed_loss": peer_reach.get("peer_printed_loss"), "peer_seconds": peer_seconds,
                  "peer_s_per_iteration": peer_reach["s_per_iteration"],
                  "ours_s_per_iteration": ours_default["s_per_iteration"],
                  "ours_precision": ours_default["precision"], "ours_final_loss_fp32": scores[str(tmp / "ours_reach.png")],
                  "ours_iterations_to_reach": reached[0] if reached else None,
                  "ours_seconds_to_reach": reached[1] if reached else None,
                  "time_ratio": reached[1] / peer_seconds if reached else None,
                  "ours_curve": scores["snapshots"]},
    }
    out = Path(args.output) if args.output else ROOT / "bench" / "results" / "gatys_peer_cpu.json"
    write_json(summary, out, indent=1)
    print(f"fp32 time ratio (ours / peer) {summary['fp32_time_ratio']:.2f}, memory ratio "
          f"{summary['fp32_memory_ratio']:.2f}; peer loss after {args.reach}: {target:.4g}; default ({ours_default['precision']}) "
          f"reaches it {'at iteration %d after %.0f s, %.2fx the peer' % (reached[0], reached[1], summary['reach']['time_ratio']) if reached else 'not within %d iterations' % args.reach}")


if __name__ == "__main__":
    main()
