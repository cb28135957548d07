"""What each request receives through, lean: Hypercorn's `asyncio.Queue` per request,
replaced.

Hypercorn hands a request's ASGI events (its body, then `http.disconnect`) to the app
through an `asyncio.Queue(max_app_queue_size)`: four deques and an Event, about 2.4 KB
per request (tracemalloc over 2,000 open streams), which an open stream holds for as
long as it is open: more than everything tocsin itself keeps for a stream, and a tenth
of an idle stream's memory. `ReceiveQueue` does what that queue does for Hypercorn (a
bounded FIFO: `put` waits while it is full, `get` while it is empty) in one slotted
object whose wait lists are made only once someone waits.

`install()` has Hypercorn's TCP connections make one per request. It replaces
`hypercorn.asyncio.task_group.TaskGroup.spawn_app` for Hypercorn 0.18 (the version
pinned in uv.lock), the one place the queue is made; any other version is left as it
is (`installed()` says which).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any

from hypercorn.asyncio import task_group
from hypercorn.config import Config
from hypercorn.typing import AppWrapper, ASGIReceiveEvent, ASGISendEvent, Scope

HYPERCORN_VERSIONS = ("0.18.",)


class ReceiveQueue:
    """A bounded FIFO of a request's ASGI events, as `asyncio.Queue` behaves."""

    __slots__ = ("_getters", "_items", "_maxsize", "_putters")

    def __init__(self, maxsize: int = 0) -> None:
        self._items: list[ASGIReceiveEvent] = []
        self._maxsize = maxsize
        self._getters: list[asyncio.Future[None]] | None = None
        self._putters: list[asyncio.Future[None]] | None = None

    def _full(self) -> bool:
        return 0 < self._maxsize <= len(self._items)

    async def get(self) -> ASGIReceiveEvent:
        """The oldest event, once there is one."""
        # The waits are written out here, not in a helper coroutine: an open stream waits
        # in `get` for as long as it is open, and a second frame would cost it ~400 bytes.
        while not self._items:
            if self._getters is None:
                self._getters = []
            waiter = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except BaseException:
                _withdraw(waiter, self._getters, bool(self._items))
                raise
        item = self._items.pop(0)
        _wake_next(self._putters)
        return item

    async def put(self, item: ASGIReceiveEvent) -> None:
        """Add an event, once there is room."""
        while self._full():
            if self._putters is None:
                self._putters = []
            waiter = asyncio.get_running_loop().create_future()
            self._putters.append(waiter)
            try:
                await waiter
            except BaseException:
                _withdraw(waiter, self._putters, not self._full())
                raise
        self._items.append(item)
        _wake_next(self._getters)


def _withdraw(
    waiter: asyncio.Future[None], waiters: list[asyncio.Future[None]], ready: bool
) -> None:
    """A wait that ended by an exception: a waiter already woken passes the wake-up on,
    so that none is lost (as `asyncio.Queue` does)."""
    waiter.cancel()
    if waiter in waiters:
        waiters.remove(waiter)
    if ready and not waiter.cancelled():
        _wake_next(waiters)


def _wake_next(waiters: list[asyncio.Future[None]] | None) -> None:
    """Wake the first waiter still waiting."""
    while waiters:
        waiter = waiters.pop(0)
        if not waiter.done():
            waiter.set_result(None)
            break


def app_call(
    app: AppWrapper,
    config: Config,
    scope: Scope,
    receive: Callable[[], Awaitable[ASGIReceiveEvent]],
    send: Callable[[ASGISendEvent | None], Awaitable[None]],
) -> Coroutine[Any, Any, None]:
    """The app's call as Hypercorn 0.18's `TaskGroup.spawn_app` makes it, not yet
    started: through Hypercorn's `_handle`, which logs an app's failure and then ends
    the answer (`send(None)`: a 500 if nothing was sent)."""
    loop = asyncio.get_running_loop()

    def call_soon(func: Callable[..., Any], *args: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(func(*args), loop).result()

    return task_group._handle(
        app, config, scope, receive, send, partial(loop.run_in_executor, None), call_soon
    )


async def _spawn_app(
    self: task_group.TaskGroup,
    app: AppWrapper,
    config: Config,
    scope: Scope,
    send: Callable[[ASGISendEvent | None], Awaitable[None]],
) -> Callable[[ASGIReceiveEvent], Awaitable[None]]:
    # Hypercorn 0.18's `TaskGroup.spawn_app`, with `ReceiveQueue` for `asyncio.Queue`:
    # the app's call in a task of the group; the queue's put is how it receives.
    queue = ReceiveQueue(config.max_app_queue_size)
    self._task_group.create_task(app_call(app, config, scope, queue.get, send))
    return queue.put


def built_on_this_hypercorn() -> bool:
    """Whether the installed Hypercorn is one whose internals tocsin replaces parts of."""
    return importlib.metadata.version("hypercorn").startswith(HYPERCORN_VERSIONS)


def install() -> bool:
    """Have Hypercorn make a `ReceiveQueue` per request; False (nothing changed) for a
    Hypercorn this was not written against."""
    if not built_on_this_hypercorn():
        return False
    task_group.TaskGroup.spawn_app = _spawn_app  # type: ignore[method-assign]
    return True


def installed() -> bool:
    """Whether Hypercorn's requests receive through `ReceiveQueue`."""
    return task_group.TaskGroup.spawn_app is _spawn_app
