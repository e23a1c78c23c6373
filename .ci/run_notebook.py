"""Execute a notebook headless (nbclient) and write the executed copy: `python .ci/run_notebook.py IN OUT`."""
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
    if len(sys.argv) != 3:
        sys.exit("usage: python .ci/run_notebook.py NOTEBOOK.ipynb EXECUTED.ipynb")
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    try:
        seconds = run(source, target)
    except CellExecutionError as error:
        sys.exit(f"{source} failed (executed copy with the error: {target}):\n{error}")
    print(f"{source} executed in {seconds:.0f} s -> {target}")
