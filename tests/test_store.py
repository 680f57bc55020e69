"""The store's own contracts, called directly (no HTTP), on each backend.

A spent code answers "already counted" whatever comes with it; a meeting moves only along its
lifecycle; every close is a new result version and the earlier ones stay readable; a voided meeting
leaves the count for its unit and year, a deleted one leaves nothing; one counted review per unit
and year.
"""

from __future__ import annotations

import datetime as dt

import pytest

from app import store
from app.db import Database
from app.errors import Conflict, DomainError, Forbidden, NotFound
from app.schemas import MeetingCreate
from tests.conftest import ALL_A, KEYS

K = 5
ALL_B = {f"p{i:02d}": "B" for i in range(1, 20)}


def problem(error: pytest.ExceptionInfo[DomainError]) -> tuple[str, dict[str, object]]:
    return error.value.problem.code, dict(error.value.problem.params)


def new_meeting(database: Database, unit: str = "JL001", *, opened: bool = True) -> int:
    with database.session() as session:
        if store.find_unit(session=session, code=unit) is None:
            store.create_unit(session=session, actor="tests", code=unit, name="测试单位", category="party_gov")
        body = MeetingCreate(unit_code=unit, year=2026, date=dt.date(2026, 12, 3), title="述职评议会", attendance=35)
        meeting_id = store.create_meeting(session=session, actor="tests", body=body).id
        assert meeting_id is not None
        if opened:
            store.open_meeting(session=session, actor="tests", meeting_id=meeting_id)
        return meeting_id


def mint(database: Database, meeting_id: int, count: int) -> list[str]:
    with database.session() as session:
        minted = store.mint_tokens(session=session, actor="tests", meeting_id=meeting_id, count=count, group=None,
                                   keys=KEYS)
    return [code for code, _ in minted]


def submit(database: Database, *submissions: tuple[str, dict[str, str]]) -> list[str | None]:
    """One batch, as the writer sends it: each submission's status, or its error's code."""
    with database.writing() as conn:
        spent = store.submit_batch(
            conn=conn, submissions=[store.Submission(code, answers, None) for code, answers in submissions], keys=KEYS
        )
    return [outcome.status or (outcome.error.problem.code if outcome.error else None) for outcome in spent.outcomes]


def close(database: Database, meeting_id: int, **kw: object) -> int:
    with database.session() as session:
        result = store.close_meeting(session=session, actor="tests", meeting_id=meeting_id, k=K, keys=KEYS,
                                     **kw)  # type: ignore[arg-type]
        return result.version


def vote(database: Database, meeting_id: int, count: int) -> None:
    assert submit(database, *((code, ALL_A) for code in mint(database, meeting_id, count))) == ["counted"] * count


# ---- batch spend -------------------------------------------------------------------------------


def test_a_spent_code_answers_already_counted_whatever_comes_with_it(database: Database) -> None:
    meeting = new_meeting(database)
    code, other = mint(database, meeting, 2)
    assert submit(database, (code, ALL_A)) == ["counted"]
    assert submit(database, (code, ALL_A), (code, ALL_B), (other, ALL_B)) == ["already_counted", "already_counted",
                                                                               "counted"]
    assert submit(database, (code, {"p01": "nonsense"})) == ["already_counted"]
    with database.reading() as conn:
        assert store.pending_count(conn=conn, meeting_id=meeting) == 2


def test_one_batch_spends_a_code_once_however_often_it_holds_it(database: Database) -> None:
    meeting = new_meeting(database)
    (code,) = mint(database, meeting, 1)
    assert sorted(map(str, submit(database, (code, ALL_A), (code, ALL_B)))) == ["already_counted", "counted"]
    with database.reading() as conn:
        assert store.pending_count(conn=conn, meeting_id=meeting) == 1


def test_unknown_and_void_codes_are_refused_in_a_batch_that_counts_the_rest(database: Database) -> None:
    meeting = new_meeting(database)
    good, voided = mint(database, meeting, 2)
    # Voiding takes every unused code of the group: the good one's ballot goes in first.
    assert submit(database, (good, ALL_A)) == ["counted"]
    with database.session() as session:
        assert store.void_unused_tokens(session=session, actor="tests", meeting_id=meeting, group=None) == 1
    assert submit(database, ("K7MQ2X9PAR", ALL_A), (voided, ALL_A)) == ["token_unknown", "token_void"]


# ---- lifecycle ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "action", "call"),
    [
        ("draft", "close", lambda s, m: store.close_meeting(session=s, actor="t", meeting_id=m, k=K, keys=KEYS)),
        ("draft", "reopen", lambda s, m: store.reopen_meeting(session=s, actor="t", meeting_id=m, reason="why")),
        ("open", "open", lambda s, m: store.open_meeting(session=s, actor="t", meeting_id=m)),
        ("open", "reopen", lambda s, m: store.reopen_meeting(session=s, actor="t", meeting_id=m, reason="why")),
    ],
)
def test_a_meeting_moves_only_along_its_lifecycle(database: Database, state: str, action: str, call: object) -> None:
    meeting = new_meeting(database, opened=state == "open")
    with database.session() as session, pytest.raises(Conflict) as refused:
        call(session, meeting)  # type: ignore[operator]
    assert problem(refused) == ("meeting_transition", {"state": state, "action": action})


def test_closed_meetings_refuse_open_and_close_and_voided_ones_everything(database: Database) -> None:
    meeting = new_meeting(database)
    vote(database, meeting, K)
    close(database, meeting)
    with database.session() as session:
        for action, call in [("open", store.open_meeting), ("close", None)]:
            with pytest.raises(Conflict) as refused:
                if call is None:
                    store.close_meeting(session=session, actor="t", meeting_id=meeting, k=K, keys=KEYS)
                else:
                    call(session=session, actor="t", meeting_id=meeting)
            assert problem(refused) == ("meeting_transition", {"state": "closed", "action": action})
        store.void_meeting(session=session, actor="t", meeting_id=meeting, reason="作废")
        with pytest.raises(Conflict) as refused:
            store.void_meeting(session=session, actor="t", meeting_id=meeting, reason="again")
        assert problem(refused) == ("meeting_transition", {"state": "voided", "action": "void"})
        with pytest.raises(Conflict) as refused:
            store.reopen_meeting(session=session, actor="t", meeting_id=meeting, reason="why")
        assert problem(refused) == ("meeting_transition", {"state": "voided", "action": "reopen"})


def test_a_meeting_closes_with_k_ballots_and_not_fewer(database: Database) -> None:
    meeting = new_meeting(database)
    vote(database, meeting, K - 1)
    with database.session() as session, pytest.raises(Conflict) as refused:
        store.close_meeting(session=session, actor="t", meeting_id=meeting, k=K, keys=KEYS)
    assert problem(refused) == ("meeting_too_few_ballots", {"ballots": K - 1, "k": K})
    vote(database, meeting, 1)
    assert close(database, meeting) == 1


# ---- result versions ---------------------------------------------------------------------------


def test_each_close_is_a_new_version_and_every_version_stays_readable(database: Database) -> None:
    meeting = new_meeting(database)
    vote(database, meeting, K)
    assert close(database, meeting) == 1
    with database.session() as session:
        store.reopen_meeting(session=session, actor="t", meeting_id=meeting, reason="一张票漏投")
    vote(database, meeting, K)
    assert close(database, meeting) == 2
    with database.session() as session:
        assert [r.version for r in store.results_of(session=session, meeting_id=meeting)] == [1, 2]
        assert store.latest_result(session=session, meeting_id=meeting).version == 2
        first = store.result_version(session=session, meeting_id=meeting, version=1)
        second = store.result_version(session=session, meeting_id=meeting, version=2)
        assert first.digest != second.digest
        with pytest.raises(NotFound):
            store.result_version(session=session, meeting_id=meeting, version=3)


def test_closing_again_needs_k_new_ballots_or_an_administrators_reason(database: Database) -> None:
    meeting = new_meeting(database)
    vote(database, meeting, K)
    close(database, meeting)
    with database.session() as session:
        store.reopen_meeting(session=session, actor="t", meeting_id=meeting, reason="再议")
    vote(database, meeting, 1)
    with database.session() as session:
        with pytest.raises(Conflict) as refused:
            store.close_meeting(session=session, actor="t", meeting_id=meeting, k=K, keys=KEYS)
        assert problem(refused) == ("meeting_reclose_gap", {"published": K, "total": K + 1, "added": 1, "k": K,
                                                            "needed": 2 * K})
        with pytest.raises(Forbidden) as forbidden:
            store.close_meeting(session=session, actor="t", meeting_id=meeting, k=K, keys=KEYS, risk_reason="急用")
        assert problem(forbidden) == ("meeting_reclose_reason", {"k": K})
    assert close(database, meeting, risk_reason="差额不足 K，主任同意", may_accept_risk=True) == 2


def test_a_meeting_has_no_result_before_it_closes(database: Database) -> None:
    meeting = new_meeting(database)
    with database.session() as session, pytest.raises(Conflict):
        store.latest_result(session=session, meeting_id=meeting)


# ---- void and delete ---------------------------------------------------------------------------


def test_a_voided_meeting_keeps_its_versions_but_no_longer_counts(database: Database) -> None:
    meeting = new_meeting(database)
    vote(database, meeting, K)
    close(database, meeting)
    with database.session() as session:
        unit = store.find_unit(session=session, code="JL001")
        assert unit is not None and unit.id is not None
        assert store.counted_review(session=session, unit_id=unit.id, year=2026) == meeting
        store.void_meeting(session=session, actor="t", meeting_id=meeting, reason="程序有误")
        assert store.counted_review(session=session, unit_id=unit.id, year=2026) is None
        assert store.result_version(session=session, meeting_id=meeting, version=1).version == 1
        with pytest.raises(Conflict) as refused:
            store.latest_result(session=session, meeting_id=meeting)
        assert refused.value.problem.code == "meeting_voided"


def test_only_a_draft_is_deleted_and_then_nothing_of_it_is_left(database: Database) -> None:
    draft = new_meeting(database, opened=False)
    mint(database, draft, 3)
    opened = new_meeting(database)
    with database.session() as session:
        store.delete_meeting(session=session, actor="t", meeting_id=draft)
        with pytest.raises(NotFound):
            store.get_meeting(session=session, meeting_id=draft)
        assert store.token_counts(session=session, meeting_id=draft) == {}
        with pytest.raises(Conflict) as refused:
            store.delete_meeting(session=session, actor="t", meeting_id=opened)
        assert refused.value.problem.code == "meeting_delete_not_draft"


# ---- one counted review per unit and year ------------------------------------------------------


def test_one_counted_review_per_unit_and_year(database: Database) -> None:
    first = new_meeting(database)
    second = new_meeting(database)
    vote(database, first, K)
    vote(database, second, K)
    close(database, first)
    with database.session() as session, pytest.raises(Conflict) as refused:
        store.close_meeting(session=session, actor="t", meeting_id=second, k=K, keys=KEYS)
    assert problem(refused) == ("meeting_unit_year_counted", {"unit": "JL001 测试单位", "year": 2026, "other": first})
    with database.session() as session:
        store.void_meeting(session=session, actor="t", meeting_id=first, reason="重开一次")
    assert close(database, second) == 1
