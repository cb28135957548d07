"""The feed: a user's notifications newest first with their state, the grouped feed, state
changes and preferences, and how each change reaches every open stream of the user.

Everything here reads the user's timeline (`History.current`: held or cached in memory,
brought up to date) and the user's state document (`state_store`), never the user's
whole history from the store per request. A change is written by compare-and-set, then
sent as an `event: state` frame to every stream of the user on every process
(`Hub.reach`); see `_tell` for how the last frame a stream gets is always the latest.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec

from . import signals, sse
from .entry import Notice
from .history import History
from .hub import Hub, Opened
from .ids import BadId, decode_id, encode_id
from .model import (
    Counts,
    Feed,
    FeedItem,
    FeedQuery,
    Group,
    Groups,
    InvalidInput,
    Notification,
    Preferences,
    ReadState,
    StateChange,
    StateEvent,
    encode,
)
from .state import Tally, UserState, View, apply, counts, fold, selected
from .state_store import StateStore
from .store import Store, StoreUnavailable

log = logging.getLogger("tocsin.feed")

# How many times in a row a change's sender brings counts up to date because other
# changes landed meanwhile (each time to the newest revision, so a few at most).
MAX_CATCH_UPS = 32
MAX_ACTORS = 3
# How long the document read when a user is first followed stands for the counts of the
# stream that caused the read, and how many such documents may wait before old ones go.
JUST_READ_SECONDS = 2.0
JUST_READ_MAX = 10_000


def page_of(
    notices: Iterable[Notice], before_seq: int | None, limit: int
) -> tuple[list[Notice], bool]:
    """The first `limit` of `notices` (newest first) strictly older than `before_seq`,
    and whether more are left."""
    kept: list[Notice] = []
    for notice in notices:
        if before_seq is not None and notice.seq >= before_seq:
            continue
        if len(kept) == limit:
            return kept, True
        kept.append(notice)
    return kept, False


def cursor_seq(value: str, epoch: str, field: str) -> int:
    """The sequence of an id the client sends back; raise `InvalidInput` naming `field`."""
    try:
        cursor = decode_id(value)
    except BadId:
        raise InvalidInput("not a notification id", field) from None
    if cursor.epoch != epoch:
        raise InvalidInput("id is from an earlier incarnation of the stream; refetch", field)
    return cursor.seq


Rule = Callable[[Notice], bool]


def listed(view: View, query: FeedQuery) -> Rule:
    """Which notifications a feed with `query`'s filters lists (contract §9): by default
    those not archived and not muted; muted ones only with `status=all`."""
    status, kind, subject_id = query.status, query.kind, query.subject_id

    def by_status(notice: Notice) -> bool:
        if status is msgspec.UNSET:
            return view.shown(notice)
        if status == "all":
            return True
        if status == "archived":
            return view.is_archived(notice.seq) and not view.muted(notice.kind)
        if not view.shown(notice):
            return False
        read = view.is_read(notice.seq)
        if status == "read":
            return read
        if status == "unread":
            return not read
        return not read and not view.is_seen(notice.seq)

    def rule(notice: Notice) -> bool:
        return (
            (kind is msgspec.UNSET or notice.kind == kind)
            and (subject_id is msgspec.UNSET or notice.subject_id == subject_id)
            and by_status(notice)
        )

    return rule


_notification_decoder = msgspec.json.Decoder(Notification)


def feed_item(notice: Notice, view: View) -> FeedItem:
    """A notification as the feed lists it, with its state."""
    item = _notification_decoder.decode(notice.json)
    return FeedItem(**msgspec.structs.asdict(item), state=view.item_state(notice.seq))


@dataclass(slots=True)
class _Gathering:
    latest: Notice
    count: int = 0
    unread: int = 0
    actors: list[str] = field(default_factory=list)


def grouped(notices: Iterable[Notice], view: View) -> list[_Gathering]:
    """The default feed collapsed by (kind, subject_id), newest group first (by its
    latest notification), from `notices` newest first."""
    groups: dict[tuple[str, str], _Gathering] = {}
    for notice in notices:
        if not view.shown(notice):
            continue
        key = (notice.kind, notice.subject_id)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Gathering(notice)
        group.count += 1
        if not view.is_read(notice.seq):
            group.unread += 1
        actor = notice.actor_id
        if actor is not None and len(group.actors) < MAX_ACTORS and actor not in group.actors:
            group.actors.append(actor)
    return list(groups.values())


class Feeds:
    """Reads feeds from the users' timelines and changes the users' state."""

    def __init__(self, store: Store, history: History, states: StateStore, hub: Hub) -> None:
        self._store = store
        self._history = history
        self._states = states
        self._hub = hub
        # The document the hub's read of a user's mute list found, for the state frame of
        # the stream that made the hub read it (one read of the bucket per stream opened,
        # not two). Taken once; a change made in between reaches that stream as its own
        # state frame after this one.
        self._just_read: dict[str, tuple[UserState, float]] = {}

    # -- reading --------------------------------------------------------------------

    async def page(
        self, user: str, limit: int, before: str | None, query: FeedQuery | None = None
    ) -> Feed:
        """A page of `user`'s feed with `query`'s filters, strictly older than `before`."""
        epoch = self._store.epoch
        before_seq = cursor_seq(before, epoch, "before") if before is not None else None
        # Two round trips to NATS, made at once.
        timeline, (doc, _) = await asyncio.gather(
            self._history.current(user), self._states.load(user)
        )
        position = 0
        if not timeline.entries:
            # The stream's position, taken before the user's timeline is read again:
            # whatever is stored after it reaches a stream resumed from `cursor`.
            _, position = await self._store.bounds()
            timeline = await self._history.current(user)
        view = View(doc)
        live = list(timeline.notices(time.time_ns()))
        tally = counts(view, live)
        rule = listed(view, query or FeedQuery())
        items, more = page_of(filter(rule, live), before_seq, limit)
        newest = timeline.entries[-1].seq if timeline.entries else None
        return Feed(
            items=[feed_item(n, view) for n in items],
            next_before=items[-1].id if more and items else None,
            last_id=encode_id(epoch, newest) if newest else None,
            unread=tally.unread,
            cursor=encode_id(epoch, newest if newest else position),
            unseen=tally.unseen,
        )

    async def groups(self, user: str, limit: int, before: str | None) -> Groups:
        """A page of `user`'s grouped feed: groups whose latest notification is strictly
        older than `before`."""
        before_seq = cursor_seq(before, self._store.epoch, "before") if before else None
        timeline, (doc, _) = await asyncio.gather(
            self._history.current(user), self._states.load(user)
        )
        view = View(doc)
        found = [
            g
            for g in grouped(timeline.notices(time.time_ns()), view)
            if before_seq is None or g.latest.seq < before_seq
        ]
        page = found[:limit]
        return Groups(
            groups=[
                Group(
                    kind=g.latest.kind,
                    subject_id=g.latest.subject_id,
                    count=g.count,
                    unread=g.unread,
                    actors=g.actors,
                    latest=feed_item(g.latest, view),
                )
                for g in page
            ],
            next_before=page[-1].latest.id if len(found) > limit else None,
        )

    async def preferences(self, user: str) -> Preferences:
        """The user's muted kinds."""
        return Preferences(muted_kinds=await self.muted_kinds(user))

    async def muted_kinds(self, user: str) -> list[str]:
        """The user's muted kinds (the hub reads them when it begins to follow a user)."""
        doc, _ = await self._states.load(user)
        now = time.monotonic()
        just_read = self._just_read
        just_read.pop(user, None)  # re-inserted last: the oldest stay first
        just_read[user] = (doc, now)
        # Each read adds one and drops up to two of the oldest that are stale or beyond
        # the bound: constant work a read, and never more than JUST_READ_MAX kept.
        for oldest, (_, at) in list(itertools.islice(just_read.items(), 2)):
            if now - at < JUST_READ_SECONDS and len(just_read) <= JUST_READ_MAX:
                break
            del just_read[oldest]
        return list(doc.muted_kinds)

    async def state_frame(self, opened: Opened) -> bytes | None:
        """The `state` frame a stream sends right after its hello: the current counts
        (no `change`). Also brings this process's mute rule for the user up to date."""
        user = opened.timeline.user
        just_read = self._just_read.pop(user, None)
        try:
            if just_read is not None and time.monotonic() - just_read[1] < JUST_READ_SECONDS:
                doc = just_read[0]
            else:
                doc, _ = await self._states.load(user)
        except StoreUnavailable as err:
            log.warning(
                "no state frame: state unavailable",
                extra={"fields": {"user": user, "error": str(err)}},
            )
            return None
        self._hub.set_muted(user, doc.muted_kinds)
        tally = counts(View(doc), opened.timeline.notices(time.time_ns()))
        return _frame(StateEvent(unread=tally.unread, unseen=tally.unseen))

    # -- changing -------------------------------------------------------------------

    async def change(self, user: str, change: StateChange) -> Counts:
        """Apply a state change of contract §9 (`change.selector()` has been checked);
        raise `InvalidInput` naming the field for an id that is not one of the user's."""
        _, tally = await self._change(user, change)
        return Counts(unread=tally.unread, unseen=tally.unseen)

    async def mark_read(self, user: str, up_to: str) -> ReadState:
        """`POST /notifications/read`: the same as `{"action": "read", "up_to": up_to}`."""
        doc, tally = await self._change(user, StateChange(action="read", up_to=up_to))
        return ReadState(
            up_to=encode_id(self._store.epoch, doc.read_to) if doc.read_to else None,
            unread=tally.unread,
        )

    async def set_preferences(self, user: str, preferences: Preferences) -> Preferences:
        """Store the user's muted kinds; every open stream of the user applies them at once."""
        timeline = await self._history.current(user)
        kinds = list(preferences.muted_kinds)
        doc, revision = await self._states.change(
            user, lambda d: msgspec.structs.replace(d, muted_kinds=kinds)
        )
        # This process's streams at once; the others when the frame reaches them.
        self._hub.set_muted(user, doc.muted_kinds)
        tally = counts(View(doc), timeline.notices(time.time_ns()))
        event = StateEvent(
            unread=tally.unread, unseen=tally.unseen, muted_kinds=list(doc.muted_kinds)
        )
        await self._tell(user, revision, event, doc.muted_kinds)
        return Preferences(muted_kinds=list(doc.muted_kinds))

    async def _change(self, user: str, change: StateChange) -> tuple[UserState, Tally]:
        timeline = await self._history.current(user)
        now_ns = time.time_ns()
        seqs = selected(change, timeline, now_ns)
        doc, revision = await self._states.change(
            user, lambda d: fold(apply(d, change, seqs, timeline), timeline, now_ns)
        )
        tally = counts(View(doc), timeline.notices(now_ns))
        event = StateEvent(unread=tally.unread, unseen=tally.unseen, change=change)
        await self._tell(user, revision, event, None)
        return doc, tally

    async def _tell(
        self, user: str, revision: int, event: StateEvent, muted: list[str] | None
    ) -> None:
        """Send a change's frame to every stream of the user, then make sure the last
        frame they get is of the newest revision.

        Frames of changes made at once by two processes may cross on their way: the frame
        of the older revision can arrive last. So after sending, the sender reads the
        document again (on the same NATS connection, so after its frame reached the
        server); if a newer revision was written meanwhile, its writer may have sent its
        frame before this one, and the sender sends the counts (and mute list) of the
        newest revision once more. The last writer finds nothing newer; anyone who sends
        after it reads its revision, and sends that. The read also means the frame is at
        the NATS server before the request is answered, so a notification published after
        the answer reaches every process after the frame (a mute applies to it).
        """
        await self._hub.reach(user, signals.Frame(frame=_frame(event), muted_kinds=muted))
        sent = revision
        for _ in range(MAX_CATCH_UPS):
            try:
                doc, latest = await self._states.load(user)
                if latest <= sent:
                    return
                timeline = await self._history.current(user)
            except StoreUnavailable as err:
                # The change is stored and its frame sent; the counts of later ones are
                # their writers' to send.
                log.warning(
                    "state frames not brought up to date",
                    extra={"fields": {"user": user, "error": str(err)}},
                )
                return
            tally = counts(View(doc), timeline.notices(time.time_ns()))
            newest = StateEvent(unread=tally.unread, unseen=tally.unseen)
            await self._hub.reach(
                user, signals.Frame(frame=_frame(newest), muted_kinds=list(doc.muted_kinds))
            )
            sent = latest


def _frame(event: StateEvent) -> bytes:
    return sse.state(encode(event))
