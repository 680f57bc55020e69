"""Keeping ballot codes and phones out of access logs. Pure.

``onsite-ballot serve`` runs uvicorn without an access log. Anyone who starts uvicorn another
way gets one, and its lines name the path (``/b/K7MQ2X9PAR``) and the phone's address. The
filter here rewrites such lines before any handler sees them: the code and the screen key
become ``…`` and, on the phone paths, the address becomes ``-``.
"""

from __future__ import annotations

import logging
import re

# /b/<code>, /s/<screen key>: everything up to the next slash, query, quote or space.
PHONE_PATH = re.compile(r"(/[bs]/)[^/?\s\"']+")
REDACTED = r"\1…"
# The paths a phone uses; their lines lose the client address too.
PHONE_PREFIXES = ("/b/", "/s/", "/c", "/thanks", "/api/v1/ballots")


def redact(text: str) -> str:
    return PHONE_PATH.sub(REDACTED, text)


def is_phone_path(path: str) -> bool:
    return path.startswith(PHONE_PREFIXES)


class RedactPhonePaths(logging.Filter):
    """For the ``uvicorn.access`` logger, whose args are (address, method, path, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path: str = args[2]
            address = "-" if is_phone_path(path) else args[0]
            record.args = (address, args[1], redact(path), args[3], args[4])
        else:
            record.msg, record.args = redact(record.getMessage()), None
        return True
