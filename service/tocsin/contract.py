"""The language-neutral contract in `schemas/`, generated from the msgspec structs.

`python -m tocsin.contract schemas` writes JSON Schema for the notification and the
publish body, an AsyncAPI document for the NATS subjects and an OpenAPI document for
HTTP; with `--check` it writes nothing and exits 1 when a file differs.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import msgspec

from . import browser, entry, model, replay
from .admission import STATE_CHANGING
from .app import BODY_TIMEOUT_SECONDS, DEFAULT_LIMIT, MAX_BODY_BYTES, MAX_LIMIT
from .auth import PUBLISH_SCOPE, QUERY_TOKEN_MAX_LIFETIME, TOKEN_COOKIE
from .publisher import DEFAULT_STREAM, IDEMPOTENCY_KEY_MAX

Schema = dict[str, Any]

VERSION = version("tocsin")
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "urn:tocsin:schemas:"

META_NOTE = (
    f"Free-form JSON object, passed through untouched. Beyond this schema: at most "
    f"{model.META_MAX_BYTES} bytes when encoded as compact JSON (tocsin refuses larger ones)."
)
EXPIRES_AT_NOTE = (
    "RFC 3339 timestamp after which the notification is no longer listed, replayed or "
    "counted. Beyond this schema: it must be in UTC, and `POST /notifications` refuses "
    "one that has passed. Without a `key`, it is stored with a `Nats-TTL` (whole seconds "
    "to it, rounded up), so the store itself forgets it."
)
CREATED_AT_NOTE = (
    "RFC 3339 timestamp of when it happened; when absent, the time tocsin stored it. "
    "Beyond this schema: it must be in UTC (offset `Z` or `+00:00`); tocsin refuses other offsets."
)
BODY_NOTE = (
    " Rules this schema cannot express: `meta` is at most "
    f"{model.META_MAX_BYTES} bytes encoded, `created_at` and `expires_at` are in UTC, and "
    "`POST /notifications` refuses an `expires_at` that has passed."
)

PUBLISH_UNAVAILABLE: Schema = {
    "title": "PublishUnavailable",
    "description": (
        "The `503` answer of `POST /notifications`. When some recipients' notifications "
        "were stored and some were not, `ids` holds each recipient's id in recipient order, "
        "null where nothing was stored; retry with the same `Idempotency-Key`."
    ),
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "field": {"type": "string"},
        "ids": {
            "type": "array",
            "items": {"anyOf": [{"$ref": "#/components/schemas/NotificationId"}, {"type": "null"}]},
        },
    },
    "required": ["error"],
}
NOTIFICATION_ID: Schema = {"title": "NotificationId", **msgspec.json.schema(model.NotificationId)}
STATUS: Schema = {
    "title": "Status",
    "description": "The answer of the health endpoints.",
    "type": "object",
    "properties": {"status": {"type": "string", "enum": ["ok", "ready"]}},
    "required": ["status"],
}
RESET_EVENT: Schema = {
    "title": "ResetEvent",
    "description": "The data of an `event: reset` frame: refetch the feed, then carry on live.",
    "type": "object",
    "properties": {
        "reason": {
            "type": "string",
            "enum": sorted(replay.ResetReason),
        }
    },
    "required": ["reason"],
}
EVICTED_EVENT: Schema = {
    "title": "EvictedEvent",
    "description": "The data of an `event: evicted` frame: the stream closes; do not reconnect.",
    "type": "object",
    "properties": {"reason": {"type": "string", "enum": ["max_connections"]}},
    "required": ["reason"],
}

STREAM_FRAMES = f"""\
A `text/event-stream` that stays open. Frames, each ended by a blank line:

- `: hello` and `retry: <ms>`, first and at once;
- `id: <id>` / `event: notification` / `data: <Notification as one-line JSON>` for each
  notification, in sequence order, exactly once per stream: first everything newer than
  `Last-Event-ID` (at most `--replay-max`), then live;
- `id: <the retraction's id>` / `event: retracted` / `data: <RetractedEvent>` for each
  stored retraction of notifications the stream may have sent, in sequence order with the
  notifications; and an id-less `event: retracted` right before a notification whose `key`
  replaced earlier ones (in the same write, so a client never shows both or neither);
- `event: reset` / `data: <ResetEvent>` when the cursor cannot be resumed (malformed, from
  another incarnation of the stream, older than what is stored, or too far behind): refetch
  the feed, the stream then goes live;
- `event: state` / `data: <StateEvent>` with no `id:` line (it never moves
  `Last-Event-ID`): right after the hello with the user's counts, then whenever the
  user's state or preferences change on any device or process (contract §9);
- `event: evicted` / `data: <EvictedEvent>` when the user opened more streams than
  `--max-conns-per-user` (the oldest goes); the stream then closes and must not be reopened;
- `: ping` every `--heartbeat`;
- a lone `retry: <ms>` before tocsin closes the stream to be reconnected (shutdown, NATS
  unavailable). While tocsin is not connected to NATS the answer is still `200`: the hello
  frame, then the stream closes, so the browser comes back by itself.

The stream closes when its token expires. Query tokens (`token=`) are accepted only with a
lifetime (`exp - iat`) of at most {QUERY_TOKEN_MAX_LIFETIME} s."""


def _components(types: Sequence[type], ref_template: str) -> dict[str, Schema]:
    _, components = msgspec.json.schema_components(types, ref_template=ref_template)
    for struct in components.values():
        if "description" in struct:
            struct["description"] = inspect.cleandoc(struct["description"])
    for name in ("NotificationBody", "PublishRequest"):
        if name in components:
            _document_checks(components[name])
    if "RetractRequest" in components:
        _retract_rules(components["RetractRequest"])
    _one_selector(components)
    return components


def _document_checks(struct: Schema) -> None:
    """Write the checks tocsin makes after decoding into the descriptions."""
    struct["description"] += BODY_NOTE
    props = struct["properties"]
    props["meta"]["description"] = META_NOTE
    for name, note in (("created_at", CREATED_AT_NOTE), ("expires_at", EXPIRES_AT_NOTE)):
        props[name]["description"] = note
        for branch in props[name]["anyOf"]:
            branch.pop("description", None)


# -- Retractions (contract §10) ---------------------------------------------------------

RETRACT_BY_KEY: Schema = {"required": ["recipients", "keys"], "not": {"required": ["ids"]}}
RETRACT_BY_ID: Schema = {
    "required": ["ids"],
    "not": {"anyOf": [{"required": ["recipients"]}, {"required": ["keys"]}]},
}
TARGET = model.KEY_PATTERN.removeprefix("^").removesuffix("$(?!\\n)")
RETRACT_HEADER_PATTERN = f"^{TARGET}(,{TARGET})*$"


def _retract_rules(struct: Schema) -> None:
    """A retraction names keys (with recipients) or ids (alone): written into the schema."""
    struct["oneOf"] = [RETRACT_BY_KEY, RETRACT_BY_ID]


def _retraction_headers() -> Schema:
    return {
        "type": "object",
        "properties": {
            entry.RETRACT_HEADER: {
                "type": "string",
                "description": (
                    f"What to retract: 1 to {model.MAX_RETRACT_TARGETS} keys or notification "
                    "ids of this user, comma-separated (spaces around the commas are "
                    "ignored). A key retracts the user's live notification with that key; "
                    "an id, that notification if it is this user's and live. The body "
                    f"must be empty, and the message must not carry `{entry.TTL_HEADER}`: "
                    "the store would forget the retraction before what it retracts."
                ),
                "pattern": RETRACT_HEADER_PATTERN,
            },
            "Nats-Msg-Id": {
                "type": "string",
                "description": "Idempotent publish, as for a notification.",
            },
        },
        "required": [entry.RETRACT_HEADER],
    }


def json_schema(struct: type, name: str) -> Schema:
    """A standalone JSON Schema (draft 2020-12) for one struct; nested types under `$defs`."""
    components = _components([struct], "#/$defs/{name}")
    root = components.pop(struct.__name__)
    root.update(
        {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": f"{ID_BASE}{name}",
            "title": root.get("title", struct.__name__),
        }
    )
    if components:
        root["$defs"] = components
    return root


def json_schemas() -> dict[str, Schema]:
    """The JSON Schema files, by file name."""
    return {
        "notification.schema.json": json_schema(model.Notification, "notification"),
        "notification-body.schema.json": json_schema(model.NotificationBody, "notification-body"),
        "publish-request.schema.json": json_schema(model.PublishRequest, "publish-request"),
        "retract-request.schema.json": json_schema(model.RetractRequest, "retract-request"),
        "state-change.schema.json": json_schema(model.StateChange, "state-change"),
        "state-event.schema.json": json_schema(model.StateEvent, "state-event"),
        "preferences.schema.json": json_schema(model.Preferences, "preferences"),
    }


def asyncapi() -> Schema:
    """The AsyncAPI 3.0 document of the native NATS producer interface."""
    components = _components([model.NotificationBody], "#/components/schemas/{name}")
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "tocsin NATS producer interface",
            "version": VERSION,
            "description": (
                "How a service publishes a notification natively: the body, as JSON, "
                f"through JetStream to the user's subject, stored in the stream "
                f"`{DEFAULT_STREAM}`; and how it retracts notifications there (an empty "
                f"body with a `{entry.RETRACT_HEADER}` header). This document describes "
                "such a producer."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "nats": {
                "host": "127.0.0.1:4222",
                "protocol": "nats",
                "description": "The NATS (cluster) tocsin uses, with JetStream enabled.",
            }
        },
        "channels": {
            "userNotifications": {
                "address": model.SUBJECT_PREFIX + "{user_id}",
                "title": "A user's notifications",
                "description": (
                    f"Captured by the JetStream stream `{DEFAULT_STREAM}` (`tocsin serve "
                    "--stream`). A body that fails validation, and a retraction that does, "
                    "is never delivered to browsers: tocsin counts it, logs it and skips it. "
                    "Every message takes its place in the user's sequence: a notification "
                    "with a `key` retracts the user's earlier live one with that key, a "
                    "retraction what is live with its keys or ids, each as of where it was "
                    "stored."
                ),
                "parameters": {
                    "user_id": {
                        "description": (
                            "The recipient: 1-128 chars of [A-Za-z0-9_-], one subject token; "
                            f"pattern `{model.USER_ID_PATTERN}`."
                        ),
                        "examples": ["usr_8"],
                        "x-pattern": model.USER_ID_PATTERN,
                    }
                },
                "messages": {
                    "notification": {"$ref": "#/components/messages/Notification"},
                    "retraction": {"$ref": "#/components/messages/Retraction"},
                },
            },
            "publishAck": {
                "address": None,
                "title": "JetStream publish acknowledgement",
                "description": "The reply to a JetStream publish, on the publisher's inbox.",
                "messages": {"ack": {"$ref": "#/components/messages/PubAck"}},
            },
        },
        "operations": {
            "publishNotification": {
                "action": "send",
                "title": "Publish a notification",
                "description": (
                    "Publish through JetStream (not core NATS) and wait for the ack: its "
                    "`seq` is the notification, whose id tocsin derives from it and the "
                    "stream's epoch. Retry with the same `Nats-Msg-Id` within the stream's "
                    "duplicate window and the notification is stored once."
                ),
                "channel": {"$ref": "#/channels/userNotifications"},
                "messages": [{"$ref": "#/channels/userNotifications/messages/notification"}],
                "reply": {
                    "channel": {"$ref": "#/channels/publishAck"},
                    "messages": [{"$ref": "#/channels/publishAck/messages/ack"}],
                },
            },
            "publishRetraction": {
                "action": "send",
                "title": "Retract notifications",
                "description": (
                    "Publish through JetStream an empty body with the "
                    f"`{entry.RETRACT_HEADER}` header naming keys or ids, and wait for the "
                    "ack. The retraction is stored like a notification: open and resuming "
                    "streams of the user get `event: retracted` with the retraction's own "
                    "id, and the feed and counts never show what it retracted again."
                ),
                "channel": {"$ref": "#/channels/userNotifications"},
                "messages": [{"$ref": "#/channels/userNotifications/messages/retraction"}],
                "reply": {
                    "channel": {"$ref": "#/channels/publishAck"},
                    "messages": [{"$ref": "#/channels/publishAck/messages/ack"}],
                },
            },
        },
        "components": {
            "schemas": {
                **components,
                "NotificationHeaders": {
                    "type": "object",
                    "properties": {
                        "Nats-Msg-Id": {
                            "type": "string",
                            "description": (
                                "Idempotent publish: JetStream stores one message per id "
                                "within the stream's duplicate window."
                            ),
                        },
                        "traceparent": {
                            "type": "string",
                            "description": (
                                "W3C trace context; tocsin continues this trace in the "
                                "span of each delivery."
                            ),
                            "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                        },
                        "tracestate": {
                            "type": "string",
                            "description": "W3C trace context vendor state, passed along.",
                        },
                        entry.TTL_HEADER: {
                            "type": "string",
                            "description": (
                                "The store forgets the notification after this long (such "
                                "as `3600` or `1h`; the stream allows per-message TTLs). "
                                "For a notification with an `expires_at` and no `key`: "
                                "whole seconds to it, rounded up. Never on a notification "
                                "with a `key`: it would be forgotten before the one it "
                                "replaced, which would show again (tocsin skips it)."
                            ),
                        },
                    },
                },
                "RetractionHeaders": _retraction_headers(),
                "EmptyBody": {
                    "type": "string",
                    "maxLength": 0,
                    "description": "A retraction has no body.",
                },
                "PubAck": {
                    "type": "object",
                    "properties": {
                        "stream": {"type": "string", "const": DEFAULT_STREAM},
                        "seq": {
                            "type": "integer",
                            "minimum": 1,
                            "description": "The stream sequence: this is the notification.",
                        },
                        "duplicate": {
                            "type": "boolean",
                            "description": "True when `Nats-Msg-Id` matched a stored message.",
                        },
                        "domain": {"type": "string"},
                    },
                    "required": ["stream", "seq"],
                },
            },
            "messages": {
                "Notification": {
                    "name": "NotificationBody",
                    "title": "Notification body",
                    "contentType": "application/json",
                    "headers": {"$ref": "#/components/schemas/NotificationHeaders"},
                    "payload": {"$ref": "#/components/schemas/NotificationBody"},
                },
                "Retraction": {
                    "name": "Retraction",
                    "title": "Retraction",
                    "headers": {"$ref": "#/components/schemas/RetractionHeaders"},
                    "payload": {"$ref": "#/components/schemas/EmptyBody"},
                },
                "PubAck": {
                    "name": "PubAck",
                    "contentType": "application/json",
                    "payload": {"$ref": "#/components/schemas/PubAck"},
                },
            },
        },
    }


def _json_content(name: str) -> Schema:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _response(description: str, name: str, headers: Schema | None = None) -> Schema:
    response: Schema = {"description": description, "content": _json_content(name)}
    if headers:
        response["headers"] = headers
    return response


def _text(description: str, media_type: str) -> Schema:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}
UNAUTHORIZED = _response(
    "No token, or an invalid or expired one.",
    "ErrorBody",
    {"WWW-Authenticate": {"schema": {"type": "string"}}},
)
UNAVAILABLE = _response("Not connected to NATS; retry later.", "ErrorBody", RETRY_AFTER)
SLOW_BODY = _response(f"The body did not arrive within {BODY_TIMEOUT_SECONDS} s.", "ErrorBody")
TOO_LARGE = _response(f"The body is larger than {MAX_BODY_BYTES} bytes.", "ErrorBody")
INVALID = _response("The body breaks the contract; `field` is the JSON path at fault.", "ErrorBody")
EMPTY: Schema = {"type": "string", "maxLength": 0}
USER_TOKEN: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"cookieAuth": []}]


BAD_BEFORE = _response(
    "`before` is not an id of this stream (malformed, or from an earlier incarnation: "
    "refetch from the top).",
    "ErrorBody",
)
PAGE_PARAMETERS: list[Schema] = [
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": f"Items per page; empty means {DEFAULT_LIMIT}.",
        "schema": {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                EMPTY,
            ],
            "default": DEFAULT_LIMIT,
        },
    },
    {
        "name": "before",
        "in": "query",
        "required": False,
        "description": (
            "Only items strictly older than this id (`next_before`); empty means from the newest."
        ),
        "schema": {"anyOf": [{"$ref": "#/components/schemas/NotificationId"}, EMPTY]},
    },
]


def _query(name: str, description: str, kind: object) -> Schema:
    """A query parameter whose values are those of `kind` (empty means absent)."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"anyOf": [msgspec.json.schema(kind), EMPTY]},
    }


FEED_FILTERS: list[Schema] = [
    _query(
        "status",
        "`all`: everything, archived and muted too; `unread`, `unseen`, `read`: those not "
        "archived nor muted that are so; `archived`: the archived ones not muted. Absent: "
        "everything not archived nor muted.",
        model.FeedStatus,
    ),
    _query("kind", "Only notifications of this kind.", model.Kind),
    _query("subject_id", "Only notifications about this subject (exact match).", model.SubjectId),
]


def _bell_paths() -> Schema:
    """The routes of notification state, the grouped feed and preferences (contract §9)."""
    return {
        "/notifications/state": {
            "post": {
                "operationId": "changeState",
                "summary": "Mark notifications read, unread, seen, archived or unarchived",
                "description": (
                    "One action on the notifications one selector names: `ids` (the user's "
                    "own), `up_to` (every one at or below that id), `kind`, `subject_id`, or "
                    "`all`. Markers never move back; every open stream of the user, on every "
                    "process, gets an `event: state` frame with the new counts and the change."
                ),
                "security": USER_TOKEN,
                "requestBody": {"required": True, "content": _json_content("StateChange")},
                "responses": {
                    "200": _response("The user's counts after the change.", "Counts"),
                    "401": UNAUTHORIZED,
                    "408": SLOW_BODY,
                    "413": TOO_LARGE,
                    "422": _response(
                        "An unknown action, no selector or two, more than "
                        f"{model.MAX_STATE_IDS} ids, or an id that is not one of the user's "
                        "(malformed, of an earlier incarnation of the stream, another user's, "
                        "or no longer stored); `field` is the JSON path at fault.",
                        "ErrorBody",
                    ),
                    "503": UNAVAILABLE,
                },
            }
        },
        "/notifications/groups": {
            "get": {
                "operationId": "listGroups",
                "summary": "The feed collapsed by (kind, subject_id), newest group first",
                "description": (
                    "Over the default feed (not archived, not muted); a group's place is that "
                    "of its latest notification, and `before` pages by that id."
                ),
                "security": USER_TOKEN,
                "parameters": PAGE_PARAMETERS,
                "responses": {
                    "200": _response("The page of groups.", "Groups"),
                    "400": _response("`limit` is not a whole number in range.", "ErrorBody"),
                    "401": UNAUTHORIZED,
                    "422": BAD_BEFORE,
                    "503": UNAVAILABLE,
                },
            }
        },
        "/preferences": {
            "get": {
                "operationId": "getPreferences",
                "summary": "The user's muted kinds",
                "security": USER_TOKEN,
                "responses": {
                    "200": _response("The preferences.", "Preferences"),
                    "401": UNAUTHORIZED,
                    "503": UNAVAILABLE,
                },
            },
            "put": {
                "operationId": "putPreferences",
                "summary": "Replace the user's muted kinds",
                "description": (
                    f"At most {model.MAX_MUTED_KINDS} entries, each a kind or a prefix ending "
                    "in `.*`. Muted notifications are stored but neither delivered, replayed, "
                    "listed (but with `status=all`) nor counted; open streams apply the change "
                    "at once and get an `event: state` frame."
                ),
                "security": USER_TOKEN,
                "requestBody": {"required": True, "content": _json_content("Preferences")},
                "responses": {
                    "200": _response("The preferences as stored.", "Preferences"),
                    "401": UNAUTHORIZED,
                    "408": SLOW_BODY,
                    "413": TOO_LARGE,
                    "422": INVALID,
                    "503": UNAVAILABLE,
                },
            },
        },
    }


BELL_STRUCTS: list[type] = [
    model.StateChange,
    model.Counts,
    model.StateEvent,
    model.Preferences,
    model.Groups,
]


def _one_selector(components: dict[str, Schema]) -> None:
    """StateChange takes exactly one selector: said in the schema, from model.SELECTORS."""
    struct = components.get("StateChange")
    if struct is not None:
        struct["oneOf"] = [{"required": [name]} for name in model.SELECTORS]


def _paths() -> Schema:
    return {
        "/notifications": {
            "post": {
                "operationId": "publishNotifications",
                "summary": "Publish one notification to 1-1000 recipients",
                "description": (
                    f'Needs a publisher token (`"scope": "{PUBLISH_SCOPE}"`). Answers once '
                    "JetStream has stored every recipient's notification."
                ),
                "security": USER_TOKEN,
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": (
                            "A retry with the same key within the stream's duplicate window "
                            "stores nothing twice and answers the same ids."
                        ),
                        "schema": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": IDEMPOTENCY_KEY_MAX,
                            "pattern": "^[!-~]+$",
                        },
                    }
                ],
                "requestBody": {"required": True, "content": _json_content("PublishRequest")},
                "responses": {
                    "202": _response("Stored; the ids in recipient order.", "PublishAccepted"),
                    "400": _response("A malformed `Idempotency-Key`.", "ErrorBody"),
                    "401": UNAUTHORIZED,
                    "403": _response("The token lacks the publish scope.", "ErrorBody"),
                    "408": SLOW_BODY,
                    "413": TOO_LARGE,
                    "422": INVALID,
                    "429": _response(
                        "The publisher sent more notifications per second than `--publish-rate` "
                        "allows (each recipient counts); nothing was stored.",
                        "ErrorBody",
                        RETRY_AFTER,
                    ),
                    "503": _response(
                        "NATS is unavailable; nothing, or only the recipients with an id in "
                        "`ids`, were stored.",
                        "PublishUnavailable",
                        RETRY_AFTER,
                    ),
                },
            },
            "get": {
                "operationId": "listNotifications",
                "summary": "A page of the user's feed, newest first, with each item's state",
                "security": USER_TOKEN,
                "parameters": [*PAGE_PARAMETERS, *FEED_FILTERS],
                "responses": {
                    "200": _response("The page.", "Feed"),
                    "400": _response(
                        "`limit` is not a whole number in range, or a filter is not one of "
                        "its values; `field` names the parameter.",
                        "ErrorBody",
                    ),
                    "401": UNAUTHORIZED,
                    "422": BAD_BEFORE,
                    "503": UNAVAILABLE,
                },
            },
        },
        model.RETRACT_PATH: {
            "post": {
                "operationId": "retractNotifications",
                "summary": "Retract notifications by key (for recipients) or by id",
                "description": (
                    f'Needs a publisher token (`"scope": "{PUBLISH_SCOPE}"`). Stores one '
                    "retraction per user (natively: an empty body with `Tocsin-Retract` on "
                    "the user's subject), so it is durable and ordered: open and resuming "
                    "streams get `event: retracted`, and the feed and counts never show a "
                    "retracted notification again. Answers what was found live and "
                    "retracted; what was not found is simply not listed. An id is only ever "
                    "retracted on its own recipient's subject."
                ),
                "security": USER_TOKEN,
                "requestBody": {"required": True, "content": _json_content("RetractRequest")},
                "responses": {
                    "200": _response("Stored; the ids it retracted.", "Retracted"),
                    "401": UNAUTHORIZED,
                    "403": _response("The token lacks the publish scope.", "ErrorBody"),
                    "408": SLOW_BODY,
                    "413": TOO_LARGE,
                    "422": _response(
                        "The body breaks the contract (both `keys` and `ids`, neither, a "
                        "key that is not one, more than 1,000, an id this stream did not "
                        "give out); `field` is the JSON path at fault.",
                        "ErrorBody",
                    ),
                    "503": _response(
                        "NATS is unavailable; retracting again is safe.", "ErrorBody", RETRY_AFTER
                    ),
                },
            }
        },
        "/notifications/read": {
            "post": {
                "operationId": "markRead",
                "summary": "Mark everything up to and including an id read",
                "description": (
                    'The same as `POST /notifications/state` with `{"action": "read", '
                    '"up_to": id}`; `up_to` must be one of the user\'s ids. Read markers '
                    "never move back."
                ),
                "security": USER_TOKEN,
                "requestBody": {"required": True, "content": _json_content("ReadRequest")},
                "responses": {
                    "200": _response("The read marker and what is still unread.", "ReadState"),
                    "401": UNAUTHORIZED,
                    "408": SLOW_BODY,
                    "413": TOO_LARGE,
                    "422": INVALID,
                    "503": UNAVAILABLE,
                },
            }
        },
        "/notifications/stream": {
            "get": {
                "operationId": "streamNotifications",
                "summary": "The user's live notifications as server-sent events",
                "description": STREAM_FRAMES,
                "security": [*USER_TOKEN, {"queryToken": []}],
                "parameters": [
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "description": "Resume after this id (the browser sends it itself).",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "last_event_id",
                        "in": "query",
                        "required": False,
                        "description": "Resume after this id when the header is absent.",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The event stream.",
                        "headers": {
                            "Cache-Control": {"schema": {"type": "string", "const": "no-cache"}},
                            "X-Accel-Buffering": {"schema": {"type": "string", "const": "no"}},
                        },
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "401": UNAUTHORIZED,
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "The process is alive",
                "security": [],
                "responses": {"200": _response("Alive.", "Status")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Connected to NATS with the stream set up",
                "security": [],
                "responses": {
                    "200": _response("Ready.", "Status"),
                    "503": _response("Not ready yet.", "ErrorBody", RETRY_AFTER),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics",
                "security": [],
                "responses": {"200": _text("Prometheus text exposition format.", "text/plain")},
            }
        },
        "/client/{name}": {
            "get": {
                "operationId": "browserClient",
                "summary": "The browser client",
                "description": (
                    "`tocsin.js` is an ES module exporting `subscribe({onNotification, onReset, "
                    "onUnread})`, `fetchFeed()` and `markRead(id)`; `tocsin.css` styles the "
                    "bell of the demo page."
                ),
                "security": [],
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": sorted(browser.CLIENT_FILES)},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The file.",
                        "content": {
                            media_type: {"schema": {"type": "string"}}
                            for media_type in sorted(set(browser.CLIENT_FILES.values()))
                        },
                    },
                    "404": _response("No such client file.", "ErrorBody"),
                },
            }
        },
        "/": {
            "get": {
                "operationId": "demoPage",
                "summary": "A demo page: a bell with an unread badge and the feed",
                "security": [],
                "responses": {"200": _text("The page.", "text/html")},
            }
        },
    }


DEV_ONLY = (
    " Served only with `tocsin serve --dev-login`, to try tocsin without an identity "
    "provider; never in production."
)
DEV_COOKIE: list[dict[str, list[str]]] = [{"cookieAuth": []}]


def _dev_paths() -> Schema:
    return {
        "/dev/session": {
            "get": {
                "operationId": "devSession",
                "summary": "Who the development sign-in cookie is for",
                "description": DEV_ONLY.strip(),
                "tags": ["development"],
                "security": [],
                "responses": {"200": _response("The signed-in user, or null.", "DevSession")},
            }
        },
        "/dev/login": {
            "post": {
                "operationId": "devLogin",
                "summary": "Sign in as any user: sets the tocsin_token cookie",
                "description": DEV_ONLY.strip(),
                "tags": ["development"],
                "security": [],
                "requestBody": {"required": True, "content": _json_content("DevLogin")},
                "responses": {
                    "200": _response(
                        "Signed in; the cookie is set.",
                        "DevLoggedIn",
                        {"Set-Cookie": {"schema": {"type": "string"}}},
                    ),
                    "409": _response(
                        "tocsin verifies tokens with a key it cannot sign with.", "ErrorBody"
                    ),
                    "413": TOO_LARGE,
                    "422": INVALID,
                },
            }
        },
        "/dev/logout": {
            "post": {
                "operationId": "devLogout",
                "summary": "Sign out: clears the cookie",
                "description": DEV_ONLY.strip(),
                "tags": ["development"],
                "security": [],
                "responses": {"200": _response("Signed out.", "DevLoggedOut")},
            }
        },
        "/dev/notify": {
            "post": {
                "operationId": "devNotify",
                "summary": "Publish a notification to the signed-in user",
                "description": DEV_ONLY.strip(),
                "tags": ["development"],
                "security": DEV_COOKIE,
                "requestBody": {"required": True, "content": _json_content("DevNotify")},
                "responses": {
                    "202": _response("Stored.", "PublishAccepted"),
                    "401": UNAUTHORIZED,
                    "413": TOO_LARGE,
                    "422": INVALID,
                    "503": _response("NATS is unavailable.", "PublishUnavailable", RETRY_AFTER),
                },
            }
        },
    }


CROSS_SITE = (
    f"Carried by the `{TOKEN_COOKIE}` cookie, but neither its `Origin` nor (without one) its "
    "`Referer` is tocsin's own origin or an allowed `--cors-origin`; `field` names the header."
)
NOT_JSON = _response(
    "The request has a body that is not `application/json` (a `charset` parameter is fine); "
    "`field` is `Content-Type`.",
    "ErrorBody",
)


def _admitted(paths: Schema) -> Schema:
    """`paths` with what the admission path answers any state-changing request (§12)."""
    for item in paths.values():
        for method, operation in item.items():
            if method.upper() not in STATE_CHANGING:
                continue
            responses = operation["responses"]
            forbidden = responses.get("403")
            description = (
                f"{forbidden['description']} Or: {CROSS_SITE}" if forbidden else CROSS_SITE
            )
            responses["403"] = _response(description, "ErrorBody")
            responses["415"] = NOT_JSON
    return paths


DEV_SESSION: Schema = {
    "title": "DevSession",
    "type": "object",
    "properties": {
        "user": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "dev_login": {"type": "boolean", "const": True},
    },
    "required": ["user", "dev_login"],
}
DEV_LOGGED_IN: Schema = {
    "title": "DevLoggedIn",
    "type": "object",
    "properties": {
        "user": {"type": "string"},
        "expires_at": {"type": "integer", "description": "Unix time the cookie's token expires."},
    },
    "required": ["user", "expires_at"],
}
DEV_LOGGED_OUT: Schema = {
    "title": "DevLoggedOut",
    "type": "object",
    "properties": {"user": {"type": "null"}},
    "required": ["user"],
}


def openapi() -> Schema:
    """The OpenAPI 3.1 document of the HTTP interface."""
    schemas = _components(
        [
            model.PublishRequest,
            model.PublishAccepted,
            model.Feed,
            model.Notification,
            model.ReadRequest,
            model.ReadState,
            model.ErrorBody,
            model.RetractRequest,
            model.Retracted,
            model.RetractedEvent,
            browser.DevLogin,
            browser.DevNotify,
            *BELL_STRUCTS,
        ],
        "#/components/schemas/{name}",
    )
    schemas.update(
        {
            "NotificationId": NOTIFICATION_ID,
            "PublishUnavailable": PUBLISH_UNAVAILABLE,
            "Status": STATUS,
            "ResetEvent": RESET_EVENT,
            "EvictedEvent": EVICTED_EVENT,
            "DevSession": DEV_SESSION,
            "DevLoggedIn": DEV_LOGGED_IN,
            "DevLoggedOut": DEV_LOGGED_OUT,
        }
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tocsin",
            "version": VERSION,
            "description": (
                "Durable live notifications: NATS JetStream to the browser's EventSource, "
                "resumable by Last-Event-ID."
            ),
        },
        "servers": [{"url": "http://127.0.0.1:8080", "description": "`tocsin serve` default"}],
        "security": USER_TOKEN,
        "paths": _admitted({**_paths(), **_bell_paths(), **_dev_paths()}),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": (
                        "A JWT whose `sub` is the user; publishers' tokens carry "
                        f'`"scope": "{PUBLISH_SCOPE}"`.'
                    ),
                },
                "cookieAuth": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": TOKEN_COOKIE,
                    "description": "The same JWT in a cookie.",
                },
                "queryToken": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "token",
                    "description": (
                        "The JWT as `?token=`, only on the stream and only for tokens living "
                        f"at most {QUERY_TOKEN_MAX_LIFETIME} s (URLs leak into logs)."
                    ),
                },
            },
        },
    }


def render(document: Schema) -> str:
    """The canonical text of a document: sorted keys, indent 2, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def documents() -> dict[str, str]:
    """Every file of `schemas/`, by name, as it should read."""
    files = {**json_schemas(), "asyncapi.json": asyncapi(), "openapi.json": openapi()}
    return {name: render(doc) for name, doc in sorted(files.items())}


def stale(directory: Path) -> list[str]:
    """The names of the files in `directory` that are missing or differ from `documents()`."""
    return [
        name
        for name, text in documents().items()
        if not (directory / name).is_file()
        or (directory / name).read_text(encoding="utf-8") != text
    ]


def write(directory: Path) -> list[str]:
    """Write the files that differ into `directory`; their names."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = stale(directory)
    texts = documents()
    for name in changed:
        (directory / name).write_text(texts[name], encoding="utf-8")
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tocsin.contract schemas [--check] [--dir DIR]`."""
    parser = argparse.ArgumentParser(prog="python -m tocsin.contract", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    schemas = commands.add_parser("schemas", help="write (or check) the files of schemas/")
    schemas.add_argument("--check", action="store_true", help="exit 1 if a file differs")
    schemas.add_argument("--dir", type=Path, default=Path("schemas"), help="default: schemas")
    args = parser.parse_args(argv)
    directory: Path = args.dir
    if args.check:
        differ = stale(directory)
        for name in differ:
            print(f"{directory / name} differs from the structs; run `just schemas`")
        return 1 if differ else 0
    for name in write(directory):
        print(f"wrote {directory / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
