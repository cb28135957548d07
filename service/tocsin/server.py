"""Running tocsin: the embedded NATS, the workers, Hypercorn, and a graceful stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
import traceback
from dataclasses import replace
from pathlib import Path

import uvloop
from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config
from hypercorn.utils import wrap_app

from . import http1, idle, metrics_group, receive_queue, response_head, teardown, telemetry
from .app import create_app
from .auth import Verifier, load_or_create_secret
from .banner import banner
from .embedded import (
    address_free,
    die_with_parent,
    forget_url,
    listen_address,
    start_embedded,
)
from .exits import Exit, Failure
from .hub import Closed
from .logs import redact_url
from .model import PUBLISH_PATH
from .runtime import Runtime
from .settings import Settings

log = logging.getLogger("tocsin.server")


def make_verifier(settings: Settings, *, announce: bool = False) -> Verifier:
    """The token verifier `settings` configure; without a key, the data dir's own secret.

    Raise `Failure` (KEY) for a key that cannot be used, so that a typo in a path is told at
    start, not as every token being refused later.
    """
    if settings.jwks_url:
        return Verifier(jwks_url=settings.jwks_url)
    if settings.jwt_public_key:
        return Verifier(public_key=_public_key(settings.jwt_public_key))
    if settings.jwt_secret:
        return Verifier(secret=settings.jwt_secret)
    where = settings.data_dir / "jwt-secret"
    try:
        secret, created = load_or_create_secret(settings.data_dir)
    except OSError as err:
        raise Failure(
            Exit.KEY,
            f"cannot read or create the JWT secret {where}: {err.strerror or err}; "
            "fix its permissions, pick another --data-dir, or pass --jwt-secret",
        ) from None
    if announce:
        what = "created a new" if created else "using the"
        log.warning(
            f"no JWT key configured: {what} HS256 secret in {where}; `tocsin token` signs with it"
        )
    return Verifier(secret=secret)


def _public_key(given: str) -> str:
    """The PEM text of `--jwt-public-key` (the key itself, or a path to it), checked."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    key = given
    if not key.lstrip().startswith("-----BEGIN"):
        try:
            key = Path(key).read_text()
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) else "not a text file"
            raise Failure(
                Exit.KEY,
                f"--jwt-public-key {given}: {reason or err}; "
                "give a PEM public key or a path to one",
            ) from None
    try:
        load_pem_public_key(key.encode())
    except ValueError:
        shown = given if given is not key else "(the text given)"
        raise Failure(
            Exit.KEY,
            f"--jwt-public-key {shown} is not a PEM public key "
            "(-----BEGIN PUBLIC KEY----- ...); a certificate or a private key will not do",
        ) from None
    return key


def check_listen(settings: Settings) -> None:
    """Fail now, in one line, if tocsin cannot listen on its `--host`/`--port`."""
    where = f"{settings.host}:{settings.port}"
    try:
        free = address_free(settings.host, settings.port)
    except socket.gaierror:
        raise Failure(
            Exit.USAGE, f"--host {settings.host} is not an address tocsin can listen on"
        ) from None
    except OSError as err:
        raise Failure(
            Exit.ADDRESS_IN_USE,
            f"cannot listen on {where}: {err.strerror or err}"
            + ("; ports below 1024 need privileges" if settings.port < 1024 else ""),
        ) from None
    if not free:
        raise Failure(
            Exit.ADDRESS_IN_USE,
            f"{where} is already in use (another tocsin?); stop it or pick another --port",
        )


def run(settings: Settings) -> int:
    """Serve until SIGTERM or Ctrl-C; start and stop the embedded NATS when no URL is given."""
    # What can be refused is checked before anything starts, so that a refusal is one line.
    check_listen(settings)
    address = None if settings.nats_urls else listen_address(settings)
    verifier = make_verifier(settings, announce=True)
    embedded = start_embedded(settings, address) if address is not None else None
    try:
        if embedded is not None:
            settings = replace(settings, nats_urls=(embedded.url,))
        note = embedded.note if embedded is not None else None
        print(banner(settings, embedded=embedded is not None, note=note), flush=True)
        if settings.workers <= 1:
            uvloop.run(serve(settings, verifier))
            return 0
        return _run_workers(settings, verifier)
    finally:
        if embedded is not None:
            embedded.stop()
            forget_url(settings.data_dir, embedded.url)


def limit_unacknowledged(sock: socket.socket, heartbeat: float) -> None:
    """Make the kernel drop a connection whose peer stops acknowledging for three heartbeats.

    A client that vanished without a FIN (a laptop lid, a dead mobile link) never reads
    again; the heartbeats sent to it stay unacknowledged, and TCP_USER_TIMEOUT turns
    that into an error on the next write instead of a socket held for many minutes.
    Accepted connections inherit the option from the listening socket.
    """
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        milliseconds = int(max(3 * heartbeat, 2.0) * 1000)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, milliseconds)


async def serve(settings: Settings, verifier: Verifier, group_dir: Path | None = None) -> None:
    """One worker: Hypercorn serving the app until told to stop.

    A worker of `--workers N` is given its group's runtime directory, where it serves its own
    metrics to its siblings, so that a scrape of any worker reports them all.
    """
    telemetry.configure()
    group = metrics_group.Group(group_dir) if group_dir is not None else None
    if group is not None:
        await group.start()
        metrics_group.join(group)
    # At Python's default (a young collection every 700 allocations) the objects of requests
    # still in flight age into the oldest generation, and the full collections that follow
    # walk every open stream's objects, stalling all streams for 50-400 ms (docs/benchmarks.md).
    gc.set_threshold(50_000, 20, 10)
    if not receive_queue.install():
        log.info("Hypercorn's own receive queue is kept (a version tocsin was not built on)")
    if not response_head.install():
        log.info("Hypercorn writes response heads on their own (a version tocsin was not built on)")
    if not teardown.install():
        log.info("Hypercorn's ended connections wait for the cyclic collector (another version)")
    if not idle.install():
        log.info("Hypercorn waits for each next request in a task (another version)")
    # A publish is answered in its connection's own task: no task of its own per request.
    if not http1.install(in_place=frozenset({(b"POST", PUBLISH_PATH.encode())})):
        log.info("Hypercorn reads HTTP/1.1 through h11 alone (a version tocsin was not built on)")
    runtime = Runtime(settings, telemetry.OtelTelemetry())
    app = create_app(settings, runtime, verifier)
    config = Config()
    config.bind = [f"{settings.host}:{settings.port}"]
    # With several workers each binds its own SO_REUSEPORT socket (Hypercorn's
    # `create_sockets` does so when `workers` > 1): the kernel spreads connections evenly.
    config.workers = settings.workers
    config.graceful_timeout = settings.graceful_timeout
    # Hypercorn's default backlog of 100 resets connections when thousands of browsers
    # reconnect at once (after a restart); the kernel caps it at net.core.somaxconn.
    config.backlog = 4096
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async def shutdown_trigger() -> None:
        await stop.wait()
        log.info("shutting down", extra={"fields": {"open_streams": runtime.hub.open_streams}})
        # Ending the streams first lets Hypercorn's graceful wait finish (hypercorn#308).
        runtime.hub.close_all(Closed.SHUTDOWN)

    try:
        sockets = config.create_sockets()
    except OSError as err:  # taken since `check_listen` looked
        raise Failure(
            Exit.ADDRESS_IN_USE, f"cannot listen on {settings.host}:{settings.port}: {err}"
        ) from None
    for sock in sockets.insecure_sockets:
        limit_unacknowledged(sock, settings.heartbeat)
    nats = [redact_url(url) for url in settings.nats_urls]
    log.info("listening", extra={"fields": {"bind": config.bind, "nats": nats}})
    try:
        await worker_serve(
            # Quart's `__call__` only forwards to `asgi_app` (where the stream endpoint sits):
            # handing Hypercorn `asgi_app` saves every open stream a coroutine frame.
            wrap_app(app.asgi_app, config.wsgi_max_body_size, "asgi"),
            config,
            sockets=sockets,
            shutdown_trigger=shutdown_trigger,
        )
    finally:
        if group is not None:
            metrics_group.join(None)
            await group.stop()
    telemetry.shutdown()


def _run_workers(settings: Settings, verifier: Verifier) -> int:
    try:
        group_dir = metrics_group.prepare(settings.data_dir, os.getpid())
    except OSError as err:
        raise Failure(
            Exit.ADDRESS_IN_USE,
            f"cannot make the workers' metrics sockets under {settings.data_dir}: "
            f"{err.strerror or err}; --data-dir must be writable",
        ) from None
    try:
        return _fork_workers(settings, verifier, group_dir)
    finally:
        metrics_group.remove(group_dir)


def _fork_workers(settings: Settings, verifier: Verifier, group_dir: Path) -> int:
    children: set[int] = set()
    for _ in range(settings.workers):
        pid = os.fork()
        if pid == 0:
            # A worker never returns into the parent's code (which would stop the embedded
            # NATS it shares): whatever happens, it ends here.
            status = 0
            try:
                die_with_parent()
                for signum in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(signum, signal.SIG_DFL)
                uvloop.run(serve(settings, verifier, group_dir))
            except Failure as failure:
                print(f"tocsin serve: {failure.message}", file=sys.stderr, flush=True)
                status = failure.status
            except BaseException:
                traceback.print_exc()
                status = Exit.BUG
            finally:
                os._exit(status)
        children.add(pid)
    log.info("workers started", extra={"fields": {"pids": sorted(children)}})

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    # Wait for the workers by pid: a blanket wait would also reap the embedded nats-server.
    for pid in sorted(children):
        _, code = os.waitpid(pid, 0)
        status = status or os.waitstatus_to_exitcode(code)
    return status
