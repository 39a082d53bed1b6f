"""A griffe extension for the API reference: reStructuredText roles become code spans.

The docstrings use ``:func:`name```, ``:class:`.module.Name``` and the like, which
Markdown would show as written. Each role becomes a code span of the name, without the
leading ``.`` or ``~``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj):`[~.]*([^`]+)`")


class RolesAsCode(griffe.Extension):
    """Rewrite every docstring's roles as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(r"`\1`", obj.docstring.value)
