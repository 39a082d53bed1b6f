"""What both stores do with the bytes of an entry: copy them into a checked temporary
file, and describe what went wrong in one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO

from .protocol import TIMEOUT_OPTION, Check, StoreFault

#: Bytes copied at a time.
COPY_BYTES = 1 << 20


def one_line(exc: BaseException) -> str:
    """An exception from a library as one short line: its type and its words."""
    words = " ".join(str(exc).split()) or "no details"
    if len(words) > 200:
        words = words[:197] + "..."
    return f"{type(exc).__name__}: {words}"


def copy(
    read: Callable[[int], bytes],
    handle: IO[bytes],
    fault: Callable[[str], StoreFault],
    expected: int | None,
    max_bytes: int,
) -> None:
    """Copy what ``read`` gives into ``handle``; a read that fails is ``fault``'s."""
    if expected is not None and expected > max_bytes:
        raise fault(
            f"would be {expected} bytes, more than an NPZ of the sidecar's arrays can be"
            f" ({max_bytes})"
        )
    total = 0
    while True:
        try:
            block = read(COPY_BYTES)
        # Whatever the transport raises, the entry did not arrive.
        except Exception as exc:  # noqa: BLE001
            raise fault(f"could not be read to the end: {_describe_read(exc)}") from None
        if not block:
            break
        total += len(block)
        if total > max_bytes:
            raise fault(
                f"was refused after {max_bytes} bytes, more than an NPZ of the sidecar's"
                " arrays can be"
            )
        handle.write(block)
    if expected is not None and total != expected:
        raise fault(f"was truncated: {total} of {expected} bytes arrived")


def _describe_read(exc: BaseException) -> str:
    import http.client

    if isinstance(exc, http.client.IncompleteRead):
        expected = "" if exc.expected is None else f" of {len(exc.partial) + exc.expected}"
        return f"truncated after {len(exc.partial)}{expected} bytes"
    if isinstance(exc, TimeoutError):
        return f"no bytes came for the timeout ({TIMEOUT_OPTION})"
    return one_line(exc)


def checked(check: Check, fault: Callable[[str], StoreFault]) -> Callable[[Path], None]:
    def run(temp: Path) -> None:
        problem = check(temp)
        if problem is not None:
            raise fault(f"is not the fixture: it {problem}")

    return run
