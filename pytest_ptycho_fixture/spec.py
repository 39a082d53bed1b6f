"""Which fixture a run uses: its path, sidecar, source and subset, and where variants go.

Everything here is needed to configure pytest and print the header line, in every run,
so it imports nothing beyond the standard library: the cache that verifies and
generates fixtures (:mod:`.cache`) is left to the first fixture that needs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import final

#: How positions are chosen, how many, the source layouts, and the label of the built-in
#: source: what the plugin checks its options against.
STRATEGIES = ("stratified", "first")
DEFAULT_STRATEGY = "stratified"
MIN_SUBSET = 16
DEFAULT_SUBSET = 64
LAYOUTS = ("HWN", "NHW")
BUILTIN_SOURCE = "builtin:synthetic-run1084"

FIXTURE_NAME = "minimal_dataset_v1"
SHIPPED_SIDECAR = Path(__file__).parent / "data" / f"{FIXTURE_NAME}.json"
CACHE_FOLDER = "ptycho-fixture"


def user_cache_folder() -> Path:
    """The per-user cache, for runs without pytest's cache provider."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pytest-ptycho-fixture"


@final
@dataclass(frozen=True)
class FixtureSpec:
    """Where a fixture lives, what it is made from, and the sidecar it is checked against."""

    path: Path
    sidecar: Path
    source: Path | None = None
    subset_size: int = DEFAULT_SUBSET
    strategy: str = DEFAULT_STRATEGY
    committed: bool = True
    #: Layout of the source diffraction (HWN or NHW); ``None`` decides it from the coordinates.
    layout: str | None = None

    @property
    def lock_path(self) -> Path:
        from .locking import lock_path

        return lock_path(self.path)

    @property
    def shipped(self) -> bool:
        return self.sidecar == SHIPPED_SIDECAR


def parameters_key(source: Path | None, subset_size: int, strategy: str) -> str:
    """A short hash naming a fixture variant in the cache folder."""
    text = json.dumps([str(source) if source else BUILTIN_SOURCE, subset_size, strategy])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cached_spec(folder: Path, source: Path | None, subset_size: int, strategy: str) -> FixtureSpec:
    """A variant kept in the cache folder with its own sidecar, made on first use."""
    name = f"{FIXTURE_NAME}-{parameters_key(source, subset_size, strategy)}"
    path = folder / f"{name}.npz"
    return FixtureSpec(path, path.with_suffix(".json"), source, subset_size, strategy, False)


def main_spec(
    *,
    path: Path | None,
    sidecar: Path | None,
    source: Path | None,
    subset_size: int,
    strategy: str,
    folder: Path,
    layout: str | None = None,
) -> FixtureSpec:
    """Resolve the configured fixture.

    With no path configured the NPZ lives in ``folder``. Its sidecar is then the one shipped
    in the package when source, subset size and strategy are the defaults, else (unless
    ``sidecar`` is configured) one made with the NPZ in ``folder``.
    """
    if path is not None:
        sidecar = sidecar or path.with_suffix(".json")
        spec = FixtureSpec(path, sidecar, source, subset_size, strategy, True)
    elif source is None and subset_size == DEFAULT_SUBSET and strategy == DEFAULT_STRATEGY:
        path = folder / f"{FIXTURE_NAME}.npz"
        spec = FixtureSpec(path, sidecar or SHIPPED_SIDECAR, source, subset_size, strategy, True)
    else:
        spec = cached_spec(folder, source, subset_size, strategy)
        if sidecar is not None:
            spec = replace(spec, sidecar=sidecar, committed=True)
    return replace(spec, layout=layout) if source is not None else spec


def resolve_source(root: Path, source: str | os.PathLike[str] | None) -> Path | None:
    """``None`` (the built-in scan) for empty or ``builtin``, else a path under ``root``."""
    text = os.fspath(source) if source is not None else ""
    if text.strip() in ("", "builtin", BUILTIN_SOURCE):
        return None
    return root / Path(text).expanduser()


def show(root: Path | None, path: Path) -> str:
    """``path`` relative to the rootdir when it is inside it."""
    if root is not None:
        with contextlib.suppress(ValueError):
            return str(path.relative_to(root))
    return str(path)


def source_label(root: Path | None, spec: FixtureSpec) -> str:
    """The source as the header and messages name it."""
    return BUILTIN_SOURCE if spec.source is None else show(root, spec.source)
