"""The three methods on the shipped images, sized for the device: what ``demo.ipynb`` calls.

Every function returns a matplotlib figure (saved under ``output_dir``) and the numbers it measured, so the
notebook stays a list of calls. Settings adapt to the device: full quality on a GPU; on a CPU, sizes and
iterations that finish the whole demo within about two minutes on 2 cores."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import cyclegan
import realtime
import runtime
import torch
from cyclegan import translate
from gatys import GatysOptions, StyleTransfer
from imaging import load_image, save_image, show_images
from runtime import free_cpu_threads, pick_device

ASSETS = Path(__file__).resolve().parents[1] / "assets"


T = TypeVar("T")


@dataclass
class DemoSettings:
    """Sizes and iteration counts per device (``for_device`` picks them)."""

    device: str
    gatys_scales: tuple[int, ...]
    gatys_iterations: tuple[int, ...]
    gatys_style_weight: float
    realtime_size: int
    cyclegan_size: int
    cpu_threads: int

    @classmethod
    def for_device(cls, device: str | torch.device | None = None) -> "DemoSettings":
        """GPU: full quality. CPU: 256 px and 100 L-BFGS iterations, on the cores other jobs leave free."""
        device = pick_device(device)
        if device.type == "cpu":
            threads = free_cpu_threads()
            torch.set_num_threads(threads)
            # beta 3e6 at 256 px balances like the default 1e7 at 512 px (content loss grows with the pixel count)
            return cls(str(device), (256,), (100,), 3e6, 512, 256, threads)
        return cls(str(device), (256, 512), (150, 150), 1e7, 1024, 512, torch.get_num_threads())


def synchronise(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so that wall times measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, call: Callable[..., T], *args: Any) -> tuple[T, float]:
    """(``call(*args)``, its wall time in seconds), the device synchronised before and after."""
    synchronise(device)
    start = time.perf_counter()
    result = call(*args)
    synchronise(device)
    return result, time.perf_counter() - start


def timing_figure(images: Sequence[torch.Tensor], titles: Sequence[str], columns: int, suptitle: str,
                  size: torch.Size, device: str, precision: str, times: Sequence[float], note: str, path: Path):
    """:func:`imaging.show_images` with a caption giving the size, device, precision and mean ms per image."""
    height, width = size[-2:]
    return show_images(
        images, titles, columns=columns, panel_size=2.8, suptitle=suptitle,
        caption=(f"{width}x{height} px on {device} in {precision}; mean {sum(times) / len(times):.0f} ms per image "
                 f"{note}"),
        path=path,
    )


def gatys_demo(
    settings: DemoSettings,
    output_dir: Path,
    content: str = "carcassonne.jpg",
    style: str = "starry_night.jpg",
):
    """Gatys et al. on one content/style pair: figure content | style | result, with the time taken."""
    final_size = settings.gatys_scales[-1]
    content_image = load_image(ASSETS / content, final_size)
    style_image = load_image(ASSETS / style, final_size)
    options = GatysOptions(scales=settings.gatys_scales, iterations=settings.gatys_iterations,
                           style_weight=settings.gatys_style_weight, device=settings.device)
    result = StyleTransfer(options).run(content_image, style_image)
    save_image(result.image, output_dir / "gatys_result.png")
    scales = " -> ".join(f"{w}x{h} px" for h, w in result.sizes)  # as run (the memory check may downscale)
    figure = show_images(
        [content_image, style_image, result.image],
        ["content", "style", f"Gatys et al. ({result.seconds:.1f} s)"],
        suptitle="Optimisation-based style transfer (Gatys et al. 2016)",
        caption=(f"{sum(settings.gatys_iterations)} L-BFGS iterations at {scales} on {result.device} in "
                 f"{result.precision} (VGG passes; losses in fp32); "
                 f"normalised VGG19, content relu4_2, style relu1_1..relu5_1, alpha 1, beta {options.style_weight:g}. "
                 f"Total loss {result.history[0]['total']:.3g} -> {result.final_loss:.3g}."),
        path=output_dir / "gatys.png",
    )
    return figure, result


def realtime_demo(
    settings: DemoSettings,
    output_dir: Path,
    photos: Sequence[str] = ("carcassonne.jpg", "chameleon.jpg"),
    model_name: str = "realtime_4styles",
):
    """Every shipped style on each photo with the transform network; returns (figure, ms per image)."""
    device = torch.device(settings.device)
    model = realtime.load_style_model(model_name, device=device)
    images, titles, times = [], [], []
    for photo_name in photos:
        photo = load_image(ASSETS / photo_name, settings.realtime_size).to(device)
        realtime.stylize(photo, model)  # warm-up (allocations, cuDNN autotuning)
        images.append(photo.cpu())
        titles.append(Path(photo_name).stem)
        for style in model.style_names:
            output, seconds = timed(device, realtime.stylize, photo, model, style)
            times.append(seconds * 1000)
            images.append(output.cpu())
            titles.append(f"{style.replace('_', ' ')}\n{times[-1]:.0f} ms")
            save_image(output, output_dir / f"realtime_{Path(photo_name).stem}_{style}.jpg")
    figure = timing_figure(
        images, titles, len(model.style_names) + 1,
        "Real-time style transfer (Johnson et al. 2016): one network, four styles (conditional instance norm)",
        images[0].shape, settings.device, runtime.resolve_precision(model.precision, device), times,
        "(one forward pass; warm-up excluded). Photos not seen in training.", output_dir / "realtime.png")
    return figure, sum(times) / len(times)


def cyclegan_demo(
    settings: DemoSettings,
    output_dir: Path,
    photo: str = "pool.jpg",
    painting: str = "van_gogh_0013.jpg",
):
    """Photo -> painting and painting -> photo on held-out images, with the cycle reconstructions."""
    device = torch.device(settings.device)
    photo2painting = cyclegan.load_generator("photo2painting", device=device)
    painting2photo = cyclegan.load_generator("painting2photo", device=device)
    rows, titles = [], []
    for name, forward, backward, labels in [
        (photo, photo2painting, painting2photo, ("photo", "-> painting", "-> photo again")),
        (painting, painting2photo, photo2painting, ("painting", "-> photo", "-> painting again")),
    ]:
        real = load_image(ASSETS / name, settings.cyclegan_size).to(device)
        fake = translate(forward, real)
        reconstructed = translate(backward, fake)
        error = (reconstructed - real).abs().mean().item()
        rows += [real.cpu(), fake.cpu(), reconstructed.cpu()]
        titles += [labels[0], labels[1], f"{labels[2]} (L1 {error:.3f})"]
        save_image(fake, output_dir / f"cyclegan_{Path(name).stem}.jpg")
    figure = show_images(
        rows, titles, columns=3, panel_size=3.0,
        suptitle="CycleGAN (Zhu et al. 2017): unpaired photo <-> painting",
        caption=(f"Images the generators never saw, on {device} in "
                 f"{runtime.resolve_precision(photo2painting.precision, device)}. "
                 "Shipped generators: a short CPU run (128 px, ngf 32, 6 blocks, "
                 "1300 iterations; see assets/MANIFEST.json), so expect colour and texture shifts rather than "
                 "the paper's quality."),
        path=output_dir / "cyclegan.png",
    )
    return figure


ADAIN_STYLES = ("starry_night.jpg", "great_wave.jpg", "kandinsky_composition_viii.jpg", "night_cafe.jpg",
                "bal_du_moulin_de_la_galette.jpg", "mona_lisa.jpg", "poppies_hokusai.jpg", "summertime_cassatt.jpg",
                "village_street_auvers.jpg")


def adain_demo(
    settings: DemoSettings,
    output_dir: Path,
    photo: str = "chameleon.jpg",
    styles: Sequence[str] = ADAIN_STYLES,
    size: int | None = None,
):
    """AdaIN (Huang & Belongie 2017) with each of the nine style images on one photo; returns (figure, ms per image).

    One pretrained decoder serves every style, including the five no network here was trained on. Default size: the
    real-time section's on a GPU, 384 px on a CPU: there one image costs about 2.6 s of CPU time on this project's
    2-core EPYC (measured at load 11, where it took 19 s of wall time; at 512 px 17 s of wall time)."""
    import adain

    device = torch.device(settings.device)
    size = size or (settings.realtime_size if device.type != "cpu" else 384)
    model = adain.load_adain(device=device)
    content = load_image(ASSETS / photo, size)
    adain.stylize_adain(content, load_image(ASSETS / styles[0], size), model)  # warm-up
    images, titles, times = [content], [f"{Path(photo).stem} (photo)"], []
    for style_name in styles:
        style = load_image(ASSETS / style_name, size)
        output, seconds = timed(device, adain.stylize_adain, content, style, model)
        times.append(seconds * 1000)
        images.append(output)
        titles.append(f"{Path(style_name).stem.replace('_', ' ')[:26]}\n{times[-1]:.0f} ms")
        save_image(output, output_dir / f"adain_{Path(photo).stem}_{Path(style_name).stem}.jpg")
    figure = timing_figure(
        images, titles, 5, "Arbitrary style transfer (AdaIN, Huang & Belongie 2017): one decoder, any style image",
        content.shape, settings.device, runtime.resolve_precision("auto", device), times,
        "(style encoding included, warm-up excluded). Five of the nine styles were never seen by any network here.",
        output_dir / "adain.png")
    return figure, sum(times) / len(times)
