"""Which language a reader gets, and the catalogue's words bound to it. Pure.

Simplified Chinese is the default; English when the reader asks for it (``?lang=en``) or the
browser prefers it. The words themselves are in app.messages, errors and pages alike.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from app.messages import DEFAULT_LANG, LANGS, Lang, render

__all__ = ["DEFAULT_LANG", "LANGS", "Lang", "message", "translator"]


def message(key: str, lang: Lang = DEFAULT_LANG, **params: Any) -> str:
    return render(key, lang, params)


def translator(lang: Lang) -> Callable[..., str]:
    """``t(key, **params)`` bound to one language, as the templates call it."""

    def t(key: str, **params: Any) -> str:
        return message(key, lang, **params)

    return t


def from_query(value: str | None) -> Lang | None:
    """The language a ``?lang=`` parameter names, if it names one we have."""
    if value is None:
        return None
    value = value.strip().lower()
    for lang in LANGS:
        if value == lang or value.startswith(lang + "-"):
            return lang
    return None


@lru_cache(maxsize=256)
def from_accept_language(header: str | None) -> Lang:
    """The best of our languages for an Accept-Language header: highest q wins, then earlier.
    Remembered per header: a room's phones send a handful of distinct ones, with every ballot."""
    best: tuple[float, int, Lang] | None = None
    for position, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        lang = from_query(tag)
        if lang is None:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if not 0 < quality <= 1:  # also refuses nan
            continue
        if best is None or quality > best[0]:
            best = (quality, position, lang)
    return best[2] if best else DEFAULT_LANG


def choose(query: str | None, accept_language: str | None) -> Lang:
    """An explicit ``?lang=`` first, then the browser's preference, then Chinese."""
    return from_query(query) or from_accept_language(accept_language)
