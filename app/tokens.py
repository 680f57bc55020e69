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


def token_hash(code: str) -> str:
    """What the eligibility ledger keeps instead of the code."""
    return hashlib.sha256(code.encode("ascii")).hexdigest()


def answers_fingerprint(code: str, canonical_answers: str) -> str:
    """Lets a retry with the same answers be told from a different ballot on a spent code.

    Keyed by the code itself, which the database never holds: someone with only the database
    cannot compute it for a ballot in the box, so it does not link the ledger to the box.
    It is erased when the meeting closes.
    """
    return hmac.new(code.encode("ascii"), canonical_answers.encode("utf-8"), "sha256").hexdigest()
