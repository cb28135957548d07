"""`store.Lasts`: the newest message of many subjects, asked for together, one request out
at a time (an in-memory stand-in answers as nats-server's multi_last does)."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.msg import Msg

from tocsin.store import MULTI_LAST_MAX, Lasts, StoreUnavailable


def message(subject: str, seq: int) -> Msg:
    return Msg(
        _client=None,  # type: ignore[arg-type]
        subject="reply",
        data=b"%d" % seq,
        headers={"Nats-Subject": subject, "Nats-Sequence": str(seq)},
    )


def end(status: str) -> Msg:
    return Msg(_client=None, subject="reply", headers={"Status": status})  # type: ignore[arg-type]


class Stream:
    """Answers multi_last requests from a dict of subject -> newest sequence."""

    def __init__(self, newest: dict[str, int]) -> None:
        self.newest = newest
        self.asked: list[list[str]] = []
        self.failure: Exception | None = None

    async def ask(self, subjects: list[str]) -> list[Msg]:
        self.asked.append(subjects)
        await asyncio.sleep(0)
        if self.failure is not None:
            raise self.failure
        found = [message(s, self.newest[s]) for s in subjects if s in self.newest]
        return [*found, end("204")] if found else [end("404")]


async def test_calls_in_one_turn_share_one_request_and_each_gets_its_own_answer() -> None:
    stream = Stream({"a": 3, "c": 7})
    lasts = Lasts(stream.ask)
    a, b, c, a_again = await asyncio.gather(lasts("a"), lasts("b"), lasts("c"), lasts("a"))
    assert stream.asked == [["a", "b", "c"]]
    assert a is not None and a.data == b"3"
    assert a_again is a
    assert b is None
    assert c is not None and c.data == b"7"


async def test_nothing_found_at_all_is_none_for_every_caller() -> None:
    lasts = Lasts(Stream({}).ask)
    assert await asyncio.gather(lasts("x"), lasts("y")) == [None, None]


async def test_calls_in_later_turns_make_requests_of_their_own() -> None:
    stream = Stream({"a": 1})
    lasts = Lasts(stream.ask)
    await lasts("a")
    await lasts("a")
    assert stream.asked == [["a"], ["a"]]


async def test_more_subjects_than_one_request_may_name_are_split() -> None:
    subjects = [f"s{i}" for i in range(MULTI_LAST_MAX + 5)]
    stream = Stream({s: i + 1 for i, s in enumerate(subjects)})
    lasts = Lasts(stream.ask)
    found = await asyncio.gather(*(lasts(s) for s in subjects))
    assert [len(a) for a in stream.asked] == [MULTI_LAST_MAX, 5]
    expected = [b"%d" % (i + 1) for i in range(len(subjects))]
    assert [m.data for m in found if m is not None] == expected


async def test_a_failed_request_fails_every_caller_of_it() -> None:
    stream = Stream({"a": 1})
    stream.failure = StoreUnavailable("direct get timed out")
    lasts = Lasts(stream.ask)
    results = await asyncio.gather(lasts("a"), lasts("b"), return_exceptions=True)
    assert all(isinstance(r, StoreUnavailable) for r in results)


async def test_an_unexpected_status_is_store_unavailable() -> None:
    async def ask(_subjects: list[str]) -> list[Msg]:
        return [end("408")]

    with pytest.raises(StoreUnavailable, match="408"):
        await Lasts(ask)("a")


async def test_a_caller_that_gives_up_leaves_the_others_answered() -> None:
    stream = Stream({"a": 1, "b": 2})
    lasts = Lasts(stream.ask)
    gives_up = asyncio.ensure_future(lasts("a"))
    waits = asyncio.ensure_future(lasts("b"))
    await asyncio.sleep(0)
    gives_up.cancel()
    found = await waits
    assert found is not None and found.data == b"2"
    assert gives_up.cancelled()


class HeldStream(Stream):
    """A stream whose answers wait until the test lets each request through."""

    def __init__(self, newest: dict[str, int]) -> None:
        super().__init__(newest)
        self.gates: list[asyncio.Event] = []

    async def ask(self, subjects: list[str]) -> list[Msg]:
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        return await super().ask(subjects)


async def test_calls_made_while_a_request_is_out_wait_and_share_the_next_one() -> None:
    stream = HeldStream({"a": 1, "b": 2, "d": 4})
    lasts = Lasts(stream.ask)
    first = asyncio.ensure_future(lasts("a"))
    while not stream.gates:
        await asyncio.sleep(0)
    # Asked in turns of their own, while the first request is out.
    later = []
    for subject in ("b", "c", "d", "b"):
        later.append(asyncio.ensure_future(lasts(subject)))
        await asyncio.sleep(0)
    assert len(stream.gates) == 1
    stream.gates[0].set()
    found = await first
    assert found is not None and found.data == b"1"
    while len(stream.gates) < 2:
        await asyncio.sleep(0)
    stream.gates[1].set()
    b, c, d, b_again = await asyncio.gather(*later)
    assert stream.asked == [["a"], ["b", "c", "d"]]
    assert b is not None and b.data == b"2" and b_again is b
    assert c is None
    assert d is not None and d.data == b"4"


async def test_calls_waiting_behind_a_failed_request_are_still_asked() -> None:
    stream = HeldStream({"b": 2})
    stream.failure = StoreUnavailable("direct get timed out")
    lasts = Lasts(stream.ask)
    first = asyncio.ensure_future(lasts("a"))
    while not stream.gates:
        await asyncio.sleep(0)
    second = asyncio.ensure_future(lasts("b"))
    await asyncio.sleep(0)
    stream.gates[0].set()
    with pytest.raises(StoreUnavailable):
        await first
    stream.failure = None
    while len(stream.gates) < 2:
        await asyncio.sleep(0)
    stream.gates[1].set()
    found = await second
    assert found is not None and found.data == b"2"
