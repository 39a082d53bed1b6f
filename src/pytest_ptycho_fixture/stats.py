"""What a run did with its fixtures: generations, fetches, verifications, healing, devices.

Each process counts its own; pytest-xdist workers send theirs to the controller as
plain data (:meth:`Stats.to_dict`), which merges them and prints the summary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, final


@final
@dataclass
class Stats:
    """What one process (or, merged, a whole run) did; sent from workers as plain data."""

    generations: list[tuple[str, float]] = field(default_factory=list)
    #: Fixtures fetched from a store: (process, store, seconds).
    fetches: list[tuple[str, str, float]] = field(default_factory=list)
    verifications: int = 0
    healed: list[str] = field(default_factory=list)
    rewritten: list[str] = field(default_factory=list)
    errors: int = 0
    devices: list[str] = field(default_factory=list)
    #: The fixture sets the tests asked ``ptycho_sets`` for.
    sets: list[str] = field(default_factory=list)
    #: What the store did beyond fetching: pushes, and the faults that made a run generate.
    store_notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "generations": [list(item) for item in self.generations],
            "fetches": [list(item) for item in self.fetches],
            "verifications": self.verifications,
            "healed": list(self.healed),
            "rewritten": list(self.rewritten),
            "errors": self.errors,
            "devices": list(self.devices),
            "sets": list(self.sets),
            "store_notes": list(self.store_notes),
        }

    def merge(self, data: Mapping[str, Any]) -> None:
        """Add a worker's :meth:`to_dict`."""
        self.generations += [(str(who), float(took)) for who, took in data["generations"]]
        self.fetches += [
            (str(who), str(store), float(took)) for who, store, took in data.get("fetches", ())
        ]
        self.verifications += int(data["verifications"])
        self.healed += data["healed"]
        self.rewritten += [item for item in data["rewritten"] if item not in self.rewritten]
        self.errors += int(data["errors"])
        self.devices += [item for item in data["devices"] if item not in self.devices]
        self.sets += [item for item in data.get("sets", ()) if item not in self.sets]
        self.store_notes += data.get("store_notes", ())

    def note_device(self, device: str) -> None:
        if device not in self.devices:
            self.devices.append(device)

    def note_set(self, name: str) -> None:
        if name not in self.sets:
            self.sets.append(name)

    def summary(self, set_order: Sequence[str] = ()) -> list[str]:
        """The terminal summary: nothing if the fixture was not used.

        The sets used are listed in ``set_order`` (the order they were declared in), any
        others after them.
        """
        if not (self.generations or self.verifications or self.errors):
            return []
        first = _count(len(self.generations), "generation")
        if self.generations:
            first += f" ({', '.join(f'{who}, {took:.2f} s' for who, took in self.generations)})"
        parts = [first]
        for store in dict.fromkeys(store for _, store, _ in self.fetches):
            each = [(who, took) for who, where, took in self.fetches if where == store]
            times = "; ".join(f"{who}, {took:.2f} s" for who, took in each)
            parts.append(f"fetched from {store} ({_count(len(each), 'file')}: {times})")
        parts.append(_count(self.verifications, "verification"))
        if self.healed:
            parts.append(f"healed {_count(len(self.healed), 'cached file')}")
        if self.rewritten:
            parts.append("sidecar rewritten")
        if self.errors:
            parts.append(f"fixture unavailable ({_count(self.errors, 'error')})")
        if self.devices:
            parts.append(f"device{'s' if len(self.devices) > 1 else ''} {', '.join(self.devices)}")
        lines = [f"ptycho-fixture: {', '.join(parts)}"]
        if self.sets:
            used = [name for name in set_order if name in self.sets]
            used += [name for name in self.sets if name not in used]
            lines.append(f"ptycho-fixture: sets used: {', '.join(used)}")
        lines += [f"ptycho-fixture: {note}" for note in self.healed + self.store_notes]
        lines += [
            f"ptycho-fixture: the sidecar {sidecar} was rewritten with the new digests; commit it"
            for sidecar in self.rewritten
        ]
        return lines


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
