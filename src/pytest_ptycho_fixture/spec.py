"""Which fixture a run uses: its path, sidecar, source and subset, and where variants go.

Everything here is needed to configure pytest and print the header line, in every run,
so it imports nothing beyond the standard library: the cache that verifies and
generates fixtures (:mod:`.cache`) is left to the first fixture that needs it.

Each option is parsed here, once, by a ``parse_*`` function that the command line (through
:func:`argparse_type`), the ini options and the Python API all use; a refused value is an
:class:`OptionError` naming the option, quoting the value and saying what is accepted.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import math
import operator
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, final

if TYPE_CHECKING:
    from .geometry import Geometry

#: How positions are chosen, how many, the source layouts, and the label of the built-in
#: source: what the plugin checks its options against.
STRATEGIES = ("stratified", "first", "spread", "groups")
DEFAULT_STRATEGY = "stratified"
MIN_SUBSET = 16
DEFAULT_SUBSET = 64
#: The gridsize of ``groups`` when none is given: PtychoPINN's groups of 2 x 2.
DEFAULT_GRIDSIZE = 2
LAYOUTS = ("HWN", "NHW")
BUILTIN_SOURCE = "builtin:synthetic-run1084"
#: The fixture keys that ``--keys`` maps to HDF5 datasets, and those a mapping must give
#: (with one of ``diffraction``, amplitudes, or ``intensities``, square-rooted).
KEY_NAMES = (
    "diffraction",
    "intensities",
    "xcoords",
    "ycoords",
    "probeGuess",
    "objectGuess",
    "xcoords_start",
    "ycoords_start",
    "scan_index",
)
REQUIRED_KEYS = ("xcoords", "ycoords", "probeGuess", "objectGuess")
#: A ``--keys`` mapping: ``(fixture key, dataset path)`` pairs in the order given.
Keys = tuple[tuple[str, str], ...]

_T = TypeVar("_T")


class OptionError(ValueError):
    """An option value that is refused.

    ``str()`` is one line naming the option, quoting the value and saying what is accepted:
    ``--subset-size: 'abc' is not a subset size: expected a whole number >= 16``.
    ``option`` is however the caller names it: a flag, ``ini option NAME``, a keyword.
    """

    def __init__(self, option: str, value: object, what: str, expected: str) -> None:
        super().__init__(option, value, what, expected)
        self.option = option
        self.value = value
        #: What the value should have been, e.g. ``subset size``.
        self.what = what
        #: The values accepted, in words.
        self.expected = expected

    @property
    def reason(self) -> str:
        """The message without the option, for callers that name it themselves (argparse)."""
        return f"{self.value!r} is not a {self.what}: expected {self.expected}"

    def __str__(self) -> str:
        return f"{self.option}: {self.reason}"

    def __reduce__(self) -> tuple[type[OptionError], tuple[str, object, str, str]]:
        return (type(self), (self.option, self.value, self.what, self.expected))


def _whole_number(value: object) -> int | None:
    """``value`` as an int if it is a whole number (or its text), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def _real_number(value: object) -> float | None:
    """``value`` as a float if it is a real number (or its text), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _one_of(values: tuple[str, ...]) -> str:
    """``a, b or c``."""
    return f"{', '.join(values[:-1])} or {values[-1]}" if len(values) > 1 else values[0]


def parse_subset_size(text: str | int, option: str = "--subset-size") -> int:
    """Positions in the fixture: a whole number >= :data:`MIN_SUBSET`.

    The upper bound is the number of positions in the source, checked when it is read.
    """
    value = _whole_number(text)
    if value is None or value < MIN_SUBSET:
        raise OptionError(option, text, "subset size", f"a whole number >= {MIN_SUBSET}")
    return value


def parse_strategy(text: str, option: str = "--subset-strategy") -> str:
    """How positions are chosen: one of :data:`STRATEGIES`."""
    strategy = text.strip() if isinstance(text, str) else None
    if strategy not in STRATEGIES:
        raise OptionError(option, text, "subset strategy", _one_of(STRATEGIES))
    return strategy


def parse_gridsize(text: str | int, option: str = "--gridsize") -> int:
    """The side of a ``groups`` group: a whole number >= 1 (groups of gridsize**2)."""
    value = _whole_number(text)
    if value is None or value < 1:
        raise OptionError(option, text, "gridsize", "a whole number >= 1, e.g. 2 for 2x2 groups")
    return value


def grouping(
    strategy: str,
    subset_size: int,
    gridsize: str | int | None,
    option: str = "--gridsize",
    inherited: int | None = None,
) -> int | None:
    """The gridsize a subset is built with: ``None`` unless ``strategy`` is ``groups``.

    ``gridsize`` is what was given (parsed here by :func:`parse_gridsize`; ``None`` or
    empty text: none); a ``groups`` subset without one takes ``inherited`` (the main
    fixture's), else :data:`DEFAULT_GRIDSIZE`. A gridsize given with another strategy,
    or a subset size that is not a multiple of gridsize**2, is an :class:`OptionError`
    naming ``option``.
    """
    given = None
    if gridsize is not None and not (isinstance(gridsize, str) and not gridsize.strip()):
        given = parse_gridsize(gridsize, option)
    if strategy != "groups":
        if given is not None:
            raise OptionError(
                option, given, "setting for this strategy", "no gridsize, or the groups strategy"
            )
        return None
    size = given if given is not None else inherited if inherited is not None else DEFAULT_GRIDSIZE
    if subset_size % (size * size):
        raise OptionError(
            option,
            size,
            f"gridsize for {subset_size} positions",
            f"one whose square divides the subset size ({size * size} does not divide"
            f" {subset_size})",
        )
    return size


def parse_layout(text: str, option: str = "--layout") -> str | None:
    """Layout of the source diffraction, one of :data:`LAYOUTS`; empty (``None``): decide it."""
    if isinstance(text, str) and not text.strip():
        return None
    return _layout(
        text,
        option,
        f"{' or '.join(LAYOUTS)} (or nothing, to decide it from the number of coordinates)",
    )


def parse_known_layout(text: str, option: str = "--layout") -> str:
    """A layout that must be given (what ``simulate`` writes): one of :data:`LAYOUTS`."""
    return _layout(text, option, " or ".join(LAYOUTS))


def _layout(text: str, option: str, expected: str) -> str:
    layout = text.strip() if isinstance(text, str) else None
    if layout not in LAYOUTS:
        raise OptionError(option, text, "layout", expected)
    return layout


def parse_seconds(text: str | float, option: str, what: str = "lock timeout") -> float:
    """A timeout: a finite number of seconds >= 0."""
    value = _real_number(text)
    if value is None or not (math.isfinite(value) and value >= 0):
        raise OptionError(option, text, what, "a finite number of seconds >= 0")
    return value


def parse_store_timeout(text: str | float, option: str) -> float:
    """How long a store may take to connect or to send the next bytes: seconds > 0."""
    value = parse_seconds(text, option, "store timeout")
    if value == 0:
        raise OptionError(option, text, "store timeout", "a finite number of seconds > 0")
    return value


def parse_store(text: str, option: str, root: Path) -> str | None:
    """A store URL (``file://``, ``http(s)://``, ``s3://``, ``gs://``, any fsspec protocol)
    or a folder; empty (``None``): no store.

    A folder, or a relative ``file://`` path, is made absolute under ``root``; a URL is
    kept as written, without a trailing ``/``.
    """
    value = text.strip() if isinstance(text, str) else ""
    if not value:
        return None
    expected = (
        "a folder or a URL such as file:///shared/fixtures, https://host/fixtures,"
        " s3://bucket/fixtures or gs://bucket/fixtures"
    )
    scheme, separator, rest = value.partition("://")
    if not separator:
        return str(root / Path(value).expanduser())
    if not (scheme[:1].isalpha() and all(c.isalnum() or c in "+-." for c in scheme)):
        raise OptionError(option, text, "store URL", expected)
    scheme = scheme.lower()
    rest = rest.rstrip("/")
    if scheme == "file":
        return "file://" + str(root / Path(rest or "/").expanduser())
    if not rest or (scheme in ("http", "https", "s3", "gs") and rest.startswith("/")):
        raise OptionError(option, text, "store URL", expected)
    return f"{scheme}://{rest}"


def store_scheme(url: str) -> str:
    """The scheme of a store :func:`parse_store` gave: ``file`` for a folder."""
    scheme, separator, _ = url.partition("://")
    return scheme if separator else "file"


def store_label(root: Path | None, url: str) -> str:
    """A store as messages name it: a folder relative to the rootdir, a URL without its
    password."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return show(root, Path(url))
    host, slash, path = rest.partition("/")
    user, at, where = host.rpartition("@")
    if not (at and ":" in user):
        return url
    return f"{scheme}://{user.partition(':')[0]}:***@{where}{slash}{path}"


#: The environment variable that turns on offline mode, as --ptycho-fixture-offline does.
OFFLINE_ENV = "PTYCHO_FIXTURE_OFFLINE"
#: Seconds a store may take to connect or to send more bytes, unless configured otherwise.
DEFAULT_STORE_TIMEOUT = 30.0
#: The words a switch given in an environment variable may be.
SWITCH_ON, SWITCH_OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def parse_switch(text: str, option: str) -> bool:
    """An on/off switch as an environment variable holds it: 1/true/yes/on or 0/false/no/off."""
    value = text.strip().lower()
    if value in SWITCH_ON:
        return True
    if value in SWITCH_OFF:
        return False
    expected = f"{_one_of(SWITCH_ON)}, or {_one_of(SWITCH_OFF[:-1])}"
    raise OptionError(option, text, "switch", expected)


def parse_device(text: str, option: str = "--ptycho-device") -> str:
    """A device request, normalised: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``all``."""
    # Imported here, not at the top, so that .devices may one day import from this module.
    from .devices import DEVICE_CHOICES, parse_device_spec

    try:
        return parse_device_spec(text)
    except (ValueError, AttributeError):
        raise OptionError(option, text, "device", DEVICE_CHOICES) from None


def parse_fraction(text: str | float, option: str = "--min-coverage") -> float:
    """A fraction: a number from 0 to 1."""
    value = _real_number(text)
    if value is None or not 0.0 <= value <= 1.0:
        raise OptionError(
            option, text, "fraction between 0 and 1", "0, 1 or a number in between, e.g. 0.5"
        )
    return value


def parse_positions(text: str | int, option: str = "--positions") -> int:
    """A number of scan positions: a whole number >= 1."""
    value = _whole_number(text)
    if value is None or value < 1:
        raise OptionError(option, text, "positive whole number", "1 or more scan positions")
    return value


def parse_keys(text: str, option: str = "--keys") -> Keys | None:
    """``key=/dataset/path`` pairs, split by commas or whitespace; empty (``None``): none.

    Keys are those of :data:`KEY_NAMES`; :data:`REQUIRED_KEYS` and exactly one of
    ``diffraction`` or ``intensities`` must be given.
    """
    expected = (
        "KEY=/path pairs separated by commas, e.g. diffraction=/data,xcoords=/x,ycoords=/y,"
        "probeGuess=/probe,objectGuess=/object; keys: " + ", ".join(KEY_NAMES)
    )
    pairs: list[tuple[str, str]] = []
    for item in text.replace(",", " ").split():
        key, equals, where = item.partition("=")
        if not equals or not where or key not in KEY_NAMES:
            raise OptionError(option, item, "KEY=/path entry with a known KEY", expected)
        if key in dict(pairs):
            raise OptionError(option, text, "mapping that gives each key once", expected)
        pairs.append((key, where))
    if not pairs:
        return None
    given = dict(pairs)
    missing = [key for key in REQUIRED_KEYS if key not in given]
    patterns = [key for key in ("diffraction", "intensities") if key in given]
    if len(patterns) == 2:
        raise OptionError(option, text, "mapping of diffraction or intensities, not both", expected)
    if not patterns:
        missing.append("diffraction (or intensities)")
    if missing:
        lacks = ", ".join(missing)
        raise OptionError(option, text, f"complete mapping (it lacks {lacks})", expected)
    return tuple(pairs)


#: The keys of a geometry given as text: photon energy (eV), detector distance (m), and
#: the side of a square detector pixel (m).
GEOMETRY_KEYS = ("energy_ev", "distance_m", "pixel_m")


def parse_geometry(text: str, option: str = "--geometry") -> Geometry | None:
    """``energy_ev=E,distance_m=Z,pixel_m=P`` as a :class:`.geometry.Geometry`; ``None``
    for empty. All three are required, each a finite number above 0."""
    if not text.strip():
        return None
    from .geometry import Geometry

    expected = (
        "energy_ev=E,distance_m=Z,pixel_m=P: the photon energy in eV, the detector"
        " distance and the detector pixel in metres, each a number > 0, e.g."
        " energy_ev=8000,distance_m=2,pixel_m=75e-6"
    )
    values: dict[str, float] = {}
    for item in text.replace(",", " ").split():
        key, equals, value = item.partition("=")
        if not equals or key not in GEOMETRY_KEYS:
            raise OptionError(option, item, "geometry entry KEY=VALUE with a known KEY", expected)
        if key in values:
            raise OptionError(option, text, "geometry that gives each key once", expected)
        number = _real_number(value)
        if number is None or not (math.isfinite(number) and number > 0):
            raise OptionError(option, item, f"{key} of a number > 0", expected)
        values[key] = number
    missing = [key for key in GEOMETRY_KEYS if key not in values]
    if missing:
        raise OptionError(
            option, text, f"complete geometry (it lacks {', '.join(missing)})", expected
        )
    pixel = values["pixel_m"]
    return Geometry(values["energy_ev"], values["distance_m"], (pixel, pixel))


#: The formats ``ptycho-fixture export`` writes (:data:`.export.KNOWN_FORMATS`).
EXPORT_FORMATS = ("ptychodus", "cxi")


def parse_export_format(text: str, option: str = "--format") -> str:
    """One of :data:`EXPORT_FORMATS`."""
    value = text.strip().lower()
    if value not in EXPORT_FORMATS:
        raise OptionError(option, text, "format to export", _one_of(EXPORT_FORMATS))
    return value


#: The pytest options of this plugin that take a path or a URL.
PATH_OPTIONS = ("--ptycho-fixture-source", "--ptycho-fixture-store")


def detached_value(args: Sequence[str], where: str) -> str | None:
    """Why a path option of :data:`PATH_OPTIONS` in ``args`` is refused, if its value
    follows it as a word of its own; ``None`` if none does.

    pytest finds the rootdir and the ini file from the arguments that are not options
    before it loads this plugin, so in ``--ptycho-fixture-source /data/Run1084.npz`` it
    takes the path for a test path, looks for the ini file above ``/data``, and the run
    does not read the project's. With ``=`` the value is part of the option.
    """
    for option, value in itertools.pairwise(args):
        if option == "--":
            return None
        if option in PATH_OPTIONS:
            return (
                f"{option} {value} ({where}): write {option}={value}; with a space, pytest"
                f" takes {value} for a test path while it looks for the rootdir and the ini"
                " file, before it knows this option, and the project's ini file is not read"
            )
    return None


def argparse_type(parse: Callable[[str, str], _T], option: str) -> Callable[[str], _T]:
    """``parse`` for ``argparse``'s ``type=``: an :class:`OptionError` becomes its usage error.

    argparse puts ``argument OPTION:`` in front of the message itself, so the message it
    is given leaves the option out.
    """

    def convert(text: str) -> _T:
        try:
            return parse(text, option)
        except OptionError as exc:
            raise argparse.ArgumentTypeError(exc.reason) from None

    # argparse names the type in its own messages ("invalid subset size value: ...").
    convert.__name__ = parse.__name__.removeprefix("parse_").replace("_", " ")
    convert.__qualname__ = convert.__name__
    return convert


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
    #: The side of the ``groups`` strategy's groups; ``None`` for the other strategies.
    gridsize: int | None = None
    #: The patterns of a ptychodus product source: a CXI file or an NPZ.
    diffraction: Path | None = None
    #: The datasets of an HDF5 source in a layout of its own (``--keys``).
    keys: Keys | None = None
    #: The geometry of a source that holds none (``--geometry``).
    geometry: Geometry | None = None
    #: The probe of a source that holds none (``--probe``): an NPY or an NPZ.
    probe: Path | None = None

    @property
    def lock_path(self) -> Path:
        from .locking import lock_path

        return lock_path(self.path)

    @property
    def shipped(self) -> bool:
        return self.sidecar == SHIPPED_SIDECAR


def parameters_key(
    source: Path | None,
    subset_size: int,
    strategy: str,
    layout: str | None = None,
    gridsize: int | None = None,
    diffraction: Path | None = None,
    keys: Keys | None = None,
    geometry: Geometry | None = None,
    probe: Path | None = None,
) -> str:
    """A short hash naming a fixture variant in the cache folder.

    A layout, a gridsize, a diffraction file, keys, a geometry and a probe are part of it
    only when given, so that the names of the variants without them stay what they were.
    """
    fields: list[object] = [str(source) if source else BUILTIN_SOURCE, subset_size, strategy]
    if layout is not None:
        fields.append(layout)
    if gridsize is not None:
        fields.append({"gridsize": gridsize})
    if diffraction is not None:
        fields.append({"diffraction": str(diffraction)})
    if keys is not None:
        fields.append({"keys": [list(pair) for pair in keys]})
    if geometry is not None:
        fields.append({"geometry": [geometry.energy_ev, geometry.distance_m, *geometry.pixel_m]})
    if probe is not None:
        fields.append({"probe": str(probe)})
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:12]


def cached_spec(
    folder: Path,
    source: Path | None,
    subset_size: int,
    strategy: str,
    layout: str | None = None,
    gridsize: int | None = None,
    diffraction: Path | None = None,
    keys: Keys | None = None,
    geometry: Geometry | None = None,
    probe: Path | None = None,
) -> FixtureSpec:
    """A variant kept in the cache folder with its own sidecar, made on first use.

    The built-in source has one layout, so ``layout`` counts only for a source file.
    """
    layout = layout if source is not None else None
    key = parameters_key(
        source, subset_size, strategy, layout, gridsize, diffraction, keys, geometry, probe
    )
    path = folder / f"{FIXTURE_NAME}-{key}.npz"
    return FixtureSpec(
        path,
        path.with_suffix(".json"),
        source,
        subset_size,
        strategy,
        False,
        layout,
        gridsize,
        diffraction,
        keys,
        geometry,
        probe,
    )


def main_spec(
    *,
    path: Path | None,
    sidecar: Path | None,
    source: Path | None,
    subset_size: int,
    strategy: str,
    folder: Path,
    layout: str | None = None,
    gridsize: int | None = None,
    diffraction: Path | None = None,
    keys: Keys | None = None,
    geometry: Geometry | None = None,
    probe: Path | None = None,
) -> FixtureSpec:
    """Resolve the configured fixture.

    With no path configured the NPZ lives in ``folder``. Its sidecar is then the one shipped
    in the package when source, subset size and strategy are the defaults, else (unless
    ``sidecar`` is configured) one made with the NPZ in ``folder``. The built-in source
    has one layout, so ``layout`` counts only for a source file.
    """
    builtin_default = (
        source is None and subset_size == DEFAULT_SUBSET and strategy == DEFAULT_STRATEGY
    )
    if path is None and builtin_default:
        path = folder / f"{FIXTURE_NAME}.npz"
        return FixtureSpec(path, sidecar or SHIPPED_SIDECAR, source, subset_size, strategy)
    spec = cached_spec(
        folder, source, subset_size, strategy, layout, gridsize, diffraction, keys, geometry, probe
    )
    if path is not None:
        sidecar = sidecar or path.with_suffix(".json")
        return replace(spec, path=path, sidecar=sidecar, committed=True)
    return spec if sidecar is None else replace(spec, sidecar=sidecar, committed=True)


def resolve_source(root: Path, source: str | os.PathLike[str] | None) -> Path | None:
    """``None`` (the built-in scan) for empty or ``builtin``, else a path under ``root``."""
    text = os.fspath(source) if source is not None else ""
    if text.strip() in ("", "builtin", BUILTIN_SOURCE):
        return None
    return root / Path(text).expanduser()


def resolve_file(root: Path, text: str) -> Path | None:
    """``None`` for empty, else a path under ``root``."""
    return root / Path(text).expanduser() if text.strip() else None


def show(root: Path | None, path: Path) -> str:
    """``path`` relative to the rootdir when it is inside it."""
    if root is not None:
        with contextlib.suppress(ValueError):
            return str(path.relative_to(root))
    return str(path)


def source_label(root: Path | None, spec: FixtureSpec) -> str:
    """The source as the header and messages name it."""
    return BUILTIN_SOURCE if spec.source is None else show(root, spec.source)


# -- named fixture sets -----------------------------------------------------------------

#: The name of the main fixture among the sets, which no ``ptycho_fixture_sets`` line
#: may declare: it is configured by the ``ptycho_fixture_*`` options.
DEFAULT_SET = "default"
#: Where a set's NPZ and sidecar go when no ``ptycho_fixture_path`` says which folder.
SETS_FOLDER = Path("tests") / "fixtures" / "ptycho"
SET_KEYS = (
    "source",
    "subset_size",
    "strategy",
    "gridsize",
    "layout",
    "path",
    "diffraction",
    "keys",
    "geometry",
    "probe",
)
_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
#: ``--regen-fixture`` without a value: every set.
REGEN_ALL = "*"


def _set_name(text: str, option: str, taken: Iterable[str]) -> str:
    if not text or not set(text) <= _NAME_CHARACTERS:
        raise OptionError(option, text, "set name", "letters, digits, '_', '.' and '-'")
    if text == DEFAULT_SET:
        raise OptionError(
            option,
            text,
            "name a line may declare",
            "another name (default is the main fixture, set by the ptycho_fixture_* options)",
        )
    if text in taken:
        raise OptionError(option, text, "new set name", "a name no earlier line declares")
    return text


def _set_line(line: str, where: str, taken: Iterable[str]) -> tuple[str, dict[str, str]]:
    """A set's name and its ``key=value`` pairs, as text."""
    name, *pairs = line.split()
    name = _set_name(name, f"{where}: name", taken)
    values: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals:
            raise OptionError(f"{where}: {pair}", pair, "setting", "key=value")
        if key not in SET_KEYS:
            raise OptionError(f"{where}: {key}", key, "set key", _one_of(SET_KEYS))
        if key in values:
            raise OptionError(f"{where}: {key}", pair, "new key", "each key once a line")
        values[key] = value
    return name, values


def _given(
    values: Mapping[str, str], key: str, parse: Callable[[str, str], _T], default: _T, where: str
) -> _T:
    return parse(values[key], f"{where}: {key}") if key in values else default


def parse_sets(
    lines: Iterable[str],
    option: str,
    *,
    root: Path,
    folder: Path,
    main: FixtureSpec,
    layout: str | None = None,
) -> dict[str, FixtureSpec]:
    """The ``ptycho_fixture_sets`` lines ``NAME key=value ...`` as committed fixtures by name.

    Each value is parsed by the ``parse_*`` function of its ini option; a key a line
    leaves out takes the main fixture's value (``layout``: the configured one; a gridsize
    only for ``groups``). A set lives at ``folder/NAME.npz`` unless ``path=`` (relative
    to ``root``) says otherwise, with its sidecar beside it. A refused line is an
    :class:`OptionError` naming ``option``, the line and the key.
    """
    sets: dict[str, FixtureSpec] = {}
    owners = {main.path: DEFAULT_SET}
    for line in lines:
        where = f"{option}, line {line!r}"
        name, values = _set_line(line, where, sets)

        def parsed(key: str, parse: Callable[[str, str], _T], default: _T) -> _T:
            return _given(values, key, parse, default, where)  # noqa: B023 (used at once)

        source = resolve_source(root, values["source"]) if "source" in values else main.source
        # A diffraction file, keys, a geometry and a probe belong to a source: a line with a
        # source of its own does not take the main fixture's.
        own = "source" in values
        diffraction = (
            resolve_file(root, values["diffraction"])
            if "diffraction" in values
            else (None if own else main.diffraction)
        )
        keys = (
            parse_keys(values["keys"], f"{where}: keys")
            if "keys" in values
            else (None if own else main.keys)
        )
        geometry = (
            parse_geometry(values["geometry"], f"{where}: geometry")
            if "geometry" in values
            else (None if own else main.geometry)
        )
        probe = (
            resolve_file(root, values["probe"])
            if "probe" in values
            else (None if own else main.probe)
        )
        size = parsed("subset_size", parse_subset_size, main.subset_size)
        strategy = parsed("strategy", parse_strategy, main.strategy)
        gridsize = grouping(
            strategy, size, values.get("gridsize"), f"{where}: gridsize", main.gridsize
        )
        chosen_layout = parsed("layout", parse_layout, layout)
        path = root / Path(values["path"]).expanduser() if "path" in values else None
        path = path or folder / f"{name}.npz"
        if path.suffix != ".npz":
            raise OptionError(
                f"{where}: path", values["path"], "fixture path", "a path ending .npz"
            )
        if path in owners:
            raise OptionError(
                f"{where}: path",
                show(root, path),
                "path of a set of its own",
                f"another path (it is the fixture of the set {owners[path]})",
            )
        owners[path] = name
        sets[name] = FixtureSpec(
            path,
            path.with_suffix(".json"),
            source,
            size,
            strategy,
            True,
            chosen_layout if source is not None else None,
            gridsize,
            diffraction,
            keys,
            geometry,
            probe,
        )
    return sets


def parse_regen(text: str, names: Iterable[str], option: str = "--regen-fixture") -> list[str]:
    """The sets ``--regen-fixture[=NAME[,NAME]]`` regenerates: all of ``names`` for
    :data:`REGEN_ALL`, else the ones named, each once."""
    known = list(names)
    if text == REGEN_ALL:
        return known
    chosen = [name.strip() for name in text.split(",")]
    for name in chosen:
        if name not in known:
            raise OptionError(
                option,
                name,
                "fixture set",
                f"{_one_of(tuple(known))}, or no value for all of them (before a test path,"
                " put the flag after the path or write --regen-fixture -- PATH)",
            )
    return list(dict.fromkeys(chosen))
