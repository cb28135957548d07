"""`POST /notifications` served straight from ASGI, before the Quart app.

Most of a one-recipient publish went to Quart's per-request machinery: the request and
response objects, the app and request contexts, a receiver task, a handler task and a
`wait_for` task per request (docs/benchmarks.md). Here a publish is Hypercorn's task
running this handler: the admission path's checks over the scope, the body read and
decoded once, and the JetStream publish awaited in place (concurrent requests still
share the connection, their publishes pipelined on it).

Every other method on the path goes on to Quart (its 405 with `Allow`, OPTIONS and
CORS preflights).
"""

from __future__ import annotations

import logging
import math
import time

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, HTTPScope
from werkzeug.exceptions import InternalServerError

from . import telemetry
from .admission import ClientGone, admit, connected, read_body
from .auth import Verifier
from .cors import Cors
from .credentials import authenticate
from .model import PublishAccepted, decode_publish_request
from .publisher import valid_idempotency_key
from .ratelimit import RateLimiter
from .responses import (
    ANSWERED,
    Answer,
    BadRequest,
    Refused,
    answer_for,
    json_answer,
    raw_headers,
    send_answer,
)
from .runtime import Runtime
from .scope import HeaderView, header
from .settings import Settings

log = logging.getLogger("tocsin.http")


class PublishEndpoint:
    """The ASGI handler of `POST /notifications` (mounted by `FrontDoor`)."""

    def __init__(
        self, settings: Settings, runtime: Runtime, verifier: Verifier, cors: Cors
    ) -> None:
        self._rate = settings.publish_rate
        self._limiter = RateLimiter(settings.publish_rate)
        self._runtime = runtime
        self._verifier = verifier
        self._cors = cors

    async def __call__(
        self, scope: HTTPScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        try:
            answer = await self._publish(scope, receive)
        except ClientGone:
            return
        except ANSWERED as error:
            answer = answer_for(error)
        except Exception:
            # A bug: answered and logged as Quart answers one, a JSON 500.
            log.exception("publish failed", extra={"fields": {"path": scope["path"]}})
            answer = answer_for(InternalServerError())
        cors = raw_headers(self._cors.headers(header(scope, b"origin")))
        await send_answer(send, answer, cors)

    async def _publish(self, scope: HTTPScope, receive: ASGIReceiveCallable) -> Answer:
        # In the order Quart's route checked, so that each request gets the answer it got.
        admit(scope, self._cors)
        principal = await authenticate(self._verifier, scope, allow_query=False)
        principal.require_publisher()
        key = header(scope, b"idempotency-key")
        if key is not None and not valid_idempotency_key(key):
            raise BadRequest(
                "Idempotency-Key must be 1-128 printable ASCII characters", "Idempotency-Key"
            )
        body = decode_publish_request(await read_body(scope, receive))
        wait = self._limiter.take(principal.user or "", len(body.recipients), time.monotonic())
        if wait > 0:
            raise Refused(
                429,
                f"publish rate limit of {self._rate:g} notifications/s exceeded",
                "recipients",
                (("Retry-After", str(math.ceil(wait))),),
            )
        ids = await connected(self._runtime).publisher.publish(
            body.recipients,
            body.body(),
            idempotency_key=key,
            headers=telemetry.trace_headers(HeaderView(scope)),
            validated=True,
        )
        return json_answer(202, PublishAccepted(ids=ids))
