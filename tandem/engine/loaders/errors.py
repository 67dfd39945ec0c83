"""The one error every loader raises for a bad file, and the warnings it returns for a file
that loads but needed a default or a choice.

A user who brings a broken topology file must see *where* it is broken (file, element, line,
field) rather than a parser traceback, so every failure inside a loader is converted to
`TopologyFileError` at the point where that context is still known. A file that loads but
leaves something unknown (a country) or falls back to a default (a capacity) is not an
error, yet a silent default decides what a residency rule admits or how much a link can
carry: the loaders return a warning for each, located the same way. They return rather than
log because the core does no I/O; the caller decides where warnings go.
"""

from __future__ import annotations


def locate(path: str, *, element: str = "", field: str = "", line: int | None = None) -> str:
    """"file: line N: element: field 'f'" with the parts that are known."""
    parts = [path]
    if line is not None:
        parts.append(f"line {line}")
    if element:
        parts.append(element)
    if field:
        parts.append(f"field {field!r}")
    return ": ".join(parts)


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
        super().__init__(locate(path, element=element, field=field, line=line) + ": " + problem)


class Warnings:
    """Collects located warnings in file order (a loader creates one per file)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[str] = []

    def add(self, problem: str, *, element: str = "", field: str = "",
            line: int | None = None) -> None:
        self.items.append(
            locate(self.path, element=element, field=field, line=line) + ": " + problem)
