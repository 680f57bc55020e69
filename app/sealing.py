"""Sealing a ballot between the spend of its code and its mixing. Pure: keys in, bytes out.

When a code is spent, the ballot must be on disk in the same commit (an acknowledged ballot
survives a crash), yet nothing that commit writes may be read back as the ballot's content: the
commit also says which code was spent, and when. So the ballot is stored sealed, under a key of
its meeting that the database does not hold, and is opened only by the mixer, which writes it
readable among at least K others in a transaction that spends no code (app.disclosure decides how
many). Every sealed ballot of a meeting has the same size, so that a long comment cannot be
told from a short one by its length.

Keys, all derived with HKDF-SHA256 from the server's secret (settings.secret()):
- the ledger key: codes are kept as HMAC(ledger key, SHA-256(code)), so a stolen database
  cannot be searched for codes offline;
- the seal root, and from it each meeting's key, HKDF(seal root, salt = the meeting's random
  salt). The salt is in the database (table ``meeting_seal``) while the meeting is open and is
  erased at close, which destroys the key: the secret alone can then open nothing.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.templates import COMMENT_MAX_CHARS, BallotTemplate
from app.tokens import token_hash

KEY_BYTES = 32
SALT_BYTES = 32
NONCE_BYTES = 12
# Every sealed ballot is padded to the longest a comment of COMMENT_MAX_CHARS can be in UTF-8.
UTF8_MAX_BYTES_PER_CHAR = 4
# Room for one answer beside its point id: quotes, colon, comma and the longest value a template
# allows (a grade key is at most 8 characters; a number at most "1000.5").
ANSWER_OVERHEAD_BYTES = 16
PAD_TO = 256


@dataclass(frozen=True)
class ServerKeys:
    """The keys every worker derives from the same secret; never stored anywhere."""

    ledger: bytes
    seal_root: bytes

    @classmethod
    def from_secret(cls, secret: str) -> ServerKeys:
        material = secret.encode("utf-8")
        return cls(
            ledger=_hkdf(material, b"onsite-ballot ledger v1"), seal_root=_hkdf(material, b"onsite-ballot seal v1")
        )

    def code_hash(self, code: str) -> str:
        """What the eligibility ledger keeps instead of a code."""
        return token_hash(code, self.ledger)

    def meeting_key(self, salt: bytes) -> bytes:
        return _hkdf(self.seal_root, b"onsite-ballot meeting", salt=salt)


def _hkdf(material: bytes, info: bytes, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=info).derive(material)


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


@dataclass(frozen=True)
class Content:
    """What a sealed ballot holds: the answers in canonical form, the comment, the rater group."""

    group: str | None
    answers: dict[str, str]  # in canonical form (app.templates.parse_answers)
    comment: str | None


def sealed_size(template: BallotTemplate) -> int:
    """The one plaintext size of every sealed ballot of a meeting on this template."""
    answers = sum(len(point.id.encode("ascii")) + ANSWER_OVERHEAD_BYTES for point in template.points)
    # The JSON around the answers, a rater group's key (32 characters at most), the comment's length.
    header = 96
    comment = COMMENT_MAX_CHARS * UTF8_MAX_BYTES_PER_CHAR
    needed = 2 + header + answers + comment
    return -(-needed // PAD_TO) * PAD_TO


class Sealer:
    """Seals and opens one meeting's ballots; the AEAD binds each to its meeting."""

    def __init__(self, key: bytes, meeting_id: int, size: int) -> None:
        self._aead = AESGCM(key)
        self._context = f"meeting:{meeting_id}".encode("ascii")
        self._size = size

    def seal(self, content: Content, nonce: bytes | None = None) -> bytes:
        """The content sealed; ``nonce``: NONCE_BYTES fresh random bytes (drawn here when not given)."""
        body = (content.comment or "").encode("utf-8")
        head = json.dumps(
            {"a": content.answers, "g": content.group, "n": len(body)}, separators=(",", ":")
        ).encode("ascii")
        plain = len(head).to_bytes(2, "big") + head + body
        if len(plain) > self._size:
            raise ValueError("a ballot longer than any the template allows")  # checked before: cannot happen
        nonce = nonce if nonce is not None else secrets.token_bytes(NONCE_BYTES)
        assert len(nonce) == NONCE_BYTES
        return nonce + self._aead.encrypt(nonce, plain + bytes(self._size - len(plain)), self._context)

    def open(self, sealed: bytes) -> Content:
        try:
            plain = self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], self._context)
        except InvalidTag:
            raise SealBroken("a sealed ballot does not open with its meeting's key") from None
        size = int.from_bytes(plain[:2], "big")
        head = json.loads(plain[2 : 2 + size])
        comment = plain[2 + size : 2 + size + head["n"]].decode("utf-8")
        return Content(group=head["g"], answers=head["a"], comment=comment or None)


class SealBroken(RuntimeError):
    """The key is not the one the ballot was sealed with (the secret changed), or the row was altered."""
