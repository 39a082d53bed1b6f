"""The named fixture sets of ``ptycho_fixture_sets``, as the ``ptycho_sets`` fixture hands
them out: a read-only mapping that verifies a set only when a test first asks for it.

The plugin imports this module only when a test asks for ``ptycho_sets``.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .cache import Verified
    from .spec import FixtureSpec
    from .tensors import PtychoTensors


@final
@dataclass(frozen=True)
class FixtureSet:
    """One verified set: its NPZ, its sidecar, its arrays, and its session tensors.

    ``tensors`` are made on first access on the first selected device and shared by
    every test; a test that modifies one in place fails, and they are restored.
    """

    name: str
    verified: Verified = field(repr=False)
    make_tensors: Callable[[], PtychoTensors] = field(repr=False)

    @property
    def path(self) -> Path:
        return self.verified.spec.path

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self.verified.metadata

    @property
    def arrays(self) -> Mapping[str, NDArray[Any]]:
        return self.verified.arrays

    @property
    def tensors(self) -> PtychoTensors:
        return self.make_tensors()


@final
class _Sets(Mapping[str, FixtureSet]):
    """The sets by name, each opened (verified) on its first lookup."""

    def __init__(self, specs: Mapping[str, FixtureSpec], open_set: Callable[[str], FixtureSet]):
        self._names = tuple(specs)
        self._open = open_set
        self._opened: dict[str, FixtureSet] = {}

    def __getitem__(self, name: str) -> FixtureSet:
        if name not in self._opened:
            if name not in self._names:
                raise KeyError(f"{name!r} is not a fixture set: expected one of {self._names}")
            self._opened[name] = self._open(name)
        return self._opened[name]

    def __contains__(self, name: object) -> bool:
        return name in self._names  # without opening the set

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"<ptycho_sets {', '.join(self._names)}>"


def fixture_sets(
    specs: Mapping[str, FixtureSpec], open_set: Callable[[str], FixtureSet]
) -> Mapping[str, FixtureSet]:
    """A read-only mapping of the sets named in ``specs``, opened by ``open_set`` on demand."""
    return types.MappingProxyType(_Sets(specs, open_set))
