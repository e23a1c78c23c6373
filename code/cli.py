"""Command-line error handling shared by every entry point: bad input ends with one line ``error: ...`` on stderr
and exit status 2 (argparse's own convention), no traceback; ``--debug`` anywhere on the command line shows it.

Usage at the bottom of a module: ``if __name__ == "__main__": raise SystemExit(cli.run(main))``."""
from __future__ import annotations

import sys
from typing import Callable, Sequence

import checkpoint
import nntools
import runtime
import weights

# What a user can cause and fix: wrong values or types, missing/unreadable files, folders in use, a run that
# cannot resume as asked, weights that do not verify, a training that diverged.
INPUT_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, TypeError, KeyError, OSError, checkpoint.CheckpointError, nntools.NonFiniteLossError,
    runtime.OutputDirLockedError, weights.WeightsError,
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
