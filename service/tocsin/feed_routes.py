"""The subscriber's HTTP routes of the feed (contract §6, §9 and §10's groups): the feed,
its groups, state changes and preferences, each on the one admission path."""

from __future__ import annotations

from quart import Quart, Response, request

from .admission import connected
from .auth import Verifier
from .credentials import authenticate
from .model import (
    InvalidInput,
    decode_preferences,
    decode_read_request,
    decode_state_change,
    feed_query,
)
from .quart_admission import request_body
from .responses import BadRequest, json_response
from .runtime import Runtime

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
FEED_PATH = "/notifications"
READ_PATH = "/notifications/read"
STATE_PATH = "/notifications/state"
GROUPS_PATH = "/notifications/groups"
PREFERENCES_PATH = "/preferences"


def add_feed_routes(app: Quart, runtime: Runtime, verifier: Verifier) -> None:
    """Serve the feed's routes from `app`."""

    async def subscriber() -> str:
        return (await authenticate(verifier, request.scope, allow_query=False)).subscriber()

    @app.get(FEED_PATH)
    async def list_notifications() -> Response:
        user = await subscriber()
        limit = page_limit(request.args.get("limit"))
        before = request.args.get("before") or None
        try:
            query = feed_query(dict(request.args))
        except InvalidInput as err:
            # A query parameter out of its range, as `limit` is: 400.
            raise BadRequest(err.message, err.field or "status") from None
        feed = await connected(runtime).feeds.page(user, limit, before, query)
        return json_response(200, feed)

    @app.post(READ_PATH)
    async def mark_read() -> Response:
        user = await subscriber()
        body = decode_read_request(await request_body())
        state = await connected(runtime).feeds.mark_read(user, body.up_to)
        return json_response(200, state)

    @app.post(STATE_PATH)
    async def change_state() -> Response:
        user = await subscriber()
        change = decode_state_change(await request_body())
        counts = await connected(runtime).feeds.change(user, change)
        return json_response(200, counts)

    @app.get(GROUPS_PATH)
    async def list_groups() -> Response:
        user = await subscriber()
        limit = page_limit(request.args.get("limit"))
        before = request.args.get("before") or None
        groups = await connected(runtime).feeds.groups(user, limit, before)
        return json_response(200, groups)

    @app.get(PREFERENCES_PATH)
    async def get_preferences() -> Response:
        user = await subscriber()
        return json_response(200, await connected(runtime).feeds.preferences(user))

    @app.put(PREFERENCES_PATH)
    async def put_preferences() -> Response:
        user = await subscriber()
        preferences = decode_preferences(await request_body())
        stored = await connected(runtime).feeds.set_preferences(user, preferences)
        return json_response(200, stored)


def page_limit(raw: str | None) -> int:
    """The `limit` of a page: DEFAULT_LIMIT when absent; 400 unless 1 to MAX_LIMIT."""
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    # isascii: str.isdigit also accepts digits such as "²" that int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}", "limit")
    return int(raw)
