"""A run's record of the fixtures that regenerating did not fix, shared by its processes.

When a fixture generated afresh still does not match its committed sidecar, generating it
again cannot help: the generator or the source changed. The first process of a run that
finds this notes the error in the cache folder under the run's id, so that the run's
other processes (pytest-xdist workers) report it at once instead of each generating
again. A later run, with another id, tries afresh; a fixture that is accepted clears its
note.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import final

from .messages import GeneratedMismatch


@final
@dataclass(frozen=True)
class StaleRecord:
    """Notes in ``folder`` (the cache folder) for the run ``run_id``."""

    folder: Path
    run_id: str

    def _note_path(self, fixture: Path) -> Path:
        name = hashlib.sha256(str(fixture).encode()).hexdigest()[:12]
        return self.folder / f"stale-{name}.json"

    def known(self, fixture: Path) -> GeneratedMismatch | None:
        """The error this run already met for ``fixture``, if any."""
        try:
            data = json.loads(self._note_path(fixture).read_text(encoding="utf-8"))
            if data["run"] != self.run_id:
                return None
            fields = data["error"]
            return GeneratedMismatch(**{**fields, "differ": tuple(fields["differ"])})
        except (OSError, ValueError, KeyError, TypeError):
            return None  # no note, or one this version cannot read: generate again

    def note(self, fixture: Path, error: GeneratedMismatch) -> None:
        """Record ``error`` for the run's other processes; best effort."""
        from .atomic import write_bytes

        data = {"run": self.run_id, "error": asdict(error)}
        with contextlib.suppress(OSError):
            self.folder.mkdir(parents=True, exist_ok=True)
            write_bytes(self._note_path(fixture), json.dumps(data).encode())

    def clear(self, fixture: Path) -> None:
        with contextlib.suppress(OSError):
            self._note_path(fixture).unlink(missing_ok=True)
