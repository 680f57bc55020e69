"""What text a person types may hold. Pure.

Nobody types a control character on purpose, and each one has a cost: PostgreSQL refuses a NUL in
text (the whole batch of ballots it rode in failed with a 503) while SQLite stored it; an escape
sequence in a comment reaches an auditor's terminal; a line break in a unit's name breaks the lines
of a report. So every field a rater or an organizer fills refuses them, the same way on both
databases, before anything is stored. Paragraphs (a comment, a reason) keep their line breaks and
tabs; one-line text (a name, a title, a code) refuses those too.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import unquote

from app.errors import Invalid

# C0 controls but tab, line feed and carriage return; DEL; the C1 controls.
_IN_PARAGRAPH = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# One line: every C0 control, DEL, C1, and Unicode's own line and paragraph separators.
_IN_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def has_control(text: str, *, paragraph: bool = False) -> bool:
    return (_IN_PARAGRAPH if paragraph else _IN_LINE).search(text) is not None


def is_blank(text: str) -> bool:
    """Nothing but spaces of any kind, the full-width 　 included."""
    return not text.strip()


def first_control(value: object, *, paragraphs: Collection[str] = (), path: str = "") -> str | None:
    """Where the first text with a control character sits in decoded JSON ("groups.0.name"), if any.

    Keys count as text too. ``paragraphs`` names the top-level fields that may break lines. Every
    ballot passes through here, so the texts are first searched all at once; only a body that holds
    a control character is walked to name the place.
    """
    lines: list[str] = []
    kept: list[str] = []
    _gather(value, paragraphs, lines, kept, top=True)
    if _IN_LINE.search("".join(lines)) is None and _IN_PARAGRAPH.search("".join(kept)) is None:
        return None
    return _walk(value, paragraphs, path)


def _gather(value: object, paragraphs: Collection[str], lines: list[str], kept: list[str], *, top: bool) -> None:
    if isinstance(value, str):
        lines.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                lines.append(key)
            if top and key in paragraphs and isinstance(item, str):
                kept.append(item)
            else:
                _gather(item, paragraphs, lines, kept, top=False)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _gather(item, paragraphs, lines, kept, top=False)


def _walk(value: object, paragraphs: Collection[str], path: str) -> str | None:
    if isinstance(value, str):
        return (path or "(root)") if has_control(value, paragraph=path in paragraphs) else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and has_control(key):
                return where
            found = _walk(item, paragraphs if not path else (), where)
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _walk(item, (), f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


def check(text: str, field: str, *, paragraph: bool = False) -> None:
    """Invalid("text_control") naming the field (a key of app.messages.TERMS["field"])."""
    if has_control(text, paragraph=paragraph):
        raise Invalid("text_control", field=field)


def address_has_control(path: str, query: bytes) -> bool:
    """A control character in a request's decoded path or query string: no address of ours has one,
    and a NUL passed on to PostgreSQL in a lookup would fail the query."""
    if _IN_LINE.search(path):
        return True
    if not query:
        return False
    decoded = unquote(query.decode("latin-1")) if b"%" in query else query.decode("latin-1")
    return _IN_LINE.search(decoded) is not None
