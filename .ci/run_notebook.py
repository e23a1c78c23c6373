"""Execute a notebook headless (nbclient) and write the executed copy: `python .ci/run_notebook.py IN OUT [CELL_TIMEOUT_S]`
(default 1800 s per cell; the report setting of experiments/ needs more on a 2-core CPU, e.g. 3600)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def run(source: Path, target: Path, timeout: int = 1800) -> float:
    """Run every cell with the notebook's folder as working directory; returns seconds. Raises on a failing cell."""
    notebook = nbformat.read(source, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(source.resolve().parent)}})
    start = time.perf_counter()
    try:
        client.execute()
    finally:  # keep the partly executed notebook: its last cell shows the error
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, target)
    return time.perf_counter() - start


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or (len(sys.argv) == 4 and not sys.argv[3].isdigit()):
        print("usage: python .ci/run_notebook.py NOTEBOOK.ipynb EXECUTED.ipynb [CELL_TIMEOUT_S]", file=sys.stderr)
        sys.exit(2)
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    try:
        seconds = run(source, target, int(sys.argv[3]) if len(sys.argv) == 4 else 1800)
    except CellExecutionError as error:
        sys.exit(f"{source} failed (executed copy with the error: {target}):\n{error}")
    print(f"{source} executed in {seconds:.0f} s -> {target}")
