"""A canonical, verified ptychography test fixture for PyTorch projects.

The public API is re-exported here and imported on first use, so that importing the
package (which pytest does for the plugin in every run) costs neither numpy nor torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__

if TYPE_CHECKING:
    from .cli.picture import render_fixture as render_fixture
    from .contract import ContractError as ContractError
    from .contract import validate_fixture as validate_fixture
    from .export import export_fixture as export_fixture
    from .generate import GeneratedFixture as GeneratedFixture
    from .generate import generate_fixture as generate_fixture
    from .handoff import PtychiInputs as PtychiInputs
    from .handoff import to_ptychi as to_ptychi
    from .npz.digests import content_digests as content_digests
    from .npz.reader import load_npz as load_npz
    from .simulate import forward as forward
    from .simulate import simulate_source as simulate_source
    from .simulate import synthetic_scan as synthetic_scan
    from .spec import OptionError as OptionError

_EXPORTS = {
    "ContractError": "contract",
    "validate_fixture": "contract",
    "GeneratedFixture": "generate",
    "generate_fixture": "generate",
    "export_fixture": "export",
    "PtychiInputs": "handoff",
    "to_ptychi": "handoff",
    "content_digests": "npz.digests",
    "load_npz": "npz.reader",
    "render_fixture": "cli.picture",
    "forward": "simulate",
    "simulate_source": "simulate",
    "synthetic_scan": "simulate",
    "OptionError": "spec",
}

__all__ = [
    "ContractError",
    "GeneratedFixture",
    "OptionError",
    "PtychiInputs",
    "__version__",
    "content_digests",
    "export_fixture",
    "forward",
    "generate_fixture",
    "load_npz",
    "render_fixture",
    "simulate_source",
    "synthetic_scan",
    "to_ptychi",
    "validate_fixture",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
