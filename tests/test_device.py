"""Device, precision and version helpers: the architecture check, bf16 where native, old-torch compatibility, the
start-up version check, the memory estimate of the optimisers' state and the checkpoint schedule."""
from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import checkpoint
import gatys
import nntools
import pytest
import runtime
import torch

# A torch wheel for CUDA 12.8+ as shipped in 2025: no Pascal (sm_60/61) kernels, PTX only for the newest.
RECENT_WHEEL = ["sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]


@pytest.mark.parametrize("capability, arch_list, supported", [
    ((6, 1), RECENT_WHEEL, False),                       # GTX 1080 Ti: no sm_6x cubin, PTX only for 12.0
    ((6, 1), ["sm_50", "sm_60", "sm_70"], True),         # sm_60 cubin runs on 6.1 (same major, lower minor)
    ((7, 5), RECENT_WHEEL, True),                        # RTX 2080 Ti / T4
    ((8, 9), ["sm_80", "sm_90"], True),                  # sm_80 cubin runs on 8.9
    ((8, 9), ["sm_90", "sm_100"], False),                # newer majors do not run on older GPUs
    ((12, 1), ["sm_90", "compute_90"], True),            # PTX is compiled just in time for newer GPUs
    ((12, 1), ["sm_90", "sm_100a"], False),
    ((7, 0), [], True),                                  # unknown build: trust the probe instead
])
def test_architecture_rules(capability, arch_list, supported):
    assert runtime.arch_supported(capability, arch_list) is supported


@pytest.fixture
def pascal_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (6, 1))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce GTX 1080 Ti")
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: RECENT_WHEEL)
    runtime.cuda_unusable_reason.cache_clear()
    yield
    runtime.cuda_unusable_reason.cache_clear()


def test_gpu_without_kernels_in_this_wheel_falls_back_to_the_cpu_with_a_warning(pascal_gpu):
    with pytest.warns(UserWarning, match=r"GTX 1080 Ti, compute capability 6.1\) is not supported by this torch.*"
                                         r"sm_70.*running on the CPU instead"):
        assert runtime.pick_device().type == "cpu"
    assert runtime.pick_device().type == "cpu"  # the same single choice
    assert runtime.pick_device("cpu").type == "cpu"


def test_gpu_failing_a_test_operation_falls_back_to_the_cpu(pascal_gpu, monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_60"])  # kernels exist, but no driver here
    with pytest.warns(UserWarning, match="fails a test operation.*running on the CPU instead"):
        assert runtime.pick_device().type == "cpu"


def test_bf16_only_where_native(monkeypatch):
    assert runtime.bf16_supported("cpu") and runtime.resolve_amp("bf16", torch.device("cpu")) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert not runtime.bf16_supported("cuda:0")
    with pytest.warns(UserWarning, match=r"amp='bf16' needs a CPU or a CUDA GPU of compute capability >= 8.0"):
        assert runtime.resolve_amp("bf16", torch.device("cuda", 0)) is None
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert runtime.bf16_supported("cuda:0") and runtime.resolve_amp("bf16", torch.device("cuda", 0)) is torch.bfloat16
    assert not runtime.bf16_supported("mps")


def test_loss_scaler_without_torch_amp_grad_scaler(monkeypatch):
    """torch < 2.3 has no torch.amp.GradScaler: TrainingModel (hence every Experiment) must still build."""
    monkeypatch.delattr(torch.amp, "GradScaler")
    model = nntools.TrainingModel()
    assert not model.scaler.is_enabled()
    with pytest.warns(UserWarning, match="needs CUDA"):
        model.set_precision("fp16", torch.device("cpu"))
    assert not model.scaler.is_enabled() and model.amp_dtype is None


@pytest.mark.parametrize("python, torch_version, problems", [
    ((3, 11, 7), "2.14.1+cu130", []),
    ((3, 10, 0), "2.1.0", []),
    ((3, 9, 18), "2.5.0a0+git1234", ["Python 3.9.18 is too old: this code needs Python >= 3.10"]),
    ((3, 12, 1), "2.0.1+cu118", ["torch 2.0.1+cu118 is too old: this code needs torch >= 2.1"]),
    ((3, 8, 10), "1.13.1", ["Python 3.8.10", "torch 1.13.1"]),
])
def test_version_check(python, torch_version, problems):
    found = runtime.version_problems(python, torch_version)
    assert len(found) == len(problems) and all(p in f for p, f in zip(problems, found)), found
    if problems:
        with pytest.raises(runtime.UnsupportedVersionError, match="too old"):
            runtime.check_versions(python, torch_version)
    assert runtime.parse_version("2.14.1+cu130") == (2, 14, 1) and runtime.version_problems() == []


@pytest.mark.parametrize("name, optimizer_class, kwargs", [
    ("lbfgs", torch.optim.LBFGS, dict(lr=1.0, max_iter=1, history_size=12, tolerance_grad=-1, tolerance_change=-1)),
    ("adam", torch.optim.Adam, dict(lr=0.01)),
    ("rmsprop", torch.optim.RMSprop, dict(lr=0.01)),
])
def test_optimizer_memory_estimate_matches_the_state_really_kept(name, optimizer_class, kwargs):
    """The bytes the memory check reserves for the optimiser (item 9) against the tensors it really holds after its
    history has filled: state tensors of the image's size, plus the gradient."""
    torch.manual_seed(0)
    image = torch.rand(1, 3, 8, 12, requires_grad=True)
    target = torch.rand(1, 3, 8, 12)
    curvatures = torch.logspace(-3, 3, image.numel()).view_as(image)  # ill-conditioned: L-BFGS keeps its history full
    optimizer = optimizer_class([image], **kwargs)

    def closure():
        optimizer.zero_grad()
        loss = (curvatures * (image - target) ** 2).sum()
        loss.backward()
        return loss

    for _ in range(20):
        optimizer.step(closure)
    tensors = [image.grad]
    for state in optimizer.state.values():
        for value in state.values():
            values = value if isinstance(value, list) else [value]
            tensors += [v for v in values if isinstance(v, torch.Tensor) and v.numel() == image.numel()]
    held = sum(t.numel() * t.element_size() for t in tensors)
    assert gatys.optimizer_bytes(8, 12, name, history_size=12) == held, (name, held)


def test_checkpoint_schedule_by_time_and_by_count():
    now = [0.0]
    schedule = checkpoint.CheckpointSchedule(iterations=500, minutes=10, start_iteration=100, clock=lambda: now[0])
    assert not schedule.due(100) and not schedule.due(599)
    assert schedule.due(600)  # 500 iterations since the start
    schedule.saved(600)
    now[0] = 599.0
    assert not schedule.due(700)
    now[0] = 600.0
    assert schedule.due(700)  # 10 minutes
    schedule.saved(700)
    assert not schedule.due(700)  # nothing new to save
    by_time = checkpoint.CheckpointSchedule(iterations=None, minutes=10, clock=lambda: now[0])
    assert not by_time.due(10**6)
    with pytest.raises(ValueError, match="checkpoint interval"):
        checkpoint.CheckpointSchedule(iterations=0)


def test_cpu_bf16_native_reads_the_cpu_flags(monkeypatch):
    assert runtime.cpu_bf16_native("flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni")
    assert runtime.cpu_bf16_native("flags : fpu amx_bf16 amx_tile")
    assert not runtime.cpu_bf16_native("flags : fpu sse2 avx2 fma")  # an AVX2-only EPYC: emulated, slow
    assert not runtime.cpu_bf16_native("flags : avx512f avx512bw")   # AVX-512 without its bf16 extension
    monkeypatch.setattr(runtime, "cpu_bf16_native", lambda cpu_flags=None: False)
    assert not runtime.bf16_native("cpu") and runtime.bf16_supported("cpu")
    with pytest.warns(UserWarning, match="emulated"):
        assert runtime.resolve_amp("bf16", torch.device("cpu")) is torch.bfloat16  # still runs, as asked


RETAINED_PROBE = """
import sys
import torch
sys.path.insert(0, {code!r})
import runtime

def rss_mib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20

if sys.argv[1] == "returned":
    assert runtime.return_large_cpu_buffers()
big = torch.ones(30 << 18)  # 30 MiB, mmapped; freeing it raises glibc's dynamic threshold to 30 MiB
del big
before = rss_mib()
blocks = [torch.ones(20 << 18) for _ in range(4)]  # 4 blocks of 20 MiB, written
pin = torch.ones(16)  # a small block after them on the heap
del blocks
print(rss_mib() - before)
"""


@pytest.mark.skipif(not (sys.platform == "linux" and platform.libc_ver()[0] == "glibc"), reason="glibc's mallopt")
def test_large_cpu_buffers_go_back_to_the_os_when_freed(tmp_path):
    """Of 80 MiB of freed 20 MiB tensors, part stays resident with glibc's dynamic threshold; all goes back with ours."""
    probe = tmp_path / "probe.py"
    probe.write_text(RETAINED_PROBE.format(code=str(Path(runtime.__file__).parent)))
    retained = {mode: float(subprocess.run([sys.executable, str(probe), mode], capture_output=True, text=True,
                                           check=True).stdout) for mode in ("default", "returned")}
    assert retained["default"] > 24, retained
    assert retained["returned"] < 8, retained


def test_synchronize_waits_on_cuda_only(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    runtime.synchronize("cpu")
    runtime.synchronize(torch.device("cpu"))
    assert calls == []
    runtime.synchronize("cuda:0")
    assert calls == [torch.device("cuda", 0)]
