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
    answers_fingerprint,
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


def test_token_hash_is_sha256_hex() -> None:
    digest = token_hash("K7MQ2X9PAR")
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest == hashlib.sha256(b"K7MQ2X9PAR").hexdigest()
    assert token_hash("K7MQ2X9PAR") == digest  # stable
    assert token_hash("K7MQ2X9PAS") != digest
    assert "K7MQ2X9PAR" not in digest


def test_answers_fingerprint() -> None:
    answers = '{"answers":{"p01":"A"},"comment":""}'
    other = '{"answers":{"p01":"B"},"comment":""}'
    base = answers_fingerprint("K7MQ2X9PAR", answers)
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert base == hmac.new(b"K7MQ2X9PAR", answers.encode("utf-8"), "sha256").hexdigest()
    assert answers_fingerprint("K7MQ2X9PAR", answers) == base  # a retry matches
    assert answers_fingerprint("K7MQ2X9PAR", other) != base  # different answers
    assert answers_fingerprint("K7MQ2X9PAS", answers) != base  # different code
    # neither the code's hash nor a plain hash of the answers
    assert base not in (token_hash("K7MQ2X9PAR"), hashlib.sha256(answers.encode()).hexdigest())


def test_fingerprint_covers_non_ascii_comments() -> None:
    one = answers_fingerprint("K7MQ2X9PAR", '{"comment":"建议加强学习"}')
    two = answers_fingerprint("K7MQ2X9PAR", '{"comment":"建议加强培训"}')
    assert one != two


@PROPERTY
@given(codes, codes, st.text(max_size=50), st.text(max_size=50))
def test_fingerprint_separates_codes_and_answers(code: str, other_code: str, answers: str, other: str) -> None:
    base = answers_fingerprint(code, answers)
    assert answers_fingerprint(code, answers) == base
    assert (answers_fingerprint(code, other) == base) is (other == answers)
    assert (answers_fingerprint(other_code, answers) == base) is (other_code == code)



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
