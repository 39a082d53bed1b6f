"""Read an HDF5 file safely and in bounded memory: only in-file data, only what is asked.

A dataset is checked before a byte of it is read. Refused, each with one line naming
the file and the dataset: external links, external raw storage and virtual datasets
whose sources lie outside the file (nothing outside the file is ever opened); soft-link
chains that loop or run longer than :data:`MAX_LINK_HOPS`; filters that this HDF5 build
cannot apply; object and region references, strings and compound types; and declared
sizes that the file could not hold: stored bytes beyond the file's size, a chunk larger
than the file could inflate to, or a dataset declaring more than its stored bytes could
inflate to (deflate, the strongest of HDF5's standard filters, expands at most 1032:1;
:data:`FILTER_INFLATION` holds the filters that expand further). Detector data
compressed with bitshuffle, LZ4, Blosc, Zstd and the other filters of
:data:`PLUGIN_FILTERS` is read through hdf5plugin, imported (which registers its filters
with HDF5) when the first file is opened; without it, such a dataset is refused with
the install command. Selected frames are read by hyperslab, so a chunked dataset reads
only the chunks that hold them.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..contract import ContractError

if TYPE_CHECKING:
    from numpy.typing import NDArray

SIGNATURE = b"\x89HDF\r\n\x1a\n"
INSTALL = "pip install 'pytest-ptycho-fixture[hdf5]'"
#: Soft links followed from one name before the chain is called a loop (HDF5's own limit).
MAX_LINK_HOPS = 16
#: The filters hdf5plugin registers with HDF5, by filter id (its ``hdf5plugin.FILTERS``):
#: named when a dataset needs one that this HDF5 cannot apply.
PLUGIN_FILTERS = {
    307: "bzip2",
    32001: "Blosc",
    32004: "LZ4",
    32008: "bitshuffle",
    32013: "ZFP",
    32015: "Zstd",
    32017: "SZ",
    32018: "FCIDECOMP",
    32024: "SZ3",
    32026: "Blosc2",
    32028: "SPERR",
    32033: "HTJ2K",
}
#: Deflate cannot expand data by more than this factor (zlib's bound); lzf, shuffle and
#: the other built-in filters less. So does LZ4, alone or after bitshuffle (Eiger's
#: default): its format spends at least one byte on every 255 of a run. Measured on one
#: 16 MiB chunk of zeros: deflate 1028:1, LZ4 255:1, bitshuffle/LZ4 174:1; Poisson
#: detector frames with a bright centre (uint16 and uint32, 64x64 to 1024x1024, one
#: frame a chunk) 4:1 to 61:1, and all-zero frames at most 255:1, through either.
MAX_INFLATION = 1032
#: Zstd stores a block of up to 128 KiB of one byte in 4 bytes (measured 31596:1).
ZSTD_INFLATION = 32768
#: HDF5's largest chunk (4 GiB) over one stored byte: no ratio is refused, only a dataset
#: that declares data and stores none.
UNBOUNDED_INFLATION = 1 << 32
#: hdf5plugin's filters that can expand further than deflate, so that their legitimate
#: files (a run of dark frames, say) are not called hostile. bitshuffle and Blosc may
#: compress with Zstd inside (measured 27594:1 and 18079:1 on 16 MiB of zeros). The
#: others store a chunk of one value in a few bytes whatever its size (16 MiB of zeros:
#: bzip2 45 bytes, Blosc2 259, SZ 44, SZ3 135, SPERR 18, FCIDECOMP 319), or code a block
#: of zeros in a few bits with no stated bound (ZFP 4096:1 on 3-D float64 zeros, HTJ2K
#: 893:1 on uint16 zeros).
FILTER_INFLATION = {
    32001: ZSTD_INFLATION,
    32008: ZSTD_INFLATION,
    32015: ZSTD_INFLATION,
    **dict.fromkeys((307, 32013, 32017, 32018, 32024, 32026, 32028, 32033), UNBOUNDED_INFLATION),
}
#: Declared bytes allowed beyond the filters' inflation times the stored ones: room for the
#: fill value of a small dataset that was never written in full.
_SLACK_BYTES = 1 << 20
#: Datasets whose sizes were checked, by file identity (device, inode, size, mtime) and
#: name: the check walks the chunk index (9 ms for 65536 chunks), and a source is opened
#: twice in a generation, once for its positions and once for its patterns.
_SIZES_CHECKED: set[tuple[int, int, int, int, str]] = set()
#: Frames read at a time when every frame of a dataset is read (``verify``).
BLOCK_BYTES = 8 << 20


def is_hdf5(path: Path) -> bool:
    """Whether ``path`` starts with the HDF5 signature (at 0, or after a user block).

    The superblock sits at byte 0, 512, 1024, 2048, ...: the signature is looked for at
    each of those offsets that the file reaches, up to 1 MiB.
    """
    try:
        with open(path, "rb") as handle:
            offset = 0
            while offset < 1 << 20:
                handle.seek(offset)
                head = handle.read(len(SIGNATURE))
                if len(head) < len(SIGNATURE):
                    return False
                if head == SIGNATURE:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return False
    return False


def _h5py(path: object) -> Any:
    try:
        import h5py
    except ImportError:
        raise ContractError(
            path, None, f"is an HDF5 file, and reading one needs h5py: {INSTALL}"
        ) from None
    try:
        # Registers its filters with HDF5; a file that needs none reads without it.
        import hdf5plugin  # noqa: F401
    except ImportError:
        pass
    return h5py


class H5Reader:
    """An HDF5 file opened read-only, whose datasets are checked before they are read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._virtual: set[str] = set()
        h5py = _h5py(path)
        self._h5py = h5py
        try:
            stat = os.stat(path)
            self.size = stat.st_size
            self._identity = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
            # No file locking: a source on a read-only or network folder opens as well.
            self._file: Any = h5py.File(path, "r", locking=False)
        except OSError as exc:
            detail = str(exc).split("(")[0].strip() or "unreadable"
            raise ContractError(path, None, f"cannot be opened as HDF5: {detail}") from None

    def __enter__(self) -> H5Reader:  # noqa: PYI034 - Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def fail(self, name: str, message: str) -> ContractError:
        return ContractError(self.path, name, f"{name!r} {message}")

    # ----------------------------------------------------------------- names and links

    def resolve(self, name: str) -> Any:
        """The group or dataset at ``name``, or ``None``; links are followed in the file only."""
        h5py = self._h5py
        parts = [part for part in name.split("/") if part]
        node: Any = self._file
        hops = 0
        done: list[str] = []
        while parts:
            part = parts.pop(0)
            if not isinstance(node, h5py.Group):
                return None
            try:
                link = node.get(part, getlink=True)
            except (KeyError, TypeError, ValueError, OSError, RuntimeError):
                link = None
            if link is None:
                return None
            if isinstance(link, h5py.ExternalLink):
                where = "/" + "/".join([*done, part])
                via = (
                    "is"
                    if where == "/" + "/".join(p for p in name.split("/") if p)
                    else (f"passes through {where},")
                )
                raise self.fail(
                    name,
                    f"{via} an external link to {link.filename}:{link.path} but only data"
                    " inside the file is read; copy that dataset into the file",
                )
            if isinstance(link, h5py.SoftLink):
                hops += 1
                if hops > MAX_LINK_HOPS:
                    raise self.fail(
                        name,
                        f"soft links loop or chain more than {MAX_LINK_HOPS} times; expected"
                        " a link that ends at a dataset",
                    )
                target = [p for p in link.path.split("/") if p]
                if link.path.startswith("/"):
                    node, done = self._file, []
                parts = target + parts
                continue
            if not isinstance(link, h5py.HardLink):
                raise self.fail(name, f"has a link of an unknown class ({type(link).__name__})")
            try:
                node = node[part]
            except (KeyError, ValueError, OSError, RuntimeError):
                return None
            done.append(part)
        return node

    def has(self, name: str) -> bool:
        """Whether ``name`` is a dataset."""
        return isinstance(self.resolve(name), self._h5py.Dataset)

    # ---------------------------------------------------------------------- datasets

    def dataset(self, name: str, kinds: str = "biuf") -> Any:
        """The checked dataset at ``name``, of a dtype kind in ``kinds`` (numpy's letters)."""
        h5py = self._h5py
        node = self.resolve(name)
        if node is None:
            raise self.fail(name, "is missing; expected a dataset there")
        if not isinstance(node, h5py.Dataset):
            raise self.fail(name, "is a group but a dataset is required")
        # The dataset's filters, (id, name), read once for both checks.
        plist = node.id.get_create_plist()
        filters = [
            (code, label)
            for code, _flags, _values, label in map(plist.get_filter, range(plist.get_nfilters()))
        ]
        self._check_storage(name, node, filters)
        self._check_dtype(name, node, kinds)
        if node.is_virtual:
            # Its data is that of its sources, all in this file: each is checked instead
            # (once: virtual datasets may name each other).
            self._virtual.add(node.name)
            for source in sorted({m.dset_name for m in node.virtual_sources()}):
                if source not in self._virtual:
                    self.dataset(source, kinds)
        elif (*self._identity, node.name) not in _SIZES_CHECKED:
            self._check_sizes(name, node, [code for code, _ in filters])
            _SIZES_CHECKED.add((*self._identity, node.name))
        return node

    def _check_storage(self, name: str, node: Any, filters: list[tuple[int, object]]) -> None:
        if node.is_virtual:
            outside = sorted({m.file_name for m in node.virtual_sources() if m.file_name != "."})
            if outside:
                raise self.fail(
                    name,
                    f"is a virtual dataset over {', '.join(outside)} but only data inside the"
                    " file is read; store the frames in the file itself",
                )
        if node.external:
            files = ", ".join(sorted({str(entry[0]) for entry in node.external}))
            raise self.fail(
                name,
                f"keeps its data in external files ({files}) but only data inside the file"
                " is read; store it in the file",
            )
        for code, label in filters:
            if not self._h5py.h5z.filter_avail(code):
                raise self.fail(name, self._missing_filter(code, label))

    def _missing_filter(self, code: int, label: object) -> str:
        if code in PLUGIN_FILTERS:
            what = f"is compressed with {PLUGIN_FILTERS[code]} (HDF5 filter {code})"
            plugin = sys.modules.get("hdf5plugin")
            if plugin is None:
                return f"{what}, which needs hdf5plugin: {INSTALL}"
            version = getattr(plugin, "version", "")
            return (
                f"{what}, which the installed hdf5plugin {version} does not provide to HDF5"
                f" {self._h5py.version.hdf5_version}: pip install -U hdf5plugin"
            )
        shown = label.decode(errors="replace") if isinstance(label, bytes) else label
        return (
            f"is compressed with filter {code} ({shown or 'unnamed'}), which this HDF5"
            " build cannot apply; expected gzip, lzf, shuffle or another built-in"
            " filter (rewrite it, e.g. h5repack -f GZIP=4)"
        )

    def _check_dtype(self, name: str, node: Any, kinds: str) -> None:
        h5py = self._h5py
        dtype = node.dtype
        if h5py.check_dtype(ref=dtype) is not None:
            raise self.fail(name, "holds object or region references but numbers are required")
        wanted = {"b": "integer", "i": "integer", "u": "integer", "f": "real", "c": "complex"}
        expected = " or ".join(dict.fromkeys(wanted[k] for k in kinds))
        if dtype.kind not in kinds or dtype.names is not None or dtype.subdtype is not None:
            raise self.fail(name, f"has dtype {dtype} but {expected} numbers are required")

    def _check_sizes(self, name: str, node: Any, filters: list[int]) -> None:
        declared = math.prod(int(n) for n in node.shape) * node.dtype.itemsize
        stored = int(node.id.get_storage_size())
        if stored > self.size:
            raise self.fail(
                name,
                f"declares {stored} stored bytes but the file has {self.size}; the file is"
                " damaged or truncated",
            )
        chunks = node.chunks
        if chunks is None:
            offset = node.id.get_offset()
            if declared and (offset is None or offset + declared > self.size):
                where = "no stored data" if offset is None else f"data at byte {offset}"
                raise self.fail(
                    name,
                    f"declares {declared} bytes with {where} but the file has {self.size};"
                    " the file is damaged or truncated",
                )
            return
        bounds = [FILTER_INFLATION.get(code, MAX_INFLATION) for code in filters]
        inflation = max([MAX_INFLATION, *bounds])
        chunk = math.prod(int(n) for n in chunks) * node.dtype.itemsize
        if chunk > inflation * self.size:
            raise self.fail(
                name,
                f"declares chunks {tuple(chunks)} of {chunk} bytes but a file of {self.size}"
                f" bytes holds at most {inflation * self.size} once inflated; the file is"
                " damaged or hostile",
            )
        if declared > inflation * stored + _SLACK_BYTES:
            raise self.fail(
                name,
                f"declares shape {tuple(node.shape)} ({declared} bytes) but stores only"
                f" {stored} bytes, more than inflation by {inflation}:1 could hold; the"
                " file is damaged or hostile",
            )

    # ------------------------------------------------------------------------ reading

    def read(self, name: str, kinds: str = "biuf") -> NDArray[Any]:
        """All of a (small) dataset, in native byte order."""
        node = self.dataset(name, kinds)
        value: NDArray[Any] = self._native(name, lambda: node[()])
        return value

    def scalar(self, name: str) -> float:
        """A positive, finite real number stored as a dataset of one value."""
        value = self.read(name, "iuf")
        if value.size != 1:
            raise self.fail(name, f"has shape {value.shape} but one number is required")
        number = float(value.reshape(-1)[0])
        if not math.isfinite(number) or number <= 0:
            raise self.fail(name, f"is {number!r} but a finite number > 0 is required")
        return number

    def take(self, name: str, axis: int, indices: Sequence[int]) -> NDArray[Any]:
        """The frames at sorted ``indices`` along ``axis``, read by hyperslab."""
        import numpy as np

        node = self.dataset(name)
        shape = list(node.shape)
        shape[axis] = len(indices)
        out = np.empty(shape, dtype=node.dtype.newbyteorder("="))
        where: list[Any] = [slice(None)] * len(shape)
        target: list[Any] = [slice(None)] * len(shape)
        for k, index in enumerate(indices):
            where[axis], target[axis] = int(index), k
            source, dest = tuple(where), tuple(target)

            def read(s: tuple[Any, ...] = source, d: tuple[Any, ...] = dest) -> None:
                node.read_direct(out, s, d)

            self._native(name, read)
        return out

    def blocks(self, name: str, visit: Callable[[NDArray[Any]], None]) -> None:
        """Every row block along axis 0 of ``name``, in order, to ``visit``."""
        node = self.dataset(name)
        row = max(1, math.prod(int(n) for n in node.shape[1:]) * node.dtype.itemsize)
        step = max(1, BLOCK_BYTES // row)
        for start in range(0, int(node.shape[0]), step):

            def read(s: int = start) -> Any:
                return node[s : s + step]

            visit(self._native(name, read))

    def _native(self, name: str, read: Callable[[], Any]) -> Any:
        """Run ``read``; HDF5's own failures (a broken chunk, say) become one line."""
        import numpy as np

        try:
            value = read()
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            detail = str(exc).split("(")[0].strip() or type(exc).__name__
            raise self.fail(name, f"cannot be read: {detail}") from None
        if isinstance(value, np.ndarray) and not value.dtype.isnative:
            value = value.astype(value.dtype.newbyteorder("="))
        return value

    def describe(self, name: str) -> str:
        """``dtype (shape)`` of a dataset, for ``info``."""
        node = self.dataset(name, "biufc")
        shape = "x".join(str(n) for n in node.shape) or "scalar"
        return f"{shape} {node.dtype}"
