"""The ``ptycho-fixture`` command line: :func:`run` is the script, :func:`main` runs one
command inside a process that goes on, :func:`build_parser` is the parser the docs'
reference is checked against."""

from .main import main, run
from .parser import build_parser

__all__ = ["build_parser", "main", "run"]
