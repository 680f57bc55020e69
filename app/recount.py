"""The audit export and its recount: a closed meeting's raw ballots, shuffled, and the figures again.

Pure. The recount uses the very functions the server closes a meeting with (``figures_for`` and
``digest_of`` in app.figures, which touch no database), so the file alone reproduces the published
result or shows where it differs. The digest covers the rules, the template and the unit as well as
the ballots: a file whose rules were changed to match other figures does not pass.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.disclosure import Breakdown
from app.errors import Invalid, Problem, field_reason
from app.figures import RulesRead, StoredBallot, Subject, digest_of, figures_for, rules_document
from app.schemas import (
    AUDIT_FORMAT,
    AuditBallot,
    AuditBreakdown,
    AuditFile,
    AuditGroupCount,
    AuditMeeting,
    AuditPublished,
    AuditRules,
    FiguresPublic,
    GroupPublic,
)
from app.scoring import canonical_json
from app.sheets import FORMULA_STARTS
from app.tables import Meeting, Result
from app.templates import BallotTemplate, parse_template

CSV_GROUP = "group"
CSV_COMMENT = "comment"
UTF8_BOM = "\ufeff"


def build_audit_file(
    *,
    meeting: Meeting,
    result: Result,
    template: BallotTemplate,
    ballots: Sequence[StoredBallot],
    k: int,
    earlier: Sequence[Breakdown] = (),
    rng: random.Random | None = None,
) -> AuditFile:
    """The file an auditor gets. Ballots are shuffled by the OS's randomness: their order in the
    box (by random id) must not be repeatable from one export to the next. The rules are those the
    result was frozen with; ``k`` and the meeting's fields stand in for results frozen before those
    were kept (digest format 1)."""
    rules: dict[str, Any] = json.loads(result.rules) if result.rules is not None else rules_document(meeting, k=k)
    groups: list[dict[str, Any]] = rules["groups"]
    shuffled = [AuditBallot(group=b.group, answers=dict(b.answers), comment=b.comment) for b in ballots]
    (rng or random.SystemRandom()).shuffle(shuffled)
    return AuditFile(
        format=AUDIT_FORMAT,
        meeting=AuditMeeting(
            id=meeting.id,
            unit_code=result.unit_code,
            unit_name=result.unit_name,
            category=result.category,
            year=meeting.year,
            date=meeting.date,
            title=meeting.title,
        ),
        published=AuditPublished(
            version=result.version,
            digest=result.digest,
            digest_format=result.digest_format,
            closed_at=result.created_at,
            figures=FiguresPublic.model_validate_json(result.figures),
        ),
        rules=AuditRules(
            trim=int(str(rules["trim"])),
            k=int(str(rules["k"])),
            component_weight=str(rules["component_weight"]),
            flagged_rule="exclude" if rules["flagged_rule"] == "exclude" else "count",
            groups=[GroupPublic(**group) for group in groups],
            earlier_versions=[
                AuditBreakdown(
                    counts=[AuditGroupCount(group=key, ballots=n) for key, n in before.counts.items()],
                    shown=sorted(before.shown, key=str),
                )
                for before in earlier
            ],
        ),
        template=template.model_dump(mode="json"),
        ballots=shuffled,
    )


def to_json(file: AuditFile) -> bytes:
    return file.model_dump_json(indent=1).encode("utf-8")


def to_csv(file: AuditFile) -> bytes:
    """First row: the format and everything but the ballots as JSON; then a header; then ballots.

    A ballot's cell that a spreadsheet would take for a formula (a rater's comment "=HYPERLINK(…)")
    gets a leading apostrophe, and so does one that starts with an apostrophe already, so that
    reading the file back (``parse_audit``) removes exactly one and finds the very text that was
    cast. The digest is computed over that text, never over the CSV's.
    """
    template = parse_template(file.template)
    point_ids = list(template.point_ids())
    meta = file.model_dump(mode="json", exclude={"ballots"})
    out = io.StringIO()
    out.write(UTF8_BOM)
    writer = csv.writer(out)
    writer.writerow([AUDIT_FORMAT, canonical_json(meta)])
    writer.writerow([CSV_GROUP, CSV_COMMENT, *point_ids])
    for ballot in file.ballots:
        cells = [ballot.group or "", ballot.comment or "", *(ballot.answers[p] for p in point_ids)]
        writer.writerow([_as_text(cell) for cell in cells])
    return out.getvalue().encode("utf-8")


def _as_text(cell: str) -> str:
    return "'" + cell if cell.startswith((*FORMULA_STARTS, "'")) else cell


def _from_text(cell: str) -> str:
    return cell[1:] if cell.startswith("'") else cell


def parse_audit(data: bytes) -> AuditFile:
    """Read an audit file, JSON or CSV; Invalid with a clear message when it is neither."""
    try:
        text = data.decode("utf-8").removeprefix(UTF8_BOM)
    except UnicodeDecodeError:
        raise Invalid("audit_file", error=Problem("audit_not_utf8")) from None
    try:
        if text.lstrip().startswith("{"):
            return AuditFile.model_validate_json(text)
        return _parse_csv(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(root)"
        problem = Problem("field_reason", {"field": where, "reason": field_reason(first)})
        raise Invalid("audit_file", error=problem) from None
    except _Unreadable as exc:
        raise Invalid("audit_file", error=exc.problem) from None
    except (ValueError, KeyError, IndexError):
        raise Invalid("audit_file", error=Problem("audit_csv_meta")) from None


class _Unreadable(Exception):
    def __init__(self, code: str, **params: object) -> None:
        self.problem = Problem(code, params)


def _parse_csv(text: str) -> AuditFile:
    rows = list(csv.reader(io.StringIO(text)))
    if len(rows) < 2 or not rows[0] or rows[0][0] != AUDIT_FORMAT:
        raise _Unreadable("audit_csv_first_row", format=AUDIT_FORMAT)
    meta = json.loads(rows[0][1])
    header = rows[1]
    if header[:2] != [CSV_GROUP, CSV_COMMENT]:
        raise _Unreadable("audit_csv_header", header=f"{CSV_GROUP},{CSV_COMMENT}")
    point_ids = header[2:]
    ballots = []
    for line, row in enumerate(rows[2:], start=3):
        if not row:
            continue
        if len(row) != len(header):
            raise _Unreadable("audit_csv_cells", line=line, cells=len(row), header=len(header))
        row = [_from_text(cell) for cell in row]
        ballots.append(
            {"group": row[0] or None, "comment": row[1] or None, "answers": dict(zip(point_ids, row[2:], strict=True))}
        )
    return AuditFile.model_validate({**meta, "ballots": ballots})


@dataclass(frozen=True)
class Recount:
    digest: str
    figures: FiguresPublic
    differences: list[str]  # empty when the recount equals the published figures

    @property
    def matches(self) -> bool:
        return not self.differences


def recount(file: AuditFile) -> Recount:
    """Check the file against the published digest, then compute the figures from it again.

    Raises Invalid("audit_digest") when a ballot was changed, added or removed, or (digest format 2)
    the rules, the template, the earlier versions or the unit: the figures of anything but what was
    published prove nothing.
    """
    ballots = [StoredBallot(b.group, dict(b.answers), b.comment) for b in file.ballots]
    template = parse_template(file.template)
    rules = file.rules
    settings = RulesRead(
        groups=canonical_json([group.model_dump() for group in rules.groups]),
        trim=rules.trim,
        component_weight=rules.component_weight,
        flagged_rule=rules.flagged_rule,
    )
    earlier = [
        Breakdown(counts={c.group: c.ballots for c in before.counts}, shown=frozenset(before.shown))
        for before in rules.earlier_versions
    ]
    unit = file.meeting
    digest = digest_of(
        file.published.digest_format, ballots=ballots, template=template, meeting=settings, k=rules.k,
        subject=Subject(unit_code=unit.unit_code, unit_name=unit.unit_name, category=unit.category), earlier=earlier,
    )
    if digest != file.published.digest:
        raise Invalid("audit_digest", published=file.published.digest, computed=digest)
    figures, _ = figures_for(template=template, meeting=settings, ballots=ballots, k=rules.k, earlier=earlier)
    return Recount(digest, figures, _differences(file.published.figures, figures))


def _differences(published: FiguresPublic, recounted: FiguresPublic) -> list[str]:
    left, right = published.model_dump(mode="json"), recounted.model_dump(mode="json")
    found: list[str] = []

    def walk(path: str, a: object, b: object) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(f"{path}.{key}" if path else str(key), a.get(key), b.get(key))
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for index, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(f"{path}[{index}]", x, y)
        elif a != b:
            found.append(f"{path}: published {a!r}, recounted {b!r}")

    walk("", left, right)
    return found
