"""The ``ptycho-fixture`` command line: parse, run the command, and turn what it refuses
into one line.

Exit status: 0 success, 1 verification mismatch, 2 bad input (one line on stderr,
nothing written), 130 interrupted by Ctrl-C (one line on stderr; what was under way is
undone).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import NoReturn

from . import commands
from .commands import EXIT_BAD_INPUT, BadInput, export_outputs, sidecar_out
from .parser import build_parser
from .progress import Progress, terminal_progress

#: 128 + SIGINT: what a shell reports for a command stopped by Ctrl-C.
EXIT_INTERRUPTED = 130
#: Commands that report progress: bar description, unit, binary prefixes.
PROGRESS = {"generate": ("reading source", "B", True), "simulate": ("simulating", "pattern", False)}
#: What each command runs.
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "generate": commands.generate,
    "verify": commands.verify,
    "push": commands.push,
    "info": commands.info,
    "export": commands.export,
    "simulate": commands.simulate,
    "show": commands.show,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    outputs: dict[Path, tuple[int, int, int] | None] = {}
    try:
        args = build_parser().parse_args(argv)
        outputs = {path: _identity(path) for path in _outputs(args)}
        from ..contract import ContractError

        handler = COMMANDS[args.command]
        try:
            with _progress(args) as progress:
                args.progress = progress
                return handler(args)
        except (ContractError, BadInput) as exc:
            message = str(exc)
        except OSError as exc:
            message = f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
    except KeyboardInterrupt:
        # Temporary files and new folders are gone by now; an output replaced before
        # the interrupt (while the results were printed, say) is named, not denied.
        written = [str(path) for path, before in outputs.items() if _identity(path) != before]
        what = f" after writing {', '.join(written)}" if written else "; nothing was written"
        print(f"ptycho-fixture: interrupted{what}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"ptycho-fixture: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run() -> NoReturn:
    """Run the command line as a program and exit: the ``ptycho-fixture`` script.

    Call :func:`main` to run a command inside a process that goes on.
    """
    raise SystemExit(main())


def _progress(args: argparse.Namespace) -> AbstractContextManager[Progress | None]:
    """A progress callback for the command while it runs (``None``: report nothing)."""
    description, unit, scale = PROGRESS.get(args.command, ("", "", False))
    quiet = args.command not in PROGRESS or args.quiet
    return terminal_progress(description, unit, quiet=quiet, scale=scale)


def _outputs(args: argparse.Namespace) -> list[Path]:
    """The files the command writes (none for ``verify`` and ``info``)."""
    if args.command == "generate":
        return [args.output, sidecar_out(args)]
    if args.command == "export":
        return export_outputs(args)
    return [args.output] if args.command in ("simulate", "show") else []


def _identity(path: Path) -> tuple[int, int, int] | None:
    """What tells a file apart from the one that replaced it (``None``: no file)."""
    try:
        stat = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_mtime_ns)
