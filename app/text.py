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

    Keys count as text too. ``paragraphs`` names the top-level fields that may break lines.
    """
    if isinstance(value, str):
        return (path or "(root)") if has_control(value, paragraph=path in paragraphs) else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and has_control(key):
                return where
            found = first_control(item, paragraphs=paragraphs if not path else (), path=where)
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = first_control(item, path=f"{path}.{index}" if path else str(index))
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
