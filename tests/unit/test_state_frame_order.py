"""How a state change's frame is sent (feed.Feeds._tell): the change's own frame, then the
counts of any newer revision written meanwhile, so the last frame is always the newest;
and the state frame a stream opens with, made from the read its hub just did."""

from __future__ import annotations

import json
import time
from typing import Any, cast

import msgspec

from tocsin import signals
from tocsin.entry import decode
from tocsin.feed import JUST_READ_MAX, Feeds
from tocsin.hub import Opened
from tocsin.ids import epoch_of
from tocsin.model import StateChange, StateEvent
from tocsin.state import UserState, fresh
from tocsin.timeline import Timeline

EPOCH = epoch_of("frames")
NOW = time.time_ns()


class Hub:
    def __init__(self) -> None:
        self.sent: list[signals.Frame] = []

    async def reach(self, user: str, signal: signals.Frame) -> None:
        self.sent.append(signal)


class States:
    """Answers each load with the next (document, revision), the last one from then on."""

    def __init__(self, *answers: tuple[UserState, int]) -> None:
        self.answers = list(answers)

    async def load(self, user: str, *, leader: bool = False) -> tuple[UserState, int]:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class History:
    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline

    async def current(self, user: str) -> Timeline:
        return self.timeline


def timeline(*kinds: str) -> Timeline:
    line = Timeline("alice", EPOCH, cap=1000, retention_ns=10**18)
    for seq, kind in enumerate(kinds, 1):
        data = json.dumps({"kind": kind, "subject_id": "s", "text": "t"}).encode()
        line.append(decode(EPOCH, seq, NOW, None, data), NOW)
    return line


def feeds(states: States, hub: Hub) -> Feeds:
    line = timeline("comment.created", "build.failed", "comment.created")
    return Feeds(cast(Any, None), cast(Any, History(line)), cast(Any, states), cast(Any, hub))


def data(frame: signals.Frame) -> dict[str, Any]:
    head, _, body = frame.frame.partition(b"\ndata: ")
    assert head == b"event: state"
    parsed: dict[str, Any] = json.loads(body)
    return parsed


CHANGE = StateChange(action="read", all=True)
EVENT = StateEvent(unread=0, unseen=0, change=CHANGE)


async def test_nothing_newer_sends_the_change_alone() -> None:
    hub = Hub()
    await feeds(States((fresh(EPOCH), 5)), hub)._tell("alice", 5, EVENT, None)
    assert [data(f) for f in hub.sent] == [
        {"unread": 0, "unseen": 0, "change": {"action": "read", "all": True}}
    ]
    assert hub.sent[0].muted_kinds is None


async def test_a_newer_revision_written_meanwhile_is_sent_after_the_change() -> None:
    hub = Hub()
    # Another process unread one and muted builds after this change was written (rev 5).
    newer = msgspec.structs.replace(
        fresh(EPOCH), read_to=3, seen_to=3, unread=[1], muted_kinds=["build.*"]
    )
    await feeds(States((newer, 7)), hub)._tell("alice", 5, EVENT, None)
    assert [data(f) for f in hub.sent] == [
        {"unread": 0, "unseen": 0, "change": {"action": "read", "all": True}},
        {"unread": 1, "unseen": 0},
    ]
    assert hub.sent[1].muted_kinds == ["build.*"]


async def test_it_follows_newer_revisions_until_none_is_newer() -> None:
    hub = Hub()
    first = msgspec.structs.replace(fresh(EPOCH), read_to=1, seen_to=1)
    second = msgspec.structs.replace(fresh(EPOCH), read_to=3, seen_to=3)
    states = States((first, 6), (second, 9), (second, 9))
    await feeds(states, hub)._tell("alice", 5, EVENT, None)
    assert [data(f) for f in hub.sent][1:] == [
        {"unread": 2, "unseen": 2},
        {"unread": 0, "unseen": 0},
    ]


async def test_a_stale_read_older_than_the_change_sends_nothing_more() -> None:
    hub = Hub()
    await feeds(States((fresh(EPOCH), 4)), hub)._tell("alice", 5, EVENT, ["x"])
    assert len(hub.sent) == 1
    assert hub.sent[0].muted_kinds == ["x"]


class Counting(States):
    def __init__(self, *answers: tuple[UserState, int]) -> None:
        super().__init__(*answers)
        self.loads = 0

    async def load(self, user: str, *, leader: bool = False) -> tuple[UserState, int]:
        self.loads += 1
        return await super().load(user, leader=leader)


class MuteHub(Hub):
    def set_muted(self, user: str, kinds: list[str]) -> None:
        pass


async def test_a_streams_first_state_frame_uses_the_read_its_mute_list_made_once() -> None:
    doc = fresh(EPOCH)
    states = Counting((doc, 1))
    opened = Opened(timeline("comment.created"), from_memory=False)
    feed = feeds(states, cast(Any, MuteHub()))
    await feed.muted_kinds("alice")
    assert await feed.state_frame(opened) is not None
    assert states.loads == 1  # the hub's read served the frame
    assert await feed.state_frame(opened) is not None
    assert states.loads == 2  # taken once: a later frame reads afresh


async def test_the_documents_kept_for_state_frames_stay_bounded() -> None:
    feed = feeds(Counting((fresh(EPOCH), 1)), cast(Any, MuteHub()))
    for i in range(JUST_READ_MAX + 50):
        await feed.muted_kinds(f"u{i}")
    kept = feed._just_read
    assert len(kept) == JUST_READ_MAX
    assert f"u{JUST_READ_MAX + 49}" in kept and "u0" not in kept
