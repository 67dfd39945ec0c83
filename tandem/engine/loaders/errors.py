"""The one error every loader raises for a bad file.

A user who brings a broken topology file must see *where* it is broken (file, element, line,
field) rather than a parser traceback, so every failure inside a loader is converted to
`TopologyFileError` at the point where that context is still known.
"""

from __future__ import annotations


class TopologyFileError(ValueError):
    """A topology or demand file that cannot be read; the message names file, element, field."""

    def __init__(
        self,
        path: str,
        problem: str,
        *,
        element: str = "",
        field: str = "",
        line: int | None = None,
    ) -> None:
        self.path = path
        self.problem = problem
        self.element = element
        self.field = field
        self.line = line
        parts = [path]
        if line is not None:
            parts.append(f"line {line}")
        if element:
            parts.append(element)
        if field:
            parts.append(f"field {field!r}")
        super().__init__(": ".join(parts) + ": " + problem)
