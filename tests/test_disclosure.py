"""app.disclosure: the K rules, as tables of cases and as properties."""

from __future__ import annotations

import itertools
import os

import pytest
from hypothesis import given, settings, strategies as st

from app.disclosure import (
    Breakdown,
    breakdown,
    can_close,
    group_counts_visible,
    mix_selection,
    random_order,
    reclose_gap_ok,
    shown_groups,
)

K = 5
PROPERTY = settings(max_examples=300, deadline=None)


def ascending(n: int) -> bytes:
    """Random bytes that are not: the i-th item's sort key is i, so the order they give is known."""
    return b"".join(i.to_bytes(16, "big") for i in range(n // 16))


def descending(n: int) -> bytes:
    count = n // 16
    return b"".join((count - i).to_bytes(16, "big") for i in range(count))


@pytest.mark.parametrize(
    ("pending", "final", "ascending_keys", "descending_keys"),
    [
        (9, False, [], []),  # fewer than 2K wait: nothing is mixed
        (10, False, [0, 1, 2, 3, 4], [9, 8, 7, 6, 5]),  # 2K: all but K, the first of the random order
        (13, False, [0, 1, 2, 3, 4, 5, 6, 7], [12, 11, 10, 9, 8, 7, 6, 5]),
        (3, True, [0, 1, 2], [2, 1, 0]),  # at close, all (the close itself refuses fewer than K in all)
        (0, True, [], []),
    ],
)
def test_mix_selection_takes_all_but_k_once_2k_wait(
    pending: int, final: bool, ascending_keys: list[int], descending_keys: list[int]
) -> None:
    items = list(range(pending))
    assert mix_selection(items, k=K, final=final, random_bytes=ascending) == ascending_keys
    assert mix_selection(items, k=K, final=final, random_bytes=descending) == descending_keys


def test_random_order_follows_its_bytes_and_keeps_every_item() -> None:
    assert random_order(["a", "b", "c"], ascending) == ["a", "b", "c"]
    assert random_order(["a", "b", "c"], descending) == ["c", "b", "a"]
    items = list(range(50))
    shuffled = random_order(items, os.urandom)
    assert sorted(shuffled) == items
    # 50 items in their own order by chance: 1 in 50!.
    assert shuffled != items


@PROPERTY
@given(st.integers(min_value=0, max_value=60), st.booleans())
def test_mixing_always_leaves_k_back_until_close(pending: int, final: bool) -> None:
    chosen = mix_selection(list(range(pending)), k=K, final=final, random_bytes=os.urandom)
    assert len(set(chosen)) == len(chosen)
    if final:
        assert sorted(chosen) == list(range(pending))
    elif pending < 2 * K:
        assert chosen == []
    else:
        assert len(chosen) == pending - K >= K


@pytest.mark.parametrize(
    ("ballots", "expected"), [(0, False), (4, False), (5, True), (200, True)]
)
def test_a_meeting_closes_only_with_k_ballots(ballots: int, expected: bool) -> None:
    assert can_close(ballots, k=K) is expected


@pytest.mark.parametrize(
    ("published", "total", "expected"),
    [(10, 10, True), (10, 11, False), (10, 14, False), (10, 15, True), (10, 40, True)],
)
def test_closing_again_adds_none_or_at_least_k(published: int, total: int, expected: bool) -> None:
    assert reclose_gap_ok(published=published, total=total, k=K) is expected


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({"a": 6, "b": 5}, {"a", "b"}),
        ({"a": 6, "b": 5, "c": 2}, {"a"}),  # c alone would be a+b+c minus a and b: b is hidden with it
        ({"a": 6, "b": 5, "c": 2, "d": 3}, {"a", "b"}),  # c and d hidden together hold 5
        ({"a": 5, "c": 3}, set()),  # hiding a with c leaves nothing to show
        ({"a": 7, "b": 0}, {"a"}),  # an empty group hides nothing
        ({"a": 4, "b": 4}, set()),
        ({None: 20, "a": 3}, set()),  # codes without a group are a group of their own
        ({"a": 5, "b": 5, "c": 1}, {"b"}),  # ties: the first by name goes
    ],
)
def test_shown_groups_never_leave_fewer_than_k_to_subtract(
    counts: dict[str | None, int], expected: set[str | None]
) -> None:
    assert shown_groups(counts, k=K) == expected


@PROPERTY
@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d", None]), st.integers(min_value=0, max_value=12)))
def test_what_is_hidden_holds_none_or_at_least_k(counts: dict[str | None, int]) -> None:
    shown = shown_groups(counts, k=K)
    assert all(counts[key] >= K for key in shown)
    hidden = sum(n for key, n in counts.items() if key not in shown)
    if sum(counts.values()) >= K:
        assert hidden == 0 or hidden >= K
    else:
        # Fewer than K in all: nothing is shown apart (the figures themselves then show no score).
        assert shown == set()


@pytest.mark.parametrize(
    ("earlier", "now", "expected"),
    [
        # the same parts, each moved by 0 or at least K: shown
        ([{"a": 5, "b": 5}], {"a": 10, "b": 5}, {"a", "b"}),
        # a moved by one ballot: the whole breakdown is hidden
        ([{"a": 5, "b": 5}], {"a": 6, "b": 5}, set()),
        # b grew past K: the parts changed, hidden
        ([{"a": 5, "b": 3, "c": 3}], {"a": 5, "b": 8, "c": 3}, set()),
        # the hidden ones together moved by one: hidden
        ([{"a": 6, "b": 5, "c": 2}], {"a": 6, "b": 5, "c": 3}, set()),
        # c grew past K, so b need not hide with it: the parts changed, hidden
        ([{"a": 6, "b": 5, "c": 2}], {"a": 6, "b": 5, "c": 7}, set()),
        # the same parts, a moved by K and the hidden ones together by none: shown
        ([{"a": 6, "b": 5, "c": 2}], {"a": 11, "b": 5, "c": 2}, {"a"}),
        # two earlier versions, the second hid everything: the third cannot match both
        ([{"a": 5, "b": 5}, {"a": 6, "b": 5}], {"a": 11, "b": 10}, set()),
    ],
)
def test_a_breakdown_is_held_to_the_versions_before_it(
    earlier: list[dict[str | None, int]], now: dict[str | None, int], expected: set[str | None]
) -> None:
    before: list[Breakdown] = []
    for counts in earlier:
        before.append(breakdown(counts, before, k=K))
    assert breakdown(now, before, k=K).shown == expected


@PROPERTY
@given(
    st.lists(
        st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(min_value=0, max_value=15), min_size=3),
        min_size=2,
        max_size=4,
    )
)
def test_no_derivable_part_moves_by_fewer_than_k_between_versions(versions: list[dict[str | None, int]]) -> None:
    published: list[Breakdown] = []
    for counts in versions:
        published.append(breakdown(counts, published, k=K))
    for first, second in itertools.combinations(published, 2):
        if second.shown:
            then, now = first.parts(), second.parts()
            assert set(then) == set(now)
            assert all(now[part] == then[part] or abs(now[part] - then[part]) >= K for part in now)


@pytest.mark.parametrize(
    ("state", "shown", "key", "expected"),
    [("open", None, "a", False), ("draft", None, "a", False), ("closed", {"a"}, "a", True),
     ("closed", {"a"}, "b", False), ("closed", set(), None, False)],
)
def test_group_counts_only_after_close_and_only_for_groups_shown(
    state: str, shown: set[str | None] | None, key: str | None, expected: bool
) -> None:
    assert group_counts_visible(state, shown, key) is expected
