"""The HTTP interface: Quart routes over the runtime's store, feed and hub."""

from __future__ import annotations

import math
import time

from quart import Quart, Response, request
from werkzeug.exceptions import HTTPException

from . import telemetry
from .auth import Forbidden, KeysUnavailable, Unauthorized, Verifier
from .browser import browser_blueprint
from .cors import install_cors
from .credentials import authenticate
from .model import (
    InvalidInput,
    PublishAccepted,
    decode_publish_request,
    decode_read_request,
)
from .publisher import PartialPublish, valid_idempotency_key
from .ratelimit import RateLimiter
from .responses import error_response, json_response
from .runtime import Parts, Runtime
from .settings import Settings
from .store import StoreUnavailable
from .stream_endpoint import STREAM_PATH, StreamEndpoint

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
    cors = install_cors(app, settings.cors_origins)

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

    def connected() -> Parts:
        if not runtime.ready or runtime.parts is None:
            raise StoreUnavailable("not connected to NATS")
        return runtime.parts

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response(200, {"status": "ok"})

    @app.get("/metrics")
    async def metrics() -> Response:
        # This process's metrics, or with --workers those of every worker (metrics_group).
        from .metrics_group import scrape

        return Response(await scrape(), content_type=telemetry.PROMETHEUS_CONTENT_TYPE)

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
        principal = await authenticate(verifier, request.scope, allow_query=False)
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
        user = (await authenticate(verifier, request.scope, allow_query=False)).subscriber()
        limit = _limit(request.args.get("limit"))
        before = request.args.get("before") or None
        feed = await connected().feeds.page(user, limit, before)
        return json_response(200, feed)

    @app.post("/notifications/read")
    async def mark_read() -> Response:
        user = (await authenticate(verifier, request.scope, allow_query=False)).subscriber()
        body = decode_read_request(
            await request.get_data(cache=False, as_text=False, parse_form_data=False)
        )
        state = await connected().feeds.mark_read(user, body.up_to)
        return json_response(200, state)

    # The stream itself is served by `StreamEndpoint` before Quart sees the request; the
    # rule stays so that other methods on the path get Quart's 405 (with `Allow`) and
    # OPTIONS answers, and so that the route is listed with the others.
    app.add_url_rule(STREAM_PATH, "stream", methods=["GET"])
    endpoint = StreamEndpoint(
        app.asgi_app, settings=settings, runtime=runtime, verifier=verifier, cors=cors
    )
    app.asgi_app = endpoint  # type: ignore[method-assign]  # Quart's way to add ASGI middleware
    return app


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    # isascii: str.isdigit also accepts digits such as "²" that int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}", "limit")
    return int(raw)
