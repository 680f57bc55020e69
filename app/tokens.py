"""Single-use ballot codes: minting, reading what a rater typed, hashing. Pure.

A code is 10 characters from an alphabet without look-alikes (no 0/O, 1/I/L), about 49 bits:
far beyond guessing at the rate the service allows, and short enough to type from a card.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
# What people put between groups when they copy a printed code: dashes of every width, dots.
SEPARATORS = frozenset("-‐‑‒–—―−・.")
CODE_LENGTH = 10
# Printed as K7M-Q2X-9PA-R: groups of three are easy to read aloud and to type.
PRINT_GROUP = 3


def mint_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalize(typed: str) -> str | None:
    """The code a rater meant, forgiving spaces, dashes and lower case; None if it cannot be one.

    NFKC first: a Chinese keyboard may type full-width letters, digits and dashes (Ｋ７Ｍ－…).
    """
    folded = unicodedata.normalize("NFKC", typed).upper()
    code = "".join(ch for ch in folded if not ch.isspace() and ch not in SEPARATORS)
    if len(code) != CODE_LENGTH or any(ch not in ALPHABET for ch in code):
        return None
    return code


def printable(code: str) -> str:
    return "-".join(code[i : i + PRINT_GROUP] for i in range(0, len(code), PRINT_GROUP))


def plain_hash(code: str) -> str:
    return hashlib.sha256(code.encode("ascii")).hexdigest()


def token_hash(code: str, ledger_key: bytes) -> str:
    """What the eligibility ledger keeps instead of the code: keyed by a key derived from the
    server's secret (app.sealing.ServerKeys), so that a copy of the database alone cannot be
    searched for the 49-bit codes offline."""
    return keyed_hash(plain_hash(code), ledger_key)


def keyed_hash(plain: str, ledger_key: bytes) -> str:
    """The keyed form of a code's SHA-256: also how the plain hashes kept before were converted."""
    return hmac.new(ledger_key, plain.encode("ascii"), "sha256").hexdigest()
