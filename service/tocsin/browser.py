"""The browser side: the tocsin.js client, the demo page, and the development sign-in."""

from __future__ import annotations

from pathlib import Path

import msgspec
from quart import Blueprint, Response, request, send_from_directory

from .admission import connected
from .auth import TOKEN_COOKIE, Unauthorized, Verifier, subscriber_claims
from .credentials import authenticate
from .model import (
    ActorId,
    ExpiresAt,
    InvalidInput,
    Key,
    Kind,
    Meta,
    NotificationBody,
    SubjectId,
    Text,
    UserId,
    decode_json,
)
from .quart_admission import request_body
from .responses import error_response, json_response
from .runtime import Runtime
from .scope import cookie
from .settings import Settings

CLIENT_DIR = Path(__file__).parent / "client"
CLIENT_FILES = {
    "tocsin.js": "text/javascript",
    # Its types, for TypeScript applications (generated from tocsin.js's JSDoc).
    "tocsin.d.ts": "application/typescript",
    "tocsin.css": "text/css",
}
DEV_TOKEN_TTL = 8 * 3600


class DevLogin(msgspec.Struct, forbid_unknown_fields=True):
    """The body of `POST /dev/login`."""

    user: UserId


class DevNotify(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The body of `POST /dev/notify`: a notification for the signed-in user."""

    text: Text
    kind: Kind = "demo.message"
    subject_id: SubjectId = "demo"
    actor_id: ActorId | None = None
    meta: Meta = msgspec.field(default_factory=dict)
    key: Key | None = None
    expires_at: ExpiresAt | None = None


_login_decoder = msgspec.json.Decoder(DevLogin)
_notify_decoder = msgspec.json.Decoder(DevNotify)


async def _static(name: str, mimetype: str) -> Response:
    return await send_from_directory(CLIENT_DIR, name, mimetype=mimetype)


def browser_blueprint(settings: Settings, runtime: Runtime, verifier: Verifier) -> Blueprint:
    """Routes for browsers: `/client/*`, the demo page at `/`, and `/dev/*` when switched on."""
    browser = Blueprint("browser", __name__)

    @browser.after_request
    async def revalidate(response: Response) -> Response:
        # The client and page change with tocsin; browsers must check their copy each time.
        if request.path == "/" or request.path.startswith("/client/"):
            response.headers["Cache-Control"] = "no-cache"
        return response

    @browser.get("/")
    async def demo_page() -> Response:
        return await _static("index.html", "text/html")

    @browser.get("/client/<name>")
    async def client_file(name: str) -> Response:
        mimetype = CLIENT_FILES.get(name)
        if mimetype is None:
            return error_response(404, f"no client file {name!r}")
        return await _static(name, mimetype)

    if not settings.dev_login:
        return browser

    @browser.get("/dev/session")
    async def dev_session() -> Response:
        user: str | None = None
        if cookie(request.scope, TOKEN_COOKIE):
            try:
                user = (await authenticate(verifier, request.scope, allow_query=False)).subscriber()
            except Unauthorized:
                user = None
        return json_response(200, {"user": user, "dev_login": True})

    @browser.post("/dev/login")
    async def dev_login() -> Response:
        login = decode_json(_login_decoder, await request_body())
        try:
            claims = subscriber_claims(login.user, DEV_TOKEN_TTL)
        except ValueError as err:
            raise InvalidInput(str(err), "$.user") from None
        try:
            token = verifier.mint(claims)
        except ValueError as err:
            return error_response(409, f"dev login needs a shared secret: {err}")
        response = json_response(200, {"user": login.user, "expires_at": claims["exp"]})
        response.set_cookie(
            TOKEN_COOKIE, token, max_age=DEV_TOKEN_TTL, path="/", httponly=True, samesite="Lax"
        )
        return response

    @browser.post("/dev/logout")
    async def dev_logout() -> Response:
        response = json_response(200, {"user": None})
        response.delete_cookie(TOKEN_COOKIE, path="/", httponly=True, samesite="Lax")
        return response

    @browser.post("/dev/notify")
    async def dev_notify() -> Response:
        user = (await authenticate(verifier, request.scope, allow_query=False)).subscriber()
        notify = decode_json(_notify_decoder, await request_body())
        parts = connected(runtime)
        notification = NotificationBody(
            kind=notify.kind,
            subject_id=notify.subject_id,
            text=notify.text,
            actor_id=notify.actor_id,
            meta=notify.meta,
            key=notify.key,
            expires_at=notify.expires_at,
        )
        # Checked as a publish body is (UTC, in the future, meta's size): 422 naming the field.
        ids = await parts.publisher.publish([user], notification)
        return json_response(202, {"ids": ids})

    return browser
