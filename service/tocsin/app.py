"""The HTTP interface: Quart routes over the runtime's store and feed, behind the ASGI endpoints.

Every request, whoever serves it, is admitted by one path (`admission`): the stream and
`POST /notifications` are served straight from ASGI and call it themselves; Quart's routes
get it from `install_admission`.
"""

from __future__ import annotations

from quart import Quart, Response, request

from . import telemetry
from .admission import BODY_TIMEOUT_SECONDS, MAX_BODY_BYTES, connected
from .auth import Verifier
from .browser import browser_blueprint
from .cors import install_cors
from .credentials import authenticate
from .feed_routes import DEFAULT_LIMIT, MAX_LIMIT, add_feed_routes
from .front_door import FrontDoor
from .model import PUBLISH_PATH, RETRACT_PATH, Retracted, decode_retract_request
from .publish_endpoint import PublishEndpoint
from .quart_admission import install_admission, request_body
from .responses import RETRY_AFTER_SECONDS, error_response, json_response
from .retraction import Retractions
from .runtime import Runtime
from .settings import Settings
from .stream_endpoint import STREAM_PATH, StreamEndpoint

__all__ = [
    "BODY_TIMEOUT_SECONDS",
    "DEFAULT_LIMIT",
    "MAX_BODY_BYTES",
    "MAX_LIMIT",
    "create_app",
]


def create_app(settings: Settings, runtime: Runtime, verifier: Verifier) -> Quart:
    """The Quart application of one tocsin process, with the ASGI endpoints in front of it."""
    app = Quart("tocsin")
    telemetry.watch(runtime)
    app.register_blueprint(browser_blueprint(settings, runtime, verifier))
    cors = install_cors(app, settings.cors_origins)
    install_admission(app, cors)
    add_feed_routes(app, runtime, verifier)

    @app.before_serving
    async def start() -> None:
        await runtime.start()

    @app.after_serving
    async def stop() -> None:
        await runtime.stop()

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

    @app.post(RETRACT_PATH)
    async def retract() -> Response:
        (await authenticate(verifier, request.scope, allow_query=False)).require_publisher()
        body = decode_retract_request(await request_body())
        parts = connected(runtime)
        retractions = Retractions(parts.store, parts.history, parts.publisher)
        return json_response(200, Retracted(retracted=await retractions.retract(body)))

    # The stream and the publish are served by their endpoints before Quart sees them; the
    # rules stay so that other methods on their paths get Quart's 405 (with `Allow`) and
    # OPTIONS answers, and so that the routes are listed with the others.
    app.add_url_rule(STREAM_PATH, "stream", methods=["GET"])
    app.add_url_rule(PUBLISH_PATH, "publish", methods=["POST"])
    stream = StreamEndpoint(
        app.asgi_app, settings=settings, runtime=runtime, verifier=verifier, cors=cors
    )
    publish = PublishEndpoint(settings, runtime, verifier, cors)
    door = FrontDoor(stream, {("POST", PUBLISH_PATH): publish})
    app.asgi_app = door  # type: ignore[method-assign]  # Quart's way to add ASGI middleware
    return app
