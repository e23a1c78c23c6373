"""The one command line (``code/cli.py``): flags generated from the options dataclasses, the shared run flags, and
bad input as one line ``error: ...`` with exit status 2."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import adain
import cli
import cyclegan
import gatys
import pytest
import realtime
import torch
from imaging import save_image

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT / "assets" / "carcassonne.jpg"
OPTIONS = {("gatys",): gatys.GatysOptions, ("realtime", "train"): realtime.RealtimeOptions,
           ("cyclegan",): cyclegan.CycleGANOptions, ("adain", "train"): adain.AdaINTrainOptions}
REQUIRED = {("gatys",): ["c.jpg", "s.jpg", "--output", "o.png"],
            ("realtime", "train"): ["--photos", "p", "--styles", "a=s.jpg"],
            ("cyclegan",): ["--photos", "p", "--paintings", "q", "--output", "o"],
            ("adain", "train"): ["--photos", "p", "--styles", "s"]}


def parse(command: tuple[str, ...], *flags: str):
    return cli.build_parser().parse_args([*command, *REQUIRED[command], *flags])


@pytest.mark.parametrize("command", list(OPTIONS))
def test_every_field_has_one_generated_flag_and_no_flag_means_the_default(command: tuple[str, ...], capsys) -> None:
    options_class = OPTIONS[command]
    fields = [f.name for f in dataclasses.fields(options_class) if f.name not in cli.RUN_FIELDS]
    args = parse(command)
    assert not set(fields) & set(vars(args))  # flags left out: the dataclass's defaults apply
    assert cli.options_from_args(options_class, args) == options_class()
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args([*command, "--help"])
    flags = set(capsys.readouterr().out.replace("[", " ").replace("]", " ").split())
    for name in fields:
        if name != "snapshot_every":  # Gatys: needs a callback, no flag
            assert f"--{name.replace('_', '-')}" in flags, name
    assert {"--device", "--threads", "--precision", "--output"} <= flags
    assert "--amp" not in flags and "--out" not in flags


def test_flag_types_follow_the_annotations() -> None:
    args = parse(("gatys",), "--iterations", "100", "200", "--scales", "256", "512", "--style-layers", "relu1_1=0.25",
                 "relu2_1=0.75", "--content-layers", "relu4_2", "--no-channels-last", "--preserve-colors", "none",
                 "--optimizer", "adam", "--learning-rate", "0.1", "--precision", "fp32", "--device", "cpu")
    options = cli.options_from_args(gatys.GatysOptions, args, device=args.device, precision=args.precision)
    assert options.iterations == (100, 200) and options.scales == (256, 512) and options.channels_last is False
    assert options.style_layers == {"relu1_1": 0.25, "relu2_1": 0.75} and options.content_layers == ("relu4_2",)
    assert options.preserve_colors is None and options.optimizer == "adam" and options.learning_rate == 0.1
    assert options.precision == "fp32" and options.device == "cpu"
    assert cli.options_from_args(gatys.GatysOptions, parse(("gatys",), "--iterations", "50")).iterations == 50
    args = parse(("realtime", "train"), "--crop-scale", "0.5", "1", "--style-size", "none", "--image-size", "64")
    options = cli.options_from_args(realtime.RealtimeOptions, args)
    assert options.crop_scale == (0.5, 1.0) and options.style_size is None and options.image_size == 64
    args = parse(("cyclegan",), "--n-epochs", "3", "--n-epochs-decay", "2", "--no-flip", "--upsampling", "resize")
    options = cli.options_from_args(cyclegan.CycleGANOptions, args)
    assert (options.n_epochs, options.n_epochs_decay, options.flip, options.upsampling) == (3, 2, False, "resize")


@pytest.mark.parametrize("flags", [["--optimizer", "newton"], ["--size", "big"], ["--init", "zeros"]])
def test_argparse_rejects_values_outside_the_annotation(flags: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(("gatys",), *flags)
    assert exit_info.value.code == 2 and flags[0] in capsys.readouterr().err


def test_help_comes_from_the_field_comments() -> None:
    comments = cli.field_comments(realtime.RealtimeOptions)
    assert comments["image_size"] == "Johnson sec. 4.1: 256x256 training crops"
    assert "only learn on 1/n_styles of the batches" in comments["style_lr_scale"]  # a comment-only continuation line


def test_training_precision_maps_to_amp() -> None:
    assert cli.training_amp("fp32", "cpu") is False
    assert cli.training_amp("fp16", "cpu") == "fp16" and cli.training_amp("bf16", "cpu") == "bf16"  # as asked
    assert cli.training_amp("auto", "cpu") in (False, "bf16")
    assert cli.amp_for_this_device("cpu") is False


def test_stylize_blend_names_the_flag() -> None:
    assert cli.parse_weights(["a=0.7", "b=0.3"], "--style") == {"a": 0.7, "b": 0.3}
    with pytest.raises(ValueError, match="--style.*'b'"):
        cli.parse_weights(["b"], "--style")


def test_no_other_module_has_a_command_line() -> None:
    for path in (ROOT / "code").glob("*.py"):
        if path.name != "cli.py":
            text = path.read_text()
            assert "argparse" not in text and '__name__ == "__main__"' not in text, path.name
    assert not (ROOT / "code" / "train_all.py").exists()


# ----------------------------------------------------------------------------------------------- bad input
def test_adain_bad_alpha_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    save_image(torch.rand(1, 3, 32, 32), tmp_path / "c.png")
    code = cli.run(cli.main, ["adain", "stylize", str(tmp_path / "c.png"), "--output", str(tmp_path / "out.png"),
                              "--style", str(tmp_path / "c.png"), "--alpha", "2", "--device", "cpu"])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "alpha must be a number in [0, 1]" in error
    assert not (tmp_path / "out.png").exists()
    code = cli.run(cli.main, ["adain", "stylize", str(tmp_path / "missing.png"), "--output", str(tmp_path / "out.png"),
                              "--style", str(tmp_path / "c.png")])
    assert code == 2 and "missing.png" in capsys.readouterr().err


def test_train_all_missing_folder_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    code = cli.run(cli.main, ["train-all", "--photos", str(tmp_path / "none"), "--paintings", str(tmp_path),
                              "--export-dir", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "--photos folder" in error


@pytest.mark.parametrize("argv, words", [
    (["realtime", "stylize", "missing.jpg", "--output", "out.png", "--model", "x"], ("missing.jpg", "not found")),
    (["realtime", "stylize", str(CONTENT), "--output", "out.png", "--model", "realtime_4styles", "--style", "a=abc"],
     ("--style", "abc")),
    (["cyclegan", "--photos", "p", "--paintings", "q", "--output", "o", "--ngf", "0"], ("ngf", ">= 1")),
])
def test_command_line_prints_one_line_and_exits_2(argv: list[str], words: tuple[str, ...], tmp_path: Path) -> None:
    command = [sys.executable, "code/cli.py", *argv]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    assert all(word in lines[0] for word in words), lines[0]
    debug = subprocess.run([*command, "--debug"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert "Traceback" in debug.stderr and debug.returncode != 0


def test_realtime_compare_reuses_the_lbfgs_losses_of_a_reference_on_the_same_objective(tmp_path: Path, capsys,
                                                                                       monkeypatch) -> None:
    """The L-BFGS side of the comparison does not depend on the network: --reference reuses it (no L-BFGS run) and
    gives the same ratios; a reference on other settings is refused in one line, exit 2."""
    import evaluation
    import json

    held_out = realtime.model_recipe(realtime.load_style_model("realtime_4styles"))["held_out"][0]
    save_image(torch.rand(1, 3, 40, 48), tmp_path / held_out)
    base = ["realtime", "compare", "--photos", str(tmp_path), "--count", "1", "--iterations", "2", "--size", "32",
            "--device", "cpu", "--precision", "fp32"]
    assert cli.run(cli.main, base + ["--output", str(tmp_path / "first.json")]) == 0
    first = json.loads((tmp_path / "first.json").read_text())
    assert first["objective"]["style_weight"] == 1.0 and len(first["rows"]) == 4

    def no_lbfgs(*args, **kwargs):
        raise AssertionError("L-BFGS ran although the reference has its loss")
    monkeypatch.setattr(evaluation, "optimise_image", no_lbfgs)
    assert cli.run(cli.main, base + ["--reference", str(tmp_path / "first.json"),
                                     "--output", str(tmp_path / "again.json")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert [r["ratio"] for r in again["rows"]] == pytest.approx([r["ratio"] for r in first["rows"]], rel=1e-6)
    capsys.readouterr()
    code = cli.run(cli.main, [*base[:7], "3", *base[8:], "--reference", str(tmp_path / "first.json")])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "lbfgs_iterations" in error and "first.json" in error
