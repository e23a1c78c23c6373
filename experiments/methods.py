"""Every method on the same work (what ``06_methods.ipynb`` calls): photos x styles at one size, each output scored
with one perceptual loss, the Gatys objective (normalised VGG19; content relu4_2, style relu1_1..relu5_1, alpha 1,
beta scaled to the size as in ``gatys.style_weight_for_size``), with the seconds per image and the peak memory.

Methods: Gatys et al. (L-BFGS from the photo, the image after the first and the last of ``gatys_iterations``, one
run), Johnson et al.'s transform network (``assets/realtime_4styles.pth``) and AdaIN (alpha 1 and 0.6). Each method
runs in a fresh process (spawned), so its peak memory is its own: peak resident memory of that process on a CPU
(``ru_maxrss``, including about 0.8 GB for Python, PyTorch and the weights; ``loaded_rss_mib`` is the part present
before the first image), ``torch.cuda.max_memory_allocated`` on a GPU.
"""
from __future__ import annotations

import multiprocessing
import resource
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

GATYS, TRANSFORM, ADAIN = "gatys", "transform_net", "adain"


def _rss_mib() -> float:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return float("nan")


def _method_runner(method: str, size: int, gatys_iterations: Sequence[int], alphas: Sequence[float],
                   device: torch.device) -> Callable[[torch.Tensor, torch.Tensor, str], list[dict[str, Any]]]:
    """Load the method's network once; returns run(photo, style, style name) -> rows {"method", "seconds", "image"}."""
    import adain
    import gatys
    import realtime
    from figures import synchronise, timed

    if method == GATYS:
        transfer = gatys.StyleTransfer(gatys.GatysOptions(
            size=size, iterations=max(gatys_iterations), style_weight=gatys.style_weight_for_size(size),
            snapshot_every=1, progress=False, device=str(device)))

        def run_gatys(photo: torch.Tensor, style: torch.Tensor, style_name: str) -> list[dict[str, Any]]:
            stamps: dict[int, tuple[float, torch.Tensor]] = {}
            start = time.perf_counter()

            def keep(iteration: int, image: torch.Tensor, record: dict) -> None:
                if iteration in gatys_iterations:
                    synchronise(device)
                    stamps[iteration] = (time.perf_counter() - start, image)

            transfer.run(photo, style, callback=keep)
            return [{"method": f"gatys_{n}", "seconds": stamps[n][0], "image": stamps[n][1]} for n in gatys_iterations]
        return run_gatys
    if method == TRANSFORM:
        network = realtime.load_style_model("realtime_4styles", device=device)

        def run_transform(photo: torch.Tensor, style: torch.Tensor, style_name: str) -> list[dict[str, Any]]:
            realtime.stylize(photo, network, style_name)  # warm-up
            image, seconds = timed(device, realtime.stylize, photo, network, style_name)
            return [{"method": TRANSFORM, "seconds": seconds, "image": image.cpu()}]
        return run_transform
    if method == ADAIN:
        model = adain.load_adain(device=device)

        def run_adain(photo: torch.Tensor, style: torch.Tensor, style_name: str) -> list[dict[str, Any]]:
            adain.stylize_adain(photo, style, model)  # warm-up
            rows = []
            for alpha in alphas:
                image, seconds = timed(device, adain.stylize_adain, photo, style, model, alpha)
                rows.append({"method": f"adain_{alpha:g}", "seconds": seconds, "image": image})
            return rows
        return run_adain
    raise ValueError(f"method must be one of {GATYS!r}, {TRANSFORM!r}, {ADAIN!r}, got {method!r}")


def run_method(method: str, photos: Sequence[str], styles: dict[str, str], size: int, threads: int | None,
               gatys_iterations: Sequence[int] = (100, 300), alphas: Sequence[float] = (1.0, 0.6),
               device: str | None = None) -> dict[str, Any]:
    """Run one method on every (photo, style) pair in this process: {"rows": [...], "peak_rss_mib", ...}."""
    import runtime
    from imaging import load_image

    if threads:
        torch.set_num_threads(threads)
    device = runtime.pick_device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    run = _method_runner(method, size, gatys_iterations, alphas, device)
    loaded_rss = _rss_mib()
    rows: list[dict[str, Any]] = []
    for photo_path in photos:
        photo = load_image(photo_path, size)
        for style_name, style_path in styles.items():
            pair = {"photo": Path(photo_path).name, "style": style_name}
            rows += [{**pair, **row} for row in run(photo, load_image(style_path, size), style_name)]
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"rows": rows, "peak_memory_mib": peak, "loaded_rss_mib": loaded_rss, "device": str(device),
            "threads": torch.get_num_threads()}


def score_rows(rows: list[dict[str, Any]], photos: Sequence[str], styles: dict[str, str], size: int) -> None:
    """Add the Gatys objective (total, content, style) of every output, on the same VGG and targets for all."""
    import gatys
    from imaging import load_image

    transfer = gatys.StyleTransfer(gatys.GatysOptions(size=size, style_weight=gatys.style_weight_for_size(size),
                                                      progress=False, device="cpu"))
    options = transfer.options
    for photo_path in photos:
        photo = load_image(photo_path, size)
        with torch.no_grad():
            features = transfer.features(photo)
            content_targets = {n: features[n].float() for n in options.content_layer_weights()}
            for style_name, style_path in styles.items():
                style_targets = transfer.style_targets([load_image(style_path, size)], [1.0])
                for row in rows:
                    if row["photo"] == Path(photo_path).name and row["style"] == style_name:
                        losses = transfer.losses(row["image"], content_targets, style_targets)
                        row["loss"] = float(losses["total"])
                        row["content_loss"] = float(losses["content"])
                        row["style_loss"] = float(losses["style"]) * options.style_weight


def compare_methods(photos: Sequence[str | Path], styles: dict[str, str | Path], size: int = 256,
                    gatys_iterations: Sequence[int] = (100, 300), alphas: Sequence[float] = (1.0, 0.6),
                    threads: int | None = 1, device: str | None = None, isolate: bool = True,
                    progress: bool = True) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(rows, per_method): one row per (photo, style, method) with the image, seconds, the Gatys objective of the
    output (``loss``, ``content_loss``, weighted ``style_loss``) and ``loss_vs_gatys`` (loss / loss of the longest
    Gatys run on that pair); per_method holds each method process's peak memory, device and thread count.
    ``isolate=False`` runs everything in this process (tests), so the memory figures are then shared."""
    photos, styles = [str(p) for p in photos], {k: str(v) for k, v in styles.items()}
    rows: list[dict[str, Any]] = []
    per_method: dict[str, dict[str, Any]] = {}
    context = multiprocessing.get_context("spawn")
    for method in (GATYS, TRANSFORM, ADAIN):
        started = time.perf_counter()
        arguments = (method, photos, styles, size, threads, tuple(gatys_iterations), tuple(alphas), device)
        if isolate:
            with context.Pool(1) as pool:
                result = pool.apply(run_method, arguments)
        else:
            result = run_method(*arguments)
        rows += result.pop("rows")
        per_method[method] = {**result, "wall_seconds": time.perf_counter() - started}
        if progress:
            print(f"{method}: {per_method[method]['wall_seconds']:.0f} s, peak memory "
                  f"{result['peak_memory_mib']:.0f} MiB", flush=True)
    score_rows(rows, photos, styles, size)
    reference = f"gatys_{max(gatys_iterations)}"
    best = {(r["photo"], r["style"]): r["loss"] for r in rows if r["method"] == reference}
    for row in rows:
        row["loss_vs_gatys"] = row["loss"] / best[(row["photo"], row["style"])]
        family = GATYS if row["method"].startswith(GATYS) else ADAIN if row["method"].startswith(ADAIN) else TRANSFORM
        row["peak_memory_mib"] = per_method[family]["peak_memory_mib"]
    return rows, per_method


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method: mean seconds per image, mean / median Gatys objective relative to the longest Gatys run, peak
    memory (MiB), in the order the methods first appear."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    table = []
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        table.append({"method": method, "pairs": len(mine),
                      "seconds_per_image": statistics.mean(r["seconds"] for r in mine),
                      "mean_loss": statistics.mean(r["loss"] for r in mine),
                      "mean_loss_vs_gatys": statistics.mean(r["loss_vs_gatys"] for r in mine),
                      "median_loss_vs_gatys": statistics.median(r["loss_vs_gatys"] for r in mine),
                      "peak_memory_mib": mine[0]["peak_memory_mib"]})
    return table


def markdown_table(table: list[dict[str, Any]]) -> str:
    lines = ["| method | s / image | Gatys objective (mean) | vs the longest Gatys run (mean / median) | peak memory (MiB) |",
             "|---|---|---|---|---|"]
    for t in table:
        lines.append(f"| {t['method']} | {t['seconds_per_image']:.3g} | {t['mean_loss']:.3g} | "
                     f"{t['mean_loss_vs_gatys']:.2f}x / {t['median_loss_vs_gatys']:.2f}x | {t['peak_memory_mib']:.0f} |")
    return "\n".join(lines)


def write_csv(rows: list[dict[str, Any]], path: str | Path, setting: dict[str, Any]) -> Path:
    """One line per (photo, style, method) with the numbers (no images) and the setting in every line."""
    from figures import write_csv as write_rows

    fields = ["photo", "style", "method", "seconds", "loss", "content_loss", "style_loss", "loss_vs_gatys",
              "peak_memory_mib", *setting]
    return write_rows([{**{k: row[k] for k in fields if k in row}, **setting} for row in rows], path, columns=fields)


def comparison_figure(rows: list[dict[str, Any]], photos: Sequence[str | Path], styles: dict[str, str | Path],
                      size: int, path: str | Path | None = None):
    """Rows: (photo, style) pairs; columns: photo, style, then every method with its time and loss ratio."""
    from imaging import load_image, show_images

    methods = list(dict.fromkeys(r["method"] for r in rows))
    images, titles = [], []
    for photo in photos:
        for style_name, style_path in styles.items():
            images += [load_image(photo, size), load_image(style_path, size)]
            titles += [Path(photo).stem[:22], style_name.replace("_", " ")[:22]]
            for method in methods:
                row = next(r for r in rows if r["photo"] == Path(photo).name and r["style"] == style_name
                           and r["method"] == method)
                images.append(row["image"])
                titles.append(f"{method}\n{row['seconds']:.2g} s, {row['loss_vs_gatys']:.2f}x")
    return show_images(images, titles, columns=2 + len(methods), panel_size=1.9, title_fontsize=7, title_room=0.3,
                       suptitle=f"Every method on the same pairs ({size} px)",
                       caption=("Under each output: seconds per image and its Gatys objective (normalised VGG19, "
                                "content relu4_2, style relu1_1..relu5_1) relative to the longest Gatys run."),
                       path=path)


# ------------------------------------------------------------------------------------------- texture synthesis
LAYER_SETS = {"relu1_1": ("relu1_1",), "to relu2_1": ("relu1_1", "relu2_1"),
              "to relu3_1": ("relu1_1", "relu2_1", "relu3_1"), "to relu4_1": ("relu1_1", "relu2_1", "relu3_1", "relu4_1"),
              "to relu5_1": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")}


def texture_figures(styles: dict[str, str | Path], texture_size: int, output_size: int, iterations: int,
                    layer_style: str, figure_dir: str | Path, seed: int = 0):
    """Gatys et al. (2015) textures: every style image as a texture larger than itself (all five layers), and one
    style image with growing sets of style layers. Returns (figure of textures, figure of layer sets, rows)."""
    from gatys import synthesize_texture
    from imaging import load_image, show_images
    from tqdm.auto import tqdm

    rows, images, titles = [], [], []
    for name, path in tqdm(list(styles.items()), desc="textures"):
        texture = load_image(path, texture_size)
        result = synthesize_texture(texture, output_size, iterations=iterations, seed=seed, progress=False)
        images += [texture, result.image]
        titles += [f"{name.replace('_', ' ')[:24]}\n{tuple(texture.shape[-2:])} px",
                   f"texture {tuple(result.image.shape[-2:])} px\nstyle loss {result.history[-1]['style']:.3g}"]
        rows.append({"style": name, "layers": "to relu5_1", "style_loss": result.history[-1]["style"],
                     "seconds": result.seconds})
    textures = show_images(images, titles, columns=6, panel_size=2.2, title_fontsize=8, title_room=0.3,
                           suptitle="Texture synthesis (Gatys, Ecker & Bethge 2015): the style loss alone, from noise",
                           caption=(f"Each pair: the style image at {texture_size} px and a new {output_size} px texture "
                                    f"with its Gram matrices at relu1_1..relu5_1 ({iterations} L-BFGS iterations)."),
                           path=Path(figure_dir) / "06_textures.jpg")
    texture = load_image(styles[layer_style], texture_size)
    images, titles = [texture], [f"{layer_style.replace('_', ' ')}"]
    for label, layers in tqdm(LAYER_SETS.items(), desc="layer sets"):
        result = synthesize_texture(texture, output_size, style_layers=layers, iterations=iterations, seed=seed,
                                    progress=False)
        images.append(result.image)
        titles.append(f"{label}\n{result.seconds:.0f} s")
        rows.append({"style": layer_style, "layers": label, "style_loss": result.history[-1]["style"],
                     "seconds": result.seconds})
    layer_figure = show_images(images, titles, columns=len(images), panel_size=2.4, title_fontsize=8, title_room=0.3,
                               suptitle="Texture vs the set of style layers (Gatys et al. 2015, fig. 2)",
                               caption=("Matching Gram matrices of shallow layers only reproduces colours and fine "
                                        "grain; each deeper layer adds larger structures."),
                               path=Path(figure_dir) / "06_texture_layers.jpg")
    return textures, layer_figure, rows
