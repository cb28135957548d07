"""A connection's wait for its next request: a timer, not a task.

Hypercorn 0.18's `TCPServer` waits for a connection's next request (at most
`keep_alive_timeout`, less if the worker shuts down) in a task of its own, which
`asyncio.wait_for` gives a second task, behind a lock: made when the connection opens
and at the end of every request, cancelled and awaited when the next one starts. Per
stream opened that was 4.6% of a worker's CPU (py-spy, opening 15,000 streams); per
request kept alive, a quarter of an empty answer's.

`IdleTimer` takes the place of that task for every connection, whichever protocol
serves it (it keeps the task's `restart`/`stop`, which `H11Protocol` reaches by sending
`Updated(idle=...)`; `Http1` calls their bodies, `wait` and `cancel`, in place); `Idle`
is what closes a worker's idle connections at once when it shuts down, as the task's
wait on `terminated` did.
`install()` does it for Hypercorn 0.18 only (the version pinned in uv.lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable
from typing import Any, ClassVar

from hypercorn.asyncio import tcp_server
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.typing import TaskGroup, WorkerContext

from .receive_queue import built_on_this_hypercorn


class Idle:
    """A worker's connections waiting for their next request: closed when it shuts down."""

    _of: ClassVar[weakref.WeakKeyDictionary[WorkerContext, Idle]] = weakref.WeakKeyDictionary()

    def __init__(self, context: WorkerContext) -> None:
        self.conns: set[IdleTimer] = set()
        self._watch = asyncio.get_running_loop().create_task(self._close_at_shutdown(context))

    @classmethod
    def of(cls, context: WorkerContext) -> Idle:
        """The idle connections of the worker `context` belongs to."""
        idle = cls._of.get(context)
        if idle is None:
            idle = cls._of[context] = cls(context)
        return idle

    async def _close_at_shutdown(self, context: WorkerContext) -> None:
        await context.terminated.wait()
        for conn in list(self.conns):
            conn.expire()


class IdleTimer:
    """`TCPServer.idle_task`: closes the connection once it has waited
    `keep_alive_timeout` for its next request (or the worker shuts down)."""

    __slots__ = ("__weakref__", "_server", "_task_group", "_timer")

    def __init__(self) -> None:
        self._server: TCPServer | None = None
        self._task_group: TaskGroup | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def restart(self, task_group: TaskGroup, action: Callable[[], Any]) -> None:
        """Start waiting afresh. `action` is the server's own `_idle_timeout`: the
        server it belongs to is the one closed."""
        server = getattr(action, "__self__", None)
        assert isinstance(server, TCPServer), "IdleTimer serves Hypercorn's TCPServer only"
        self.wait(server, task_group)

    async def stop(self) -> None:
        """A request has begun, or the connection is closing: stop waiting."""
        self.cancel()

    def wait(self, server: TCPServer, task_group: TaskGroup) -> None:
        """`restart`, called in place: wait afresh for `server`'s next request."""
        self.cancel()
        self._server, self._task_group = server, task_group
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(server.config.keep_alive_timeout, self.expire)
        idle = Idle.of(server.context)
        idle.conns.add(self)
        if server.context.terminated.is_set():
            self.expire()

    def cancel(self) -> None:
        """`stop`, called in place."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            assert self._server is not None
            Idle.of(self._server.context).conns.discard(self)

    def expire(self) -> None:
        """Close the connection, if it is still waiting for its next request."""
        if self._timer is None:
            return
        server, task_group = self._server, self._task_group
        self.cancel()
        assert server is not None and task_group is not None
        # RuntimeError: the connection's task group has ended; it is closing already.
        with contextlib.suppress(RuntimeError):
            task_group.spawn(server._initiate_server_close)


def install() -> bool:
    """Have Hypercorn's connections wait for their next request with a timer; False
    (nothing changed) for a Hypercorn this was not written against."""
    if not built_on_this_hypercorn():
        return False
    # `TCPServer.__init__` looks the class up in its module's namespace.
    vars(tcp_server)["AsyncioSingleTask"] = IdleTimer
    return True


def installed() -> bool:
    """Whether Hypercorn's connections wait for their next request with a timer."""
    return vars(tcp_server).get("AsyncioSingleTask") is IdleTimer
