"""``python -m pytest_ptycho_fixture``: the ``ptycho-fixture`` command line."""

from __future__ import annotations

from .cli import run

run()
