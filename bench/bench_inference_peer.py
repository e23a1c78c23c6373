"""Benchmark: the transform network's inference against pytorch/examples' TransformerNet at equal width, in one run.

    python bench/bench_inference_peer.py [--widths 256 512 1024] [--repeats 5] [--threads 2]
                                         [--peers ../shared/peers]

Both networks are Johnson et al.'s architecture at full width (32/64/128 channels, 5 residual blocks, instance norm,
nearest upsampling + convolution), with random weights (speed does not depend on them), on a 4:3 image of each
width. The peer runs as its own ``neural_style.py stylize`` does (``torch.no_grad``, fp32, contiguous NCHW); this
project runs ``realtime.stylize`` on the network as ``realtime.load_style_model`` prepares it (precision "auto",
``inference.inference_layout``: channels_last on a CPU; the batch-of-one instance norm of ``models``). Each timing is the median of ``--repeats`` calls after one warm-up call, the two networks
alternating so that a change of load hits both. Writes bench/results/inference_peer_<device>.json with the device,
threads and load average; prints the ratio ours / peer per width.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "code"))

import cli  # noqa: E402
from benchlib import load_average, utc_timestamp, write_json  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peers", default=str(ROOT.parent / "shared" / "peers"))
    cli.add_run_flags(parser, "JSON file (default: bench/results/inference_peer_cpu.json)",
                      flags=("threads", "output", "device"), device_default="cpu")
    args = parser.parse_args()
    peer_file = Path(args.peers) / "fast_neural_style" / "transformer_net.py"
    if not peer_file.exists():
        print(f"--peers {args.peers}: no fast_neural_style/transformer_net.py there (see ../shared/peers/README.md)",
              file=sys.stderr)
        raise SystemExit(2)
    import torch

    cli.set_threads(args)
    sys.path.insert(0, str(peer_file.parent))
    from transformer_net import TransformerNet as PeerNet  # the peer's file, run from ../shared/peers, never copied

    import inference
    import realtime
    import runtime
    from models import TransformerNet

    device = torch.device(args.device)
    torch.manual_seed(0)
    peer = PeerNet().to(device).eval()
    ours = TransformerNet(n_styles=1, width=1.0).to(device).eval()
    ours.precision = "auto"  # what load_style_model sets, with the layout it chooses:
    inference.inference_layout(ours, device, runtime.resolve_precision("auto", device))
    load_start = load_average()

    def peer_call(image: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return peer(image * 255).clamp(0, 255)

    def timed(call, image: torch.Tensor) -> float:
        runtime.synchronize(device)
        start = time.perf_counter()
        call(image)
        runtime.synchronize(device)
        return (time.perf_counter() - start) * 1000

    rows = []
    for width in args.widths:
        image = torch.rand(1, 3, width * 3 // 4, width, device=device)
        calls = {"peer": peer_call, "ours": lambda x: realtime.stylize(x, ours)}
        times: dict[str, list[float]] = {name: [] for name in calls}
        for name, call in calls.items():
            call(image)  # warm-up
        for _ in range(args.repeats):
            for name, call in calls.items():
                times[name].append(timed(call, image))
        row = {"width": width, "height": width * 3 // 4, **{f"{n}_ms": statistics.median(t) for n, t in times.items()},
               "all_ms": times}
        row["ratio"] = row["ours_ms"] / row["peer_ms"]
        rows.append(row)
        print(f"{width} px wide: ours {row['ours_ms']:.0f} ms, pytorch/examples {row['peer_ms']:.0f} ms, "
              f"ratio {row['ratio']:.2f}", flush=True)
    summary = {"device": runtime.device_description(device), "threads": torch.get_num_threads(),
               "precision": runtime.resolve_precision("auto", device), "torch": torch.__version__,
               "load_average_1min_start": load_start, "load_average_1min": load_average(),
               "time": utc_timestamp(), "rows": rows}
    out = Path(args.output) if args.output else ROOT / "bench" / "results" / f"inference_peer_{device.type}.json"
    write_json(summary, out, indent=1)


if __name__ == "__main__":
    main()
