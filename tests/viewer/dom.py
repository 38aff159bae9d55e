"""A tiny DOM from ``html.parser`` (stdlib) for asserting on pages Chromium dumped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = frozenset(
    "area base br col embed hr img input link meta source track wbr".split()  # noqa: SIM905
)


@dataclass
class Element:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Element | str] = field(default_factory=list)
    parent: Element | None = field(default=None, repr=False)

    @property
    def id(self) -> str | None:
        return self.attrs.get("id")

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def hidden(self) -> bool:
        return "hidden" in self.attrs

    def text(self) -> str:
        """The text content, like ``textContent``."""
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self) -> Iterator[Element]:
        """This element and every element under it, in document order."""
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find_all(self, predicate: Callable[[Element], bool]) -> list[Element]:
        return [e for e in self.iter() if predicate(e)]

    def by_id(self, id_: str) -> Element:
        found = self.find_all(lambda e: e.id == id_)
        assert len(found) == 1, f"expected one element #{id_}, found {len(found)}"
        return found[0]

    def select(self, tag: str | None = None, **attrs: str | bool) -> list[Element]:
        """Elements by tag and attributes (``True``: the attribute is present); ``class_``
        matches one class; underscores in names stand for dashes (``data_turn_id``)."""

        def match(e: Element) -> bool:
            if tag is not None and e.tag != tag:
                return False
            for name, want in attrs.items():
                if name == "class_":
                    if want not in e.classes:
                        return False
                    continue
                key = name.replace("_", "-")
                if want is True:
                    if key not in e.attrs:
                        return False
                elif e.attrs.get(key) != want:
                    return False
            return True

        return self.find_all(match)

    def child_elements(self, tag: str | None = None) -> list[Element]:
        return [c for c in self.children if isinstance(c, Element) and tag in (None, c.tag)]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document")
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs}, parent=self.current)
        self.current.children.append(element)
        if tag not in VOID:
            self.current = element

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.current.children.append(Element(tag, attributes, parent=self.current))

    def handle_endtag(self, tag: str) -> None:
        node: Element | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


def parse(html: str) -> Element:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root
