"""``precision="auto"`` (issue 14, item 2): which precision runs where (:func:`runtime.resolve_precision`), the errors
and warnings for precisions the hardware lacks, and that autocast changes only the network passes: Gatys' losses and
Gram matrices stay fp32, the feed-forward networks return fp32 images.

CPUs are told apart by monkeypatching ``runtime.cpu_bf16_native`` (the /proc/cpuinfo flags test is in
``test_device.py``); CUDA GPUs by their compute capability, with ``fake_cuda.py`` where tensors must live "on" them.
Images are tiny (32-40 px): bf16 on this AVX2-only CPU is emulated and slow.
"""
from __future__ import annotations

import warnings

import cyclegan
import pytest
import realtime
import runtime
import torch
from cyclegan import translate
from fake_cuda import fake_cuda
from gatys import GatysOptions, StyleTransfer
from losses import gram_matrix
from models import ResnetGenerator, TransformerNet, VGGFeatures

CPU = torch.device("cpu")
GPU = torch.device("cuda", 0)


@pytest.fixture
def native_cpu(monkeypatch):
    """A CPU with AVX512-BF16 or AMX."""
    monkeypatch.setattr(runtime, "cpu_bf16_native", lambda cpu_flags=None: True)


@pytest.fixture
def avx2_cpu(monkeypatch):
    """A CPU without bf16 instructions (this machine's AMD EPYC: bf16 is emulated, 40x slower)."""
    monkeypatch.setattr(runtime, "cpu_bf16_native", lambda cpu_flags=None: False)


def resolve_quietly(precision: str, device) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the choices of this table warn about nothing
        return runtime.resolve_precision(precision, device)


# ------------------------------------------------------------------------------------------------- the table
def test_cpu_with_bf16_instructions_runs_bf16_by_default(native_cpu):
    assert resolve_quietly("auto", "cpu") == "bf16"
    assert resolve_quietly("bf16", "cpu") == "bf16"
    assert resolve_quietly("fp32", "cpu") == "fp32"


def test_cpu_without_bf16_instructions_runs_fp32_by_default(avx2_cpu):
    assert resolve_quietly("auto", "cpu") == "fp32"
    assert resolve_quietly("fp32", CPU) == "fp32"


def test_this_machines_cpu_resolves_auto_from_its_own_flags():
    expected = "bf16" if runtime.cpu_bf16_native() else "fp32"  # fp32 on the AVX2-only EPYC of this project
    assert resolve_quietly("auto", "cpu") == expected


@pytest.mark.parametrize("capability, auto", [
    ((6, 1), "fp32"),   # Pascal (GTX 1080 Ti)
    ((7, 0), "fp32"),   # Volta (V100): no benchmark yet shows fp16 within 3 % of fp32, so no fp16 by default
    ((7, 5), "fp32"),   # Turing (RTX 2080 Ti)
    ((8, 0), "bf16"),   # Ampere (A100)
    ((8, 6), "bf16"),   # Ampere (RTX 3090)
    ((9, 0), "bf16"),   # Hopper (H100/H200)
])
def test_cuda_auto_is_bf16_from_ampere_on_and_fp32_before(monkeypatch, capability, auto):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert resolve_quietly("auto", GPU) == auto
    assert resolve_quietly("fp16", GPU) == "fp16"  # asked for: every CUDA GPU has fp16 autocast
    assert resolve_quietly("fp32", GPU) == "fp32"
    if capability >= (8, 0):
        assert resolve_quietly("bf16", GPU) == "bf16"


def test_other_devices_run_fp32_by_default():
    assert resolve_quietly("auto", "mps") == "fp32"
    assert resolve_quietly("auto", "meta") == "fp32"


# ------------------------------------------------------------------------------------------ errors, warnings
@pytest.mark.parametrize("bad", ["half", "float32", "FP32", "", "int8"])
def test_unknown_precision_is_an_error_listing_the_choices(bad):
    message = rf"precision must be one of 'auto', 'fp32', 'bf16', 'fp16', got '{bad}'"
    with pytest.raises(ValueError, match=message):
        runtime.resolve_precision(bad, "cpu")
    with pytest.raises(ValueError, match=message):
        GatysOptions(precision=bad)


def test_unknown_precision_fails_in_every_inference_entry_point():
    import adain

    image = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="'auto', 'fp32', 'bf16', 'fp16', got 'half'"):
        adain.stylize_adain(image, image, precision="half")  # before any weights are loaded
    with pytest.raises(ValueError, match="'auto', 'fp32', 'bf16', 'fp16', got 'half'"):
        realtime.load_style_model("realtime_4styles", device="cpu", precision="half")
    with pytest.raises(ValueError, match="'auto', 'fp32', 'bf16', 'fp16', got 'half'"):
        cyclegan.load_generator("photo2painting", device="cpu", precision="half")
    net = TransformerNet(n_styles=1).eval()
    with pytest.raises(ValueError, match="got 'half'"):
        realtime.stylize(image, net, precision="half")
    with pytest.raises(ValueError, match="got 'half'"):
        translate(ResnetGenerator(ngf=4, n_blocks=1), image, precision="half")


@pytest.mark.parametrize("cpu", ["native_cpu", "avx2_cpu"])
def test_fp16_on_a_cpu_warns_and_runs_fp32(request, cpu):
    request.getfixturevalue(cpu)
    with pytest.warns(UserWarning, match=r"precision='fp16' needs a CUDA GPU; running in fp32 on cpu"):
        assert runtime.resolve_precision("fp16", "cpu") == "fp32"


def test_bf16_on_a_gpu_without_it_warns_and_runs_fp32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    with pytest.warns(UserWarning, match=r"precision='bf16' is not native on cuda:0; running in fp32"):
        assert runtime.resolve_precision("bf16", GPU) == "fp32"
    with pytest.warns(UserWarning, match=r"not native on mps; running in fp32"):
        assert runtime.resolve_precision("bf16", "mps") == "fp32"


def test_bf16_on_a_cpu_without_bf16_instructions_warns_that_it_is_emulated(avx2_cpu):
    with pytest.warns(UserWarning, match=r"emulated.*running emulated bf16 as asked \(precision='auto' runs fp32"):
        assert runtime.resolve_precision("bf16", "cpu") == "bf16"


# ------------------------------------------------------------------------------------- what autocast changes
@pytest.fixture(scope="module")
def vgg() -> VGGFeatures:
    return VGGFeatures(["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"], weights="normalised")


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, 32, 32, generator=generator)
    style = torch.rand(1, 3, 32, 32, generator=generator).pow(2)  # another colour distribution
    return content, style


def tiny(**overrides) -> GatysOptions:
    values = dict(size=32, iterations=2, progress=False, style_weight=1e6, device="cpu")
    values.update(overrides)
    return GatysOptions(**values)


def test_gatys_default_is_auto_and_runs_bf16_only_on_a_native_cpu(monkeypatch, vgg):
    assert GatysOptions().precision == "auto"
    monkeypatch.setattr(runtime, "cpu_bf16_native", lambda cpu_flags=None: False)
    assert StyleTransfer(tiny(), vgg=vgg).precision == "fp32"
    monkeypatch.setattr(runtime, "cpu_bf16_native", lambda cpu_flags=None: True)
    assert StyleTransfer(tiny(), vgg=vgg).precision == "bf16"


def test_gatys_losses_and_grams_stay_fp32_under_bf16(native_cpu, vgg, images):
    content, style = images
    bf16 = StyleTransfer(tiny(precision="bf16"), vgg=vgg)
    fp32 = StyleTransfer(tiny(precision="fp32"), vgg=vgg)
    features = bf16.features(content)
    assert features["relu1_1"].dtype == torch.bfloat16  # the VGG pass did run in bf16
    assert fp32.features(content)["relu1_1"].dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):  # even inside autocast, the Gram's bmm is fp32
        assert gram_matrix(features["relu4_1"]).dtype == torch.float32

    targets = {}
    for transfer in (bf16, fp32):
        with torch.no_grad():
            content_targets = {n: f.float() for n, f in transfer.features(content).items() if n == "relu4_2"}
            style_targets = transfer.style_targets([style], [1.0])
            losses = transfer.losses(content.flip(-1), content_targets, style_targets)
        assert all(t.dtype == torch.float32 for t in style_targets.values())
        assert all(v.dtype == torch.float32 for v in losses.values()), {k: v.dtype for k, v in losses.items()}
        targets[transfer.precision] = float(losses["total"])
    # bf16 keeps 8 bits of mantissa in the features; the fp32 sums over them land within a few percent
    assert targets["bf16"] == pytest.approx(targets["fp32"], rel=0.05)


def test_gatys_run_records_and_shows_the_precision_that_ran(native_cpu, vgg, images, capsys):
    content, style = images
    result = StyleTransfer(tiny(precision="auto", progress=True), vgg=vgg).run(content, style)
    assert result.precision == "bf16"
    assert all(isinstance(h["total"], float) for h in result.history)
    assert result.history[-1]["total"] < result.history[0]["total"]  # the fp32 objective still goes down
    assert "Gatys style transfer (bf16)" in capsys.readouterr().err  # the progress bar says which ran


def test_feed_forward_networks_autocast_and_return_fp32_images(native_cpu):
    torch.manual_seed(0)
    image = torch.rand(1, 3, 36, 40)  # not a multiple of 4: padded and cropped back
    net = TransformerNet(n_styles=1).eval()
    generator = ResnetGenerator(ngf=8, n_blocks=2)
    ran: list[torch.dtype] = []
    hooks = [module.register_forward_hook(lambda m, i, o: ran.append(o.dtype))
             for module in (next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d)),
                            next(m for m in generator.modules() if isinstance(m, torch.nn.Conv2d)))]
    reference = realtime.stylize(image, net, precision="fp32")
    assert ran == [torch.float32]
    auto = realtime.stylize(image, net)  # auto on a native CPU: bf16
    assert ran[-1] == torch.bfloat16 and auto.dtype == torch.float32 and auto.shape == image.shape
    assert (auto - reference).abs().max() < 0.1  # the same picture, to bf16's rounding
    net.precision = "fp32"  # what load_style_model(precision="fp32") sets
    realtime.stylize(image, net)
    assert ran[-1] == torch.float32

    reference = translate(generator, image, precision="fp32")
    assert ran[-1] == torch.float32
    auto = translate(generator, image)
    assert ran[-1] == torch.bfloat16 and auto.dtype == torch.float32 and auto.shape == image.shape
    assert (auto - reference).abs().max() < 0.1
    for hook in hooks:
        hook.remove()


def test_shipped_models_load_with_auto_and_keep_an_explicit_choice():
    assert realtime.load_style_model("realtime_4styles", device="cpu").precision == "auto"
    assert cyclegan.load_generator("photo2painting", device="cpu", precision="fp32").precision == "fp32"


def test_on_a_fake_ampere_gpu_gatys_picks_bf16_and_on_turing_fp32_without_a_warning(monkeypatch, vgg, images):
    content, _ = images
    for capability, expected in [((7, 5), "fp32"), ((8, 6), "bf16")]:
        with fake_cuda(monkeypatch, capability=capability):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                transfer = StyleTransfer(tiny(device="cuda"), vgg=vgg)
            assert transfer.precision == expected
            dtype = torch.bfloat16 if expected == "bf16" else torch.float32
            assert transfer.features(content.to(GPU))["relu1_1"].dtype == dtype
