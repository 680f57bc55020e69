"""The audit export and `onsite-ballot recount`: the published result again from the file alone."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app import figures, recount, store
from app.cli import main
from app.db import Database
from app.errors import Invalid
from app.tables import Meeting, Result
from app.templates import default_template
from tests.conftest import mint, open_meeting


def answers(grade: str, **overrides: str) -> dict[str, str]:
    return {**{f"p{i:02d}": grade for i in range(1, 20)}, **overrides}


# The README's ten ballots, two of them with a comment: 638.8 / 8 = 79.85.
README_BALLOTS = [
    (answers("A"), "很好"), (answers("A"), None), (answers("A"), None), (answers("B"), None), (answers("B"), None),
    (answers("B"), "希望加强, 学习"), (answers("C"), None), (answers("C"), None), (answers("A", p01="B"), None),
    (answers("D"), None),
]


def closed_readme_meeting(client: TestClient, auth: dict[str, str]) -> int:
    meeting = open_meeting(client, auth)["id"]
    for code, (ballot, comment) in zip(mint(client, auth, meeting, 10), README_BALLOTS, strict=True):
        r = client.post("/api/v1/ballots", json={"token": code, "answers": ballot, "comment": comment})
        assert r.status_code == 201, r.text
    assert client.post(f"/api/v1/meetings/{meeting}/close", headers=auth).status_code == 200
    return meeting


def export(client: TestClient, auth: dict[str, str], meeting: int, fmt: str, tmp_path: Path) -> Path:
    r = client.get(f"/api/v1/meetings/{meeting}/audit?format={fmt}", headers=auth)
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"] == f'attachment; filename="audit-meeting-{meeting}-v1.{fmt}"'
    path = tmp_path / f"audit.{fmt}"
    path.write_bytes(r.content)
    return path


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_recount_reproduces_the_published_result(client: TestClient, auth: dict[str, str], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    meeting = closed_readme_meeting(client, auth)
    published = client.get(f"/api/v1/meetings/{meeting}/result", headers=auth).json()
    path = export(client, auth, meeting, fmt, tmp_path)
    assert main(["recount", str(path), "--digest", published["digest"]]) == 0
    out = capsys.readouterr().out
    assert "得分 score 79.85 (exact 79.85); 现场测评折算分 component 31.94 (exact 31.94)" in out
    assert f"摘要一致 digest matches: {published['digest']}" in out
    assert "the recount reproduces the published result exactly" in out
    file = recount.parse_audit(path.read_bytes())
    assert recount.recount(file).figures.model_dump(mode="json") == published["figures"]


def test_the_export_holds_answers_shuffled_and_no_ids(client: TestClient, auth: dict[str, str],
                                                      database: Database) -> None:
    meeting = closed_readme_meeting(client, auth)
    body = client.get(f"/api/v1/meetings/{meeting}/audit", headers=auth).json()
    assert body["format"] == "onsite-ballot/audit/v1"
    assert set(body) == {"format", "meeting", "published", "rules", "template", "ballots"}
    assert all(set(ballot) == {"group", "answers", "comment"} for ballot in body["ballots"])
    assert body["rules"] == {"trim": 1, "k": 5, "component_weight": "0.4", "flagged_rule": "count",
                             "groups": body["rules"]["groups"], "earlier_versions": []}
    with database.reading() as conn:
        ids = conn.execute(text("SELECT id FROM ballot")).scalars().all()
    assert not any(ballot_id in json.dumps(body) for ballot_id in ids)
    exported = Counter(json.dumps(b["answers"], sort_keys=True) + (b["comment"] or "") for b in body["ballots"])
    cast = Counter(json.dumps(a, sort_keys=True) + (c or "") for a, c in README_BALLOTS)
    assert exported == cast
    with database.reading() as conn:
        events = conn.execute(text("SELECT actor, detail FROM audit_event WHERE action = 'meeting.audit_export'")).all()
    assert [(actor, json.loads(detail)) for actor, detail in events] == [("api:tests", {"ballots": 10, "version": 1})]


def test_shuffle_follows_the_random_source_not_the_box() -> None:
    template = default_template()
    ballots = [figures.StoredBallot(None, answers(grade), None) for grade in "ABCD"]
    meeting = Meeting(id=1, unit_id=1, year=2026, date=dt.date(2026, 12, 3), title="t", template_id="default",
                      template_version=1, mode="cards", attendance=4, groups="[]")
    computed, _ = figures.figures_for(template=template, meeting=meeting, ballots=ballots, k=5)
    result = Result(meeting_id=1, version=1, figures=computed.model_dump_json(), ballot_count=4,
                    digest=figures.result_digest(ballots=ballots, template=template, meeting=meeting, k=5,
                                                 subject=figures.Subject("U", "u", "c")),
                    digest_format=2, unit_code="U", unit_name="u", category="c")

    def build(seed: int) -> recount.AuditFile:
        return recount.build_audit_file(meeting=meeting, result=result, template=template, ballots=ballots, k=5,
                                        rng=random.Random(seed))

    assert [b.answers["p01"] for b in build(1).ballots] == ["D", "A", "C", "B"]
    assert [b.answers["p01"] for b in build(2).ballots] == ["B", "C", "D", "A"]
    assert recount.recount(build(1)).matches


def change_one_answer_json(path: Path) -> None:
    data = json.loads(path.read_text("utf-8"))
    ballot = data["ballots"][0]
    ballot["answers"]["p07"] = "D" if ballot["answers"]["p07"] != "D" else "C"
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")


def change_one_answer_csv(path: Path) -> None:
    rows = list(csv.reader(io.StringIO(path.read_text("utf-8-sig"))))
    column = rows[1].index("p07")
    rows[2][column] = "D" if rows[2][column] != "D" else "C"
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    path.write_text("\ufeff" + out.getvalue(), "utf-8")


@pytest.mark.parametrize(("fmt", "tamper"), [("json", change_one_answer_json), ("csv", change_one_answer_csv)])
def test_recount_rejects_one_changed_answer(client: TestClient, auth: dict[str, str], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str], fmt: str, tamper: Any) -> None:
    meeting = closed_readme_meeting(client, auth)
    path = export(client, auth, meeting, fmt, tmp_path)
    tamper(path)
    assert main(["recount", str(path)]) == 2
    err = capsys.readouterr().err
    assert "文件与公布的摘要不符：测评票、计分规则、模板、往版记录或单位信息有改动。" in err
    assert ("The file does not match the published digest: a ballot, a counting rule, the template, an earlier"
            " version or the unit was changed.") in err


def test_recount_names_a_published_figure_that_the_ballots_do_not_give(
    client: TestClient, auth: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    meeting = closed_readme_meeting(client, auth)
    path = export(client, auth, meeting, "json", tmp_path)
    data = json.loads(path.read_text("utf-8"))
    data["published"]["figures"]["score"] = {"rounded": "79.95", "exact": "79.95"}
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    assert main(["recount", str(path)]) == 1
    err = capsys.readouterr().err
    assert "score.exact: published '79.95', recounted '79.85'" in err
    assert "score.rounded: published '79.95', recounted '79.85'" in err


def test_recount_refuses_other_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (b"\xff\xfe", "审计文件无法读取：不是 UTF-8 文本\nThe audit file cannot be read: it is not UTF-8 text"),
        (b"group,comment,p01\r\n,,A\r\n", "审计文件无法读取：CSV 第一行应以 onsite-ballot/audit/v1 开头"),
        (b'{"format": "onsite-ballot/audit/v2"}', "审计文件无法读取：format 应为以下之一：'onsite-ballot/audit/v1'\n"
                                                  "The audit file cannot be read: format must be one of"
                                                  " 'onsite-ballot/audit/v1'"),
    ]
    for data, message in cases:
        path = tmp_path / "f"
        path.write_bytes(data)
        assert main(["recount", str(path)]) == 2
        assert message in capsys.readouterr().err
    assert main(["recount", str(tmp_path / "missing.json")]) == 2
    assert "无法读取文件 · cannot read the file: No such file or directory" in capsys.readouterr().err


def test_recount_checks_the_digest_the_auditor_was_given(client: TestClient, auth: dict[str, str], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    meeting = closed_readme_meeting(client, auth)
    path = export(client, auth, meeting, "json", tmp_path)
    assert main(["recount", str(path), "--digest", "0" * 64]) == 2
    assert "The file's digest differs from the published digest you gave" in capsys.readouterr().err


def test_weighted_meeting_recounts_exactly(client: TestClient, auth: dict[str, str], tmp_path: Path) -> None:
    groups = [{"key": "leaders", "name": "班子成员", "weight": "60"}, {"key": "reps", "name": "群众代表", "weight": "40"}]
    meeting = open_meeting(client, auth, groups=groups)["id"]
    for group, grades in (("leaders", "AAAAB"), ("reps", "BBCCD")):
        for code, grade in zip(mint(client, auth, meeting, 5, group), grades, strict=True):
            assert client.post("/api/v1/ballots", json={"token": code, "answers": answers(grade)}).status_code == 201
    published = client.post(f"/api/v1/meetings/{meeting}/close", headers=auth).json()
    # leaders (4 × 100 + 80) / 5 = 96; reps (80 + 80 + 50 + 50 + 0) / 5 = 52; 0.6 × 96 + 0.4 × 52 = 78.4
    assert published["figures"]["score"] == {"rounded": "78.40", "exact": "78.4"}
    path = export(client, auth, meeting, "csv", tmp_path)
    outcome = recount.recount(recount.parse_audit(path.read_bytes()))
    assert outcome.matches
    assert outcome.figures.model_dump(mode="json") == published["figures"]


def test_only_admins_export_and_only_closed_meetings(client: TestClient, auth: dict[str, str],
                                                     database: Database) -> None:
    meeting = open_meeting(client, auth)["id"]
    r = client.get(f"/api/v1/meetings/{meeting}/audit", headers=auth)
    assert (r.status_code, r.json()["code"]) == (409, "meeting_not_closed")
    with database.session() as session:
        key = store.create_api_key(session=session, name="auditor-by-mistake", scopes="export")
    r = client.get(f"/api/v1/meetings/{meeting}/audit", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403
    r = client.get(f"/api/v1/meetings/{meeting}/audit?format=xml", headers=auth)
    assert (r.status_code, r.json()["code"]) == (422, "results_format")


def test_digest_mismatch_is_an_invalid_with_both_digests() -> None:
    template = default_template()
    file = recount.AuditFile.model_validate({
        "meeting": {"id": 1, "unit_code": "U", "unit_name": "u", "category": "c", "year": 2026,
                    "date": "2026-12-03", "title": "t"},
        "published": {"version": 1, "digest": "ab" * 32, "closed_at": "2026-12-03T00:00:00Z",
                      "figures": {"ballots": 0, "counted": 0, "dropped": 0, "flagged": 0, "excluded_flagged": 0,
                                  "status": "no_ballots", "message": None, "score": None, "component": None,
                                  "component_weight": "0.4", "total_sum": "0", "items": [], "groups": []}},
        "rules": {"trim": 1, "k": 5, "component_weight": "0.4", "flagged_rule": "count", "groups": []},
        "template": template.model_dump(mode="json"),
        "ballots": [],
    })
    with pytest.raises(Invalid) as caught:
        recount.recount(file)
    assert caught.value.problem.code == "audit_digest"
    assert caught.value.problem.params == {"published": "ab" * 32, "computed": figures.ballot_set_digest([])}
