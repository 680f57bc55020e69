"""Keeping ballot codes, phones and credentials out of the logs. Pure.

``onsite-ballot serve`` runs uvicorn without an access log. Anyone who starts uvicorn another
way gets one, and its lines name the path (``/b/K7MQ2X9PAR``) and the phone's address. The
filter here rewrites such lines before any handler sees them: the code and the screen key
become ``…`` and, on the phone paths, the address becomes ``-``.

Every other line the service writes goes through RedactSecrets on its way out: a URL keeps its
scheme, host and path, and loses its user and password (``https://user:pw@host`` ->
``https://…@host``) and its query string (``?access_token=…`` -> ``?…``); a phone path loses its code.
httpx, which would log each webhook delivery's full URL at INFO, is held to warnings.
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


# scheme://[user[:password]@]host[:port][/path][?query][#fragment], as far as a log line shows it.
URL = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^\s/?#@\"']*@)?(?P<rest>[^\s?#\"']*)"
    r"(?P<query>\?[^\s#\"']*)?(?P<fragment>#[^\s\"']*)?"
)


def _url(match: re.Match[str]) -> str:
    userinfo = "…@" if match["userinfo"] else ""
    query = "?…" if match["query"] else ""
    return f"{match['scheme']}{userinfo}{match['rest']}{query}"


def redact_secrets(text: str) -> str:
    """A log line without credentials in URLs, query strings, or ballot codes in phone paths."""
    return redact(URL.sub(_url, text))


class RedactSecrets(logging.Filter):
    """For every handler: the line as it will be written, rendered once and rewritten."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access":
            return True  # its formatter needs the arguments: RedactPhonePaths has dealt with it
        message = record.getMessage()
        cleaned = redact_secrets(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


# Loggers that write a line per outgoing request, with its URL: only their warnings are wanted.
CHATTY = ("httpx", "httpcore")


def configure_logging() -> None:
    """The service's logging: INFO to stderr, through RedactSecrets on every handler there is."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Whoever turns uvicorn's access log on still gets no ballot code in it.
    logging.getLogger("uvicorn.access").addFilter(RedactPhonePaths())
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(existing, RedactSecrets) for existing in handler.filters):
                handler.addFilter(RedactSecrets())


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
