"""app.tokens: ballot codes as printed on cards, as typed on phones, and as stored (hashed)."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from hypothesis import given, settings, strategies as st

from app.tokens import (
    ALPHABET,
    CODE_LENGTH,
    keyed_hash,
    mint_code,
    normalize,
    printable,
    token_hash,
)

PROPERTY = settings(max_examples=100, deadline=None)
codes = st.text(alphabet=ALPHABET, min_size=CODE_LENGTH, max_size=CODE_LENGTH)


def test_alphabet_has_no_look_alikes() -> None:
    assert not set(ALPHABET) & set("0O1IL")
    # 2-9 and the 23 letters left of A-Z once I, L and O go
    assert ALPHABET == "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
    assert len(set(ALPHABET)) == len(ALPHABET) == 31
    assert CODE_LENGTH == 10


def test_minted_codes() -> None:
    minted = [mint_code() for _ in range(300)]
    assert all(len(code) == 10 and set(code) <= set(ALPHABET) for code in minted)
    # 31^10 ≈ 8 x 10^14 codes: 300 draws repeat with probability about 5 x 10^-11
    assert len(set(minted)) == 300
    # every character of the alphabet turns up somewhere in 3000 characters (each misses with p ≈ 5 x 10^-43)
    assert set("".join(minted)) == set(ALPHABET)


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("K7MQ2X9PAR", "K7MQ2X9PAR"),
        ("K7M-Q2X-9PA-R", "K7MQ2X9PAR"),  # as printed
        ("k7m-q2x-9pa-r", "K7MQ2X9PAR"),  # lower case
        ("k7mQ2x9pAr", "K7MQ2X9PAR"),
        (" K7M Q2X 9PA R ", "K7MQ2X9PAR"),  # spaces
        ("K7M\tQ2X\t9PA\tR", "K7MQ2X9PAR"),  # tabs
        ("K7M\u3000Q2X\u30009PA\u3000R", "K7MQ2X9PAR"),  # ideographic spaces from a Chinese IME
        ("--K7M--Q2X--9PA--R--", "K7MQ2X9PAR"),
        ("2222222222", "2222222222"),
        ("zzzzzzzzzz", "ZZZZZZZZZZ"),
    ],
)
def test_normalize_forgives(typed: str, code: str) -> None:
    assert normalize(typed) == code


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "K7MQ2X9PA",  # 9 characters
        "K7MQ2X9PARR",  # 11 characters
        "K7M-Q2X-9PA",  # 9 once the dashes go
        "K7MQ2X9PA0",  # zero
        "K7MQ2X9PAO",  # letter O
        "K7MQ2X9PA1",  # one
        "K7MQ2X9PAI",  # letter I
        "K7MQ2X9PAL",  # letter L
        "K7MQ2X9PAl",  # lower-case l becomes L, which is not in the alphabet
        "K7M_Q2X_9PA_R",  # underscores are not forgiven
        "K7MQ2X9PA你",
        "----------",
    ],
)
def test_normalize_refuses(typed: str) -> None:
    assert normalize(typed) is None


@pytest.mark.parametrize(
    ("code", "printed"),
    [
        ("K7MQ2X9PAR", "K7M-Q2X-9PA-R"),
        ("2345678923", "234-567-892-3"),
    ],
)
def test_printable(code: str, printed: str) -> None:
    assert printable(code) == printed


@PROPERTY
@given(codes)
def test_printed_code_reads_back(code: str) -> None:
    printed = printable(code)
    assert re.fullmatch(r"[^-]{3}-[^-]{3}-[^-]{3}-[^-]", printed)
    assert normalize(printed) == code
    assert normalize(printed.lower()) == code
    assert normalize(printed.replace("-", " ")) == code


LEDGER_KEY = bytes(range(32))


def test_token_hash_is_an_hmac_of_the_codes_sha256_under_the_ledger_key() -> None:
    digest = token_hash("K7MQ2X9PAR", LEDGER_KEY)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    plain = hashlib.sha256(b"K7MQ2X9PAR").hexdigest()
    assert digest == hmac.new(LEDGER_KEY, plain.encode("ascii"), "sha256").hexdigest()
    assert digest == keyed_hash(plain, LEDGER_KEY)  # how the plain hashes kept before are converted
    assert token_hash("K7MQ2X9PAR", LEDGER_KEY) == digest  # stable
    assert token_hash("K7MQ2X9PAS", LEDGER_KEY) != digest
    # Without the key, the database's value is neither the plain hash nor anything computable from the code.
    assert digest != plain
    assert token_hash("K7MQ2X9PAR", bytes(32)) != digest
    assert "K7MQ2X9PAR" not in digest


@PROPERTY
@given(codes, codes)
def test_token_hash_separates_codes(code: str, other: str) -> None:
    assert (token_hash(code, LEDGER_KEY) == token_hash(other, LEDGER_KEY)) is (code == other)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Ｋ７Ｍ－Ｑ２Ｘ－９ＰＡ－Ｒ", "K7MQ2X9PAR"),  # full-width, as a Chinese keyboard types it
        ("k7m—q2x—9pa—r", "K7MQ2X9PAR"),  # em dashes from a word processor
        ("K7M\u00a0Q2X\u00a09PA\u00a0R", "K7MQ2X9PAR"),  # non-breaking spaces from a copied card
        ("K7M・Q2X・9PA・R", "K7MQ2X9PAR"),
        ("Ｋ７Ｍ－Ｑ２Ｘ－９ＰＡ－Ｏ", None),  # O is not in the alphabet, full width or not
    ],
)
def test_normalize_forgives_full_width_and_copied_separators(typed: str, expected: str | None) -> None:
    assert normalize(typed) == expected
