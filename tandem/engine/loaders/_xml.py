"""A minimal element tree that remembers line numbers, for error messages that point at them.

`xml.etree` drops source positions; users fixing a broken GraphML file need "line 812", so we
build our own small tree with `xml.sax` (expat underneath, external entities disabled).
"""

from __future__ import annotations

import io
import xml.sax
import xml.sax.handler
import xml.sax.xmlreader
from dataclasses import dataclass, field


@dataclass(slots=True)
class Element:
    tag: str  # local name, namespace stripped
    attrs: dict[str, str]
    line: int
    children: list[Element] = field(default_factory=list)
    text: str = ""

    def find_all(self, tag: str) -> list[Element]:
        return [c for c in self.children if c.tag == tag]

    def find(self, tag: str) -> Element | None:
        for c in self.children:
            if c.tag == tag:
                return c
        return None

    def iter(self, tag: str) -> list[Element]:
        """All descendants (depth first, document order) with this tag."""
        out: list[Element] = []
        stack = list(reversed(self.children))
        while stack:
            e = stack.pop()
            if e.tag == tag:
                out.append(e)
            stack.extend(reversed(e.children))
        return out


class _Builder(xml.sax.handler.ContentHandler):
    def __init__(self) -> None:
        super().__init__()
        self.root: Element | None = None
        self._stack: list[Element] = []
        self._text: list[list[str]] = []
        self._locator: xml.sax.xmlreader.Locator | None = None

    def setDocumentLocator(self, locator: xml.sax.xmlreader.Locator) -> None:  # noqa: N802
        self._locator = locator

    def startElementNS(  # noqa: N802
        self, name: tuple[str | None, str], qname: str | None, attrs: object
    ) -> None:
        line = self._locator.getLineNumber() if self._locator is not None else 0
        values: dict[str, str] = {}
        items = getattr(attrs, "items")()
        for (_, local), value in items:
            values[local] = value
        el = Element(tag=name[1], attrs=values, line=int(line or 0))
        if self._stack:
            self._stack[-1].children.append(el)
        else:
            self.root = el
        self._stack.append(el)
        self._text.append([])

    def endElementNS(self, name: tuple[str | None, str], qname: str | None) -> None:  # noqa: N802
        el = self._stack.pop()
        el.text = "".join(self._text.pop())

    def characters(self, content: str) -> None:
        if self._text:
            self._text[-1].append(content)


class XmlSyntaxError(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def parse(data: bytes) -> Element:
    """Parse XML bytes into an `Element` tree; raises `XmlSyntaxError` with a line number."""
    parser = xml.sax.make_parser()
    parser.setFeature(xml.sax.handler.feature_namespaces, True)
    parser.setFeature(xml.sax.handler.feature_external_ges, False)
    parser.setFeature(xml.sax.handler.feature_external_pes, False)
    builder = _Builder()
    parser.setContentHandler(builder)
    try:
        parser.parse(io.BytesIO(data))
    except xml.sax.SAXParseException as exc:
        raise XmlSyntaxError(exc.getMessage(), exc.getLineNumber()) from None
    if builder.root is None:
        raise XmlSyntaxError("no root element", None)
    return builder.root
