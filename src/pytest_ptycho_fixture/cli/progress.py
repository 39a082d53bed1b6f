"""Progress of long work (streaming a large source, simulating a full scan) on stderr.

The work reports ``(done, total)`` to an optional callback after each chunk it finishes,
never per pattern. :func:`terminal_progress` turns that into a tqdm bar when stderr is
a terminal and the user did not ask for quiet; otherwise it hands out ``None`` and the
work reports nothing. tqdm is imported only when a bar is shown.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tqdm import tqdm

#: ``report(done, total)``: called after each chunk with the cumulative amount done.
Progress = Callable[[int, int], None]


def wanted(*, quiet: bool) -> bool:
    """Whether to show progress: stderr is a terminal and quiet was not asked for."""
    return not quiet and sys.stderr.isatty()


class _Bar:
    """A ``(done, total)`` callback drawing a tqdm bar from the first report to the last."""

    def __init__(self, description: str, unit: str, *, scale: bool) -> None:
        self.description = description
        self.unit = unit
        self.scale = scale
        self.bar: tqdm[Any] | None = None
        self.drawing = False

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.drawing = True
            self.bar = tqdm(
                total=total,
                desc=self.description,
                unit=self.unit,
                unit_scale=self.scale,
                unit_divisor=1024 if self.scale else 1000,
                file=sys.stderr,
                dynamic_ncols=True,
            )
        bar = self.bar
        bar.update(done - bar.n)
        if done >= total:
            # Finished: end the bar's line before the command prints its results.
            bar.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.drawing:
            # Ctrl-C came while tqdm drew its first line: end that line, as tqdm would
            # have, so that the command's last message gets a line of its own.
            sys.stderr.write("\n")


@contextlib.contextmanager
def terminal_progress(
    description: str, unit: str, *, quiet: bool, scale: bool = False
) -> Iterator[Progress | None]:
    """A progress callback for the block, or ``None`` when nothing is to be shown.

    ``scale`` shows large counts with binary prefixes (for bytes).
    """
    if not wanted(quiet=quiet):
        yield None
        return
    bar = _Bar(description, unit, scale=scale)
    try:
        yield bar
    finally:
        bar.close()
