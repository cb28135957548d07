"""The HTTP interface: Quart routes over the runtime's store, feed and hub."""

from __future__ import annotations

import logging
import math
import os
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

from quart import Quart, Response, request
from werkzeug.exceptions import HTTPException

from . import sse, telemetry
from .auth import (
    TOKEN_COOKIE,
    Forbidden,
    KeysUnavailable,
    Principal,
    Unauthorized,
    Verifier,
    check_query_lifetime,
)
from .browser import browser_blueprint
from .cors import install_cors
from .hub import Connection
from .model import (
    InvalidInput,
    PublishAccepted,
    decode_publish_request,
    decode_read_request,
)
from .publisher import PartialPublish, valid_idempotency_key
from .ratelimit import RateLimiter
from .replay import plan_resume
from .responses import error_response, json_response
from .runtime import Parts, Runtime
from .settings import Settings
from .store import StoreUnavailable
from .stream import StreamStats, run_stream

log = logging.getLogger("tocsin.http")

MAX_BODY_BYTES = 64 * 1024
BODY_TIMEOUT_SECONDS = 10
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
RETRY_AFTER_SECONDS = "1"


class BadRequest(Exception):
    """A query parameter or header the client got wrong: answer 400."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def create_app(settings: Settings, runtime: Runtime, verifier: Verifier) -> Quart:
    """The Quart application of one tocsin process."""
    app = Quart("tocsin")
    telemetry.watch(runtime)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    # A body trickled in byte by byte (slowloris) gets 408 instead of holding a task forever.
    app.config["BODY_TIMEOUT"] = BODY_TIMEOUT_SECONDS
    limiter = RateLimiter(settings.publish_rate)
    app.register_blueprint(browser_blueprint(settings, runtime, verifier))
    install_cors(app, settings.cors_origins)

    @app.before_serving
    async def start() -> None:
        await runtime.start()

    @app.after_serving
    async def stop() -> None:
        await runtime.stop()

    @app.errorhandler(HTTPException)
    async def http_error(err: HTTPException) -> Response:
        # Keep the headers the error carries, such as the `Allow` of a 405.
        headers = {k: v for k, v in err.get_headers() if k.lower() != "content-type"}
        return error_response(err.code or 500, err.description or err.name, headers=headers)

    @app.errorhandler(Unauthorized)
    async def unauthorized(err: Unauthorized) -> Response:
        return error_response(401, str(err), headers={"WWW-Authenticate": "Bearer"})

    @app.errorhandler(Forbidden)
    async def forbidden(err: Forbidden) -> Response:
        return error_response(403, str(err))

    @app.errorhandler(InvalidInput)
    async def invalid(err: InvalidInput) -> Response:
        return error_response(422, err.message, err.field)

    @app.errorhandler(BadRequest)
    async def bad_request(err: BadRequest) -> Response:
        return error_response(400, err.message, err.field)

    @app.errorhandler(PartialPublish)
    async def partial(err: PartialPublish) -> Response:
        return json_response(
            503, {"error": str(err), "ids": err.ids}, {"Retry-After": RETRY_AFTER_SECONDS}
        )

    @app.errorhandler(KeysUnavailable)
    async def keys_unavailable(err: KeysUnavailable) -> Response:
        return error_response(503, str(err), headers={"Retry-After": RETRY_AFTER_SECONDS})

    @app.errorhandler(StoreUnavailable)
    async def unavailable(err: StoreUnavailable) -> Response:
        return error_response(
            503,
            f"notification store unavailable: {err}",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )

    async def authenticate(*, allow_query: bool) -> Principal:
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("Authorization header must be 'Bearer <token>'")
            return await verifier.verify(token.strip())
        cookie = request.cookies.get(TOKEN_COOKIE)
        if cookie:
            return await verifier.verify(cookie)
        query = request.args.get("token")
        if query and allow_query:
            principal = await verifier.verify(query)
            check_query_lifetime(principal)
            return principal
        raise Unauthorized(
            "no token: send 'Authorization: Bearer <jwt>' or the tocsin_token cookie"
        )

    def connected() -> Parts:
        if not runtime.ready or runtime.parts is None:
            raise StoreUnavailable("not connected to NATS")
        return runtime.parts

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response(200, {"status": "ok"})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(telemetry.prometheus_text(), content_type=telemetry.PROMETHEUS_CONTENT_TYPE)

    @app.get("/readyz")
    async def readyz() -> Response:
        if runtime.ready:
            return json_response(200, {"status": "ready"})
        return error_response(
            503,
            "not connected to NATS or stream not set up",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )

    @app.post("/notifications")
    async def publish_notifications() -> Response:
        principal = await authenticate(allow_query=False)
        principal.require_publisher()
        key = request.headers.get("Idempotency-Key")
        if key is not None and not valid_idempotency_key(key):
            raise BadRequest(
                "Idempotency-Key must be 1-128 printable ASCII characters", "Idempotency-Key"
            )
        body = decode_publish_request(
            await request.get_data(cache=False, as_text=False, parse_form_data=False)
        )
        wait = limiter.take(principal.user or "", len(body.recipients), time.monotonic())
        if wait > 0:
            return error_response(
                429,
                f"publish rate limit of {settings.publish_rate:g} notifications/s exceeded",
                "recipients",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        ids = await connected().publisher.publish(
            body.recipients,
            body.body(),
            idempotency_key=key,
            headers=telemetry.trace_headers(request.headers),
        )
        return json_response(202, PublishAccepted(ids=ids))

    @app.get("/notifications")
    async def list_notifications() -> Response:
        user = (await authenticate(allow_query=False)).subscriber()
        limit = _limit(request.args.get("limit"))
        before = request.args.get("before") or None
        feed = await connected().feeds.page(user, limit, before)
        return json_response(200, feed)

    @app.post("/notifications/read")
    async def mark_read() -> Response:
        user = (await authenticate(allow_query=False)).subscriber()
        body = decode_read_request(
            await request.get_data(cache=False, as_text=False, parse_form_data=False)
        )
        state = await connected().feeds.mark_read(user, body.up_to)
        return json_response(200, state)

    @app.get("/notifications/stream")
    async def stream() -> Response:
        # Never 5xx here: any status but 200 ends EventSource's reconnecting for good, so
        # an outage (of NATS, or of the identity provider's keys) answers "come back".
        come_back = _event_stream(_once(sse.hello(settings.retry_ms)))
        try:
            principal = await authenticate(allow_query=True)
        except KeysUnavailable:
            return come_back
        user = principal.subscriber()
        cursor = request.headers.get("Last-Event-ID")
        if cursor is None:
            cursor = request.args.get("last_event_id")
        if not runtime.ready or runtime.parts is None:
            return come_back
        parts = runtime.parts
        conn = Connection(user, secrets.token_hex(6), settings.client_buffer)
        runtime.hub.register(conn, settings.max_conns_per_user)
        plan = plan_resume(cursor, parts.store.epoch)
        stats = StreamStats()
        frames = run_stream(
            conn,
            plan,
            store=parts.store,
            hub=runtime.hub,
            settings=settings,
            expires_at=principal.expires_at,
            stats=stats,
        )
        return _event_stream(_logged(frames, conn, stats))

    def _event_stream(body: AsyncIterator[bytes]) -> Response:
        headers = {
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
        if request.http_version in ("1.0", "1.1"):
            headers["Connection"] = "keep-alive"
        response = Response(body, status=200, headers=headers, content_type=sse.CONTENT_TYPE)
        response.timeout = None
        return response

    return app


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    # isascii: str.isdigit also accepts digits such as "²" that int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}", "limit")
    return int(raw)


async def _once(frame: bytes) -> AsyncIterator[bytes]:
    yield frame


async def _logged(
    frames: AsyncGenerator[bytes, None], conn: Connection, stats: StreamStats
) -> AsyncIterator[bytes]:
    fields: dict[str, Any] = {"user": conn.user, "conn": conn.id, "process": os.getpid()}
    log.info("stream open", extra={"fields": fields})
    telemetry.stream_opened()
    started = time.monotonic()
    try:
        async with aclosing(frames):
            async for chunk in frames:
                yield chunk
    finally:
        log.info(
            "stream close",
            extra={
                "fields": {
                    **fields,
                    "duration_s": round(time.monotonic() - started, 3),
                    "events_sent": stats.sent,
                    "replayed": stats.replayed,
                    "reset": stats.reset,
                    "reason": stats.reason,
                }
            },
        )
        telemetry.stream_closed(stats.reason)
