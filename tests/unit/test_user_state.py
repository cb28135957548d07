"""A user's notification state (contract §9), pure: marks, markers, counts, the bound."""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.entry import decode
from tocsin.feed import grouped, listed
from tocsin.ids import encode_id, epoch_of
from tocsin.model import FeedQuery, InvalidInput, StateChange, decode_state_change
from tocsin.state import UserState, View, apply, counts, fold, fresh, selected
from tocsin.timeline import Timeline

from state_model import expect

EPOCH = epoch_of("state")
NOW = time.time_ns()
SECOND = 1_000_000_000


def body(seq: int, kind: str = "comment.created", subject: str = "doc_1", **extra: Any) -> bytes:
    return json.dumps({"kind": kind, "subject_id": subject, "text": f"n{seq}", **extra}).encode()


def timeline(*seqs: int, cap: int = 1000, **fields: Any) -> Timeline:
    line = Timeline("alice", EPOCH, cap=cap, retention_ns=3600 * SECOND)
    for seq in seqs:
        line.append(decode(EPOCH, seq, NOW, None, body(seq, **fields)), NOW)
    return line


def ident(seq: int) -> str:
    return encode_id(EPOCH, seq)


def change(line: Timeline, doc: UserState, **request: Any) -> UserState:
    """`doc` after the state change `request` (an action and a selector)."""
    wanted = StateChange(**request)
    seqs = selected(wanted, line, NOW)
    return fold(apply(doc, wanted, seqs, line), line, NOW)


def states(line: Timeline, doc: UserState) -> dict[int, tuple[bool, bool, bool]]:
    """(read, seen, archived) of every live notification, by sequence."""
    view = View(doc)
    return {
        n.seq: (view.is_read(n.seq), view.is_seen(n.seq), view.is_archived(n.seq))
        for n in line.notices(NOW)
    }


def tally(line: Timeline, doc: UserState) -> tuple[int, int]:
    found = counts(View(doc), line.notices(NOW))
    return found.unread, found.unseen


def test_nothing_is_read_seen_or_archived_at_first() -> None:
    line = timeline(2, 4, 6)
    doc = fresh(EPOCH)
    assert set(states(line, doc).values()) == {(False, False, False)}
    assert tally(line, doc) == (3, 3)


def test_read_up_to_reads_and_sees_everything_at_or_below() -> None:
    line = timeline(2, 4, 6)
    doc = change(line, fresh(EPOCH), action="read", up_to=ident(4))
    assert doc.read_to == 4 and doc.seen_to == 4
    assert states(line, doc) == {
        2: (True, True, False),
        4: (True, True, False),
        6: (False, False, False),
    }
    assert tally(line, doc) == (1, 1)


def test_unread_makes_it_unread_however_it_became_read_and_it_stays_seen() -> None:
    line = timeline(2, 4, 6, 8)
    doc = change(line, fresh(EPOCH), action="read", up_to=ident(4))
    doc = change(line, doc, action="read", ids=[ident(8)])
    doc = change(line, doc, action="unread", ids=[ident(2), ident(8)])
    assert states(line, doc) == {
        2: (False, True, False),
        4: (True, True, False),
        6: (False, False, False),
        8: (False, True, False),
    }
    # Unread, but the badge does not light up again for what the user saw.
    assert tally(line, doc) == (3, 1)
    # Reading it again undoes the unread mark.
    doc = change(line, doc, action="read", ids=[ident(2)])
    assert states(line, doc)[2] == (True, True, False)
    assert doc.unread == []


def test_markers_never_move_backwards() -> None:
    line = timeline(2, 4, 6)
    doc = change(line, fresh(EPOCH), action="read", up_to=ident(6))
    doc = change(line, doc, action="unread", ids=[ident(6)])
    doc = change(line, doc, action="read", up_to=ident(2))
    assert doc.read_to == 6
    assert states(line, doc)[6] == (False, True, False)
    doc = change(line, doc, action="seen", up_to=ident(2))
    assert doc.seen_to == 6


def test_read_marks_just_above_the_marker_fold_into_it() -> None:
    # Sequences between the user's (other users' notifications) play no part.
    line = timeline(3, 10, 11, 20, 30)
    doc = change(line, fresh(EPOCH), action="read", up_to=ident(3))
    doc = change(line, doc, action="read", ids=[ident(20), ident(11)])
    assert doc.read_to == 3 and doc.read == [11, 20]
    doc = change(line, doc, action="read", ids=[ident(10)])
    assert doc.read_to == 20 and doc.read == []
    assert doc.seen_to == 20 and doc.seen == []
    assert tally(line, doc) == (1, 1)


def test_seen_is_its_own_marker_and_marks() -> None:
    line = timeline(1, 2, 3, 4)
    doc = change(line, fresh(EPOCH), action="seen", up_to=ident(2))
    doc = change(line, doc, action="seen", ids=[ident(4)])
    assert states(line, doc) == {
        1: (False, True, False),
        2: (False, True, False),
        3: (False, False, False),
        4: (False, True, False),
    }
    assert tally(line, doc) == (4, 1)
    doc = change(line, doc, action="seen", all=True)
    assert tally(line, doc) == (4, 0)
    assert doc.seen_to == 4 and doc.seen == []


def test_archived_ones_leave_both_counts_and_come_back_unarchived() -> None:
    line = timeline(1, 2, 3)
    doc = change(line, fresh(EPOCH), action="archive", ids=[ident(1), ident(3)])
    assert tally(line, doc) == (1, 1)
    doc = change(line, doc, action="unarchive", ids=[ident(3)])
    assert tally(line, doc) == (2, 2)
    doc = change(line, doc, action="archive", up_to=ident(2))
    assert sorted(doc.archived) == [1, 2]
    doc = change(line, doc, action="unarchive", all=True)
    assert doc.archived == []


def test_kind_and_subject_selectors_pick_the_users_notifications_with_it() -> None:
    line = timeline()
    for seq, kind, subject in [
        (1, "comment.created", "doc_1"),
        (2, "build.failed", "repo_1"),
        (3, "comment.created", "doc_2"),
        (4, "build.passed", "repo_1"),
    ]:
        line.append(decode(EPOCH, seq, NOW, None, body(seq, kind, subject)), NOW)
    doc = change(line, fresh(EPOCH), action="read", kind="comment.created")
    assert {s for s, (read, _, _) in states(line, doc).items() if read} == {1, 3}
    doc = change(line, doc, action="archive", subject_id="repo_1")
    assert sorted(doc.archived) == [2, 4]
    assert tally(line, doc) == (0, 0)


def test_muted_kinds_are_not_counted_nor_listed_but_with_status_all() -> None:
    line = timeline()
    for seq, kind in [(1, "comment.created"), (2, "build.failed"), (3, "build.passed")]:
        line.append(decode(EPOCH, seq, NOW, None, body(seq, kind)), NOW)
    doc = msgspec.structs.replace(fresh(EPOCH), muted_kinds=["build.*"])
    assert tally(line, doc) == (1, 1)
    view = View(doc)
    default = [n.seq for n in line.notices(NOW) if listed(view, FeedQuery())(n)]
    assert default == [1]
    everything = [n.seq for n in line.notices(NOW) if listed(view, FeedQuery(status="all"))(n)]
    assert everything == [3, 2, 1]
    exact = msgspec.structs.replace(fresh(EPOCH), muted_kinds=["build.failed"])
    assert tally(line, exact) == (2, 2)


def test_status_filters() -> None:
    line = timeline(1, 2, 3, 4, 5)
    doc = change(line, fresh(EPOCH), action="read", ids=[ident(1), ident(2)])
    doc = change(line, doc, action="seen", ids=[ident(3)])
    doc = change(line, doc, action="archive", ids=[ident(2), ident(5)])
    view = View(doc)

    def shown(**query: Any) -> list[int]:
        rule = listed(view, FeedQuery(**query))
        return [n.seq for n in line.notices(NOW) if rule(n)]

    assert shown() == [4, 3, 1]
    assert shown(status="all") == [5, 4, 3, 2, 1]
    assert shown(status="unread") == [4, 3]
    assert shown(status="unseen") == [4]
    assert shown(status="read") == [1]
    assert shown(status="archived") == [5, 2]
    assert shown(status="all", kind="comment.created", subject_id="doc_1") == [5, 4, 3, 2, 1]
    assert shown(kind="other") == []
    assert shown(subject_id="doc_2") == []


def test_groups_by_kind_and_subject_newest_first_with_three_actors() -> None:
    line = timeline()
    rows = [
        (1, "comment.created", "doc_1", "a"),
        (2, "comment.created", "doc_2", "b"),
        (3, "comment.created", "doc_1", "b"),
        (4, "comment.created", "doc_1", "c"),
        (5, "comment.created", "doc_1", "b"),
        (6, "comment.created", "doc_1", "d"),
        (7, "build.failed", "doc_2", None),
    ]
    for seq, kind, subject, actor in rows:
        line.append(decode(EPOCH, seq, NOW, None, body(seq, kind, subject, actor_id=actor)), NOW)
    doc = change(line, fresh(EPOCH), action="read", ids=[ident(4), ident(6)])
    found = grouped(line.notices(NOW), View(doc))
    assert [(g.latest.seq, g.count, g.unread, g.actors) for g in found] == [
        (7, 1, 1, []),
        (6, 5, 3, ["d", "b", "c"]),
        (2, 1, 1, ["b"]),
    ]
    archived = change(line, doc, action="archive", ids=[ident(6)])
    regrouped = grouped(line.notices(NOW), View(archived))
    assert regrouped[1].latest.seq == 5 and regrouped[1].count == 4


def test_an_id_that_is_not_the_users_is_named() -> None:
    line = timeline(2, 4)
    cases = [
        ({"ids": [ident(2), ident(3)]}, "$.ids[1]", "not one of this user's"),
        ({"ids": ["ntf_nope"]}, "$.ids[0]", "not a notification id"),
        ({"ids": [encode_id(epoch_of("other"), 2)]}, "$.ids[0]", "earlier incarnation"),
        ({"up_to": ident(5)}, "$.up_to", "not one of this user's"),
    ]
    for request, field, words in cases:
        with pytest.raises(InvalidInput) as refused:
            selected(StateChange(action="read", **request), line, NOW)
        assert refused.value.field == field
        assert words in refused.value.message


@pytest.mark.parametrize(
    ("request_body", "field", "words"),
    [
        ({"action": "read"}, "$", "a selector is required"),
        ({"action": "read", "all": True, "kind": "k"}, "$.all", "second selector"),
        ({"action": "read", "ids": ["ntf_a_1"], "up_to": "ntf_a_1"}, "$.up_to", "second"),
        ({"action": "shred", "all": True}, "$.action", "one of 'archive', 'read', 'seen'"),
        ({"all": True}, "$.action", "action is required"),
        ({"action": "read", "all": False}, "$.all", "all must be true"),
        ({"action": "read", "ids": []}, "$.ids", "1–1000"),
        ({"action": "read", "ids": ["ntf_a_1"] * 1001}, "$.ids", "1–1000"),
        ({"action": "read", "ids": ["x"]}, "$.ids[0]", "notification id"),
        ({"action": "read", "kind": "Not A Kind"}, "$.kind", "kind must be"),
        ({"action": "read", "ids": None}, "$.ids", "got null"),
        ({"action": "read", "all": True, "extra": 1}, "$.extra", "not a known field"),
    ],
)
def test_bad_state_changes_are_named(request_body: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        decode_state_change(json.dumps(request_body).encode())
    assert refused.value.field == field
    assert words in refused.value.message


def test_marks_of_what_the_store_no_longer_holds_are_dropped() -> None:
    line = timeline(1, 2, 3, 4, cap=3)
    doc = change(line, fresh(EPOCH), action="archive", all=True)
    doc = change(line, doc, action="read", ids=[ident(4)])
    assert sorted(doc.archived) == [2, 3, 4] and doc.read == [4]
    for seq in (5, 6, 7):
        line.append(decode(EPOCH, seq, NOW, None, body(seq)), NOW)
    doc = change(line, doc, action="seen", ids=[ident(7)])
    assert doc.archived == [] and doc.read == [] and doc.seen == [7]


def test_marks_newer_than_this_timeline_are_kept() -> None:
    # Another process, whose timeline is newer, marked seq 9 read.
    line = timeline(1, 2)
    doc = msgspec.structs.replace(fresh(EPOCH), read=[9], seen=[9], archived=[9])
    doc = change(line, doc, action="read", ids=[ident(2)])
    assert doc.read == [2, 9] and doc.archived == [9]


# -- against a model of what each notification is -------------------------------------

ACTIONS = ("read", "unread", "seen", "archive", "unarchive")
KINDS = ("comment.created", "build.failed")
SUBJECTS = ("doc_1", "doc_2")


@st.composite
def steps(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """A user's history: notifications stored, retracted, and state changes."""
    out: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(1, 40))):
        what = draw(st.sampled_from(["store", "store", "retract", "change"]))
        if what == "store":
            out.append(("store", (draw(st.sampled_from(KINDS)), draw(st.sampled_from(SUBJECTS)))))
        elif what == "retract":
            out.append(("retract", draw(st.integers(0, 100))))
        else:
            selector = draw(st.sampled_from(["ids", "up_to", "kind", "subject_id", "all"]))
            picks = draw(st.lists(st.integers(0, 100), min_size=1, max_size=4))
            out.append(("change", (draw(st.sampled_from(ACTIONS)), selector, picks)))
    return out


@settings(max_examples=300, deadline=None)
@given(steps(), st.integers(3, 12))
def test_the_document_agrees_with_a_model_and_stays_bounded(
    history: list[tuple[str, Any]], cap: int
) -> None:
    line = Timeline("alice", EPOCH, cap=cap, retention_ns=3600 * SECOND)
    doc = fresh(EPOCH)
    model: dict[int, list[bool]] = {}  # seq -> [read, seen, archived]
    kinds: dict[int, tuple[str, str]] = {}
    seq = 0
    for what, arg in history:
        seq += 1 + seq % 3  # other users' notifications come in between
        if what == "store":
            kind, subject = arg
            line.append(decode(EPOCH, seq, NOW, None, body(seq, kind, subject)), NOW)
            model[seq], kinds[seq] = [False, False, False], arg
        elif what == "retract":
            live = [n.seq for n in line.notices(NOW)]
            if live:
                target = live[arg % len(live)]
                retraction = decode(EPOCH, seq, NOW, {"Tocsin-Retract": ident(target)}, b"")
                line.append(retraction, NOW)
        else:
            live = sorted(n.seq for n in line.notices(NOW))
            if not live:
                continue
            action, selector, picks = arg
            chosen = [live[p % len(live)] for p in picks]
            request: dict[str, Any]
            if selector == "ids":
                request, hit = {"ids": [ident(s) for s in chosen]}, set(chosen)
            elif selector == "up_to":
                request, hit = {"up_to": ident(chosen[0])}, {s for s in live if s <= chosen[0]}
            elif selector in ("kind", "subject_id"):
                index = 0 if selector == "kind" else 1
                value = kinds[chosen[0]][index]
                request, hit = {selector: value}, {s for s in live if kinds[s][index] == value}
            else:
                request, hit = {"all": True}, set(live)
            doc = change(line, doc, action=action, **request)
            for s in hit:
                expect(model[s], action)
        shown = states(line, doc)
        want = {s: (m[0], m[0] or m[1], m[2]) for s, m in model.items() if s in shown}
        assert shown == want
        unread = sum(1 for r, _, a in want.values() if not r and not a)
        unseen = sum(1 for r, s, a in want.values() if not s and not a)
        assert tally(line, doc) == (unread, unseen)
        # The bound: only notifications the user still has are marked.
        marked = {*doc.read, *doc.unread, *doc.seen, *doc.archived}
        if what == "change":
            assert marked <= set(shown)
            assert doc.size() <= 4 * len(shown)
