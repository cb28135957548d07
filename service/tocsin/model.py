"""The notification contract: msgspec structs and the validation around them."""

from __future__ import annotations

import functools
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from .wording import Words, explain

# Python's `$` also matches before a final newline, JSON Schema's (ECMA 262) does not;
# `(?!\n)` makes msgspec refuse "abc\n" too, and changes nothing for ECMA.
# A user's notifications live on `tocsin.user.<user_id>` (contract §3).
SUBJECT_PREFIX = "tocsin.user."
# The stream republishes each stored message to `tocsin.live.<user_id>`, where tocsin
# processes also signal each other about the user (broker.py).
LIVE_PREFIX = "tocsin.live."
USER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$(?!\n)"
KIND_PATTERN = r"^[a-z0-9_.-]{1,64}$(?!\n)"
KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$(?!\n)"
NOTIFICATION_ID_PATTERN = "^ntf_[A-Za-z0-9_-]+$"
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$"
META_MAX_BYTES = 4096
MAX_RECIPIENTS = 1000
# Where producers publish and retract over HTTP (contract §3, §10): served by
# `publish_endpoint` and `app`, called by the CLI (`produce`).
PUBLISH_PATH = "/notifications"
RETRACT_PATH = "/notifications/retract"

_USER_ID_RE = re.compile(USER_ID_PATTERN)
_KEY_RE = re.compile(KEY_PATTERN)
T = TypeVar("T")

UserId = Annotated[
    str,
    msgspec.Meta(
        pattern=USER_ID_PATTERN,
        description="1-128 chars of [A-Za-z0-9_-]; one NATS subject token.",
    ),
]
Kind = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        pattern=KIND_PATTERN,
        description="What happened, e.g. comment.created.",
    ),
]
SubjectId = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=128, description="What the user clicks on."),
]
ActorId = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=128, description="Who did the thing."),
]
Text = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=1000, description="Human-readable text."),
]
Meta = Annotated[
    dict[str, Any],
    msgspec.Meta(description="Free-form JSON object, at most 4 KiB encoded, passed through."),
]
CreatedAt = Annotated[
    datetime,
    msgspec.Meta(tz=True, description="RFC 3339 UTC timestamp."),
]
Key = Annotated[
    str,
    msgspec.Meta(
        pattern=KEY_PATTERN,
        description="The producer's own name for a notification: a user has at most one "
        "live notification per key, and publishing again with it replaces that one.",
    ),
]
ExpiresAt = Annotated[
    datetime,
    msgspec.Meta(
        tz=True,
        description="RFC 3339 UTC timestamp after which the notification is no longer "
        "listed, replayed or counted.",
    ),
]
NotificationId = Annotated[
    str,
    msgspec.Meta(
        max_length=40,
        pattern=NOTIFICATION_ID_PATTERN,
        description="Opaque id assigned by tocsin; encodes the stream epoch and sequence.",
    ),
]


# Encoded without the fields left at their defaults: tocsin stores the producer's own
# fields, a body 60 bytes shorter than one with four `null`s.
class NotificationBody(
    msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True
):
    """A notification as a producer publishes it to `tocsin.user.<user_id>` (no id)."""

    kind: Kind
    subject_id: SubjectId
    text: Text
    actor_id: ActorId | None = None
    created_at: CreatedAt | None = None
    meta: Meta = msgspec.field(default_factory=dict)
    key: Key | None = None
    expires_at: ExpiresAt | None = None


class PublishRequest(NotificationBody, forbid_unknown_fields=True, kw_only=True):
    """The body of `POST /notifications`: one notification for 1-1000 recipients."""

    recipients: Annotated[list[UserId], msgspec.Meta(min_length=1, max_length=MAX_RECIPIENTS)]

    def body(self) -> NotificationBody:
        """The per-recipient notification body this request publishes."""
        return NotificationBody(
            **{name: getattr(self, name) for name in NotificationBody.__struct_fields__}
        )


Timestamp = Annotated[
    str,
    msgspec.Meta(
        pattern=TIMESTAMP_PATTERN,
        description="RFC 3339 UTC timestamp: the producer's, else when it was stored.",
    ),
]


class Notification(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A notification as subscribers see it (contract §2); `key` and `expires_at` only
    when its producer gave them."""

    id: NotificationId
    kind: Kind
    subject_id: SubjectId
    actor_id: ActorId | None
    created_at: Timestamp
    text: Text
    meta: Meta
    key: Key | None = None
    expires_at: Timestamp | None = None


class PublishAccepted(msgspec.Struct):
    """The `202` answer of `POST /notifications`: ids in recipient order."""

    ids: list[NotificationId]


class Feed(msgspec.Struct):
    """A page of the feed, newest first (contract §6), each item with its state, and the
    user's counts (contract §9: `unread` and `unseen` over the whole feed, whatever the
    page's filters).

    `cursor` is where a stream opened after this read must resume so that nothing
    falls in between: `last_id` when the user has notifications, else the stream's
    position at the time of the read (so it is never null).
    """

    items: list[FeedItem]
    next_before: NotificationId | None
    last_id: NotificationId | None
    unread: int
    cursor: NotificationId
    unseen: int


class ReadRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The body of `POST /notifications/read`."""

    up_to: NotificationId


class ReadState(msgspec.Struct):
    """The answer of `POST /notifications/read`: the read marker (it never moves back) and
    what is still unread (contract §9's count). Its shape is kept as it was; the new
    `unseen` comes with the `state` frame and `POST /notifications/state`."""

    up_to: NotificationId | None
    unread: int


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """Every error answer: a message and, for invalid input, the JSON path at fault."""

    error: str
    field: str | None = None


class InvalidInput(ValueError):
    """Input that breaks the contract; `field` is the JSON path at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def is_user_id(value: str) -> bool:
    """Whether `value` is a valid user id (and so a single NATS subject token)."""
    return _USER_ID_RE.fullmatch(value) is not None


def is_key(value: str) -> bool:
    """Whether `value` is a valid notification key."""
    return _KEY_RE.fullmatch(value) is not None


_body_decoder = msgspec.json.Decoder(NotificationBody)
_publish_decoder = msgspec.json.Decoder(PublishRequest)
_read_decoder = msgspec.json.Decoder(ReadRequest)
_encoder = msgspec.json.Encoder()


# How validation errors name what a string of each pattern must be (`wording.explain`). A
# pattern of one character class, such as KIND_PATTERN, is read by itself: it needs an entry
# only to be given a noun. tests/unit/test_wording.py fails for a pattern with no words.
PATTERN_WORDS: dict[str, Words] = {
    USER_ID_PATTERN: Words("a user id"),
    NOTIFICATION_ID_PATTERN: Words(
        "a notification id as tocsin gave it out",
        "'ntf_' and then letters, digits, '_' or '-', at most 40 characters in all",
    ),
    TIMESTAMP_PATTERN: Words("an RFC 3339 UTC timestamp", "such as 2026-06-07T14:32:11Z"),
}


def decode_json(decoder: msgspec.json.Decoder[T], data: bytes) -> T:
    """Decode `data` with `decoder`; raise `InvalidInput` saying in words what the field at
    fault must be, with its JSON path."""
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as error:
        raise InvalidInput(*explain(error, decoder.type, PATTERN_WORDS)) from None
    except msgspec.DecodeError as error:
        problem = str(error)
        raise InvalidInput(
            f"the body must be JSON ({problem[:1].lower()}{problem[1:]})", "$"
        ) from None


def _check_common(body: NotificationBody) -> None:
    for name, moment in (("created_at", body.created_at), ("expires_at", body.expires_at)):
        if moment is not None and moment.utcoffset() != timedelta(0):
            raise InvalidInput(
                f"{name} must be in UTC: end in Z (or +00:00), such as 2026-06-07T14:32:11Z",
                f"$.{name}",
            )
    if len(_encoder.encode(body.meta)) > META_MAX_BYTES:
        raise InvalidInput(
            f"meta must be a JSON object of at most {META_MAX_BYTES} bytes encoded", "$.meta"
        )


def decode_body(data: bytes) -> NotificationBody:
    """Validate a producer's notification body; raise `InvalidInput` naming the field."""
    body: NotificationBody = decode_json(_body_decoder, data)
    _check_common(body)
    return body


def decode_publish_request(data: bytes) -> PublishRequest:
    """Validate a `POST /notifications` body; raise `InvalidInput` naming the field."""
    request: PublishRequest = decode_json(_publish_decoder, data)
    _check_common(request)
    check_expiry(request.expires_at, datetime.now(UTC))
    return request


def check_expiry(expires_at: datetime | None, now: datetime) -> None:
    """A publisher's `expires_at` must lie in the future; raise `InvalidInput` if not."""
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("expires_at must be in the future", "$.expires_at")


def decode_read_request(data: bytes) -> ReadRequest:
    """Validate a `POST /notifications/read` body."""
    request: ReadRequest = decode_json(_read_decoder, data)
    return request


_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stored_time(time_ns: int) -> datetime:
    """The `created_at` of a notification its producer did not date: when it was stored."""
    return _UNIX_EPOCH + timedelta(milliseconds=time_ns // 1_000_000)


_SECOND = timedelta(seconds=1)


@functools.lru_cache(maxsize=1024)
def _utc_second(seconds: int) -> str:
    t = time.gmtime(seconds)  # not strftime's %Y, which gives years before 1000 unpadded
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    )


def rfc3339(moment: datetime) -> str:
    """`moment` (UTC) as `YYYY-MM-DDTHH:MM:SS[.fff]Z`: milliseconds when it has any.

    Each notification read is dated once; the text of its whole second is cached
    (2.3 -> 0.8 us a notification, 8% of reading the stream's tail at start)."""
    if moment.tzinfo is None:
        moment = moment.astimezone(UTC)
    text = _utc_second((moment - _UNIX_EPOCH) // _SECOND)
    micros = moment.microsecond
    if micros == 0:
        return text + "Z"
    if micros % 1000 == 0:
        return f"{text}.{micros // 1000:03d}Z"
    return f"{text}.{micros:06d}Z"


def notification_from(notification_id: str, time_ns: int, data: bytes) -> Notification:
    """The subscriber's view of a stored body; raise `InvalidInput` if it breaks the contract."""
    body = decode_body(data)
    return Notification(
        id=notification_id,
        kind=body.kind,
        subject_id=body.subject_id,
        actor_id=body.actor_id,
        created_at=rfc3339(body.created_at or stored_time(time_ns)),
        text=body.text,
        meta=body.meta,
        key=body.key,
        expires_at=rfc3339(body.expires_at) if body.expires_at is not None else None,
    )


def encode(value: Any) -> bytes:
    """Encode a contract value as compact one-line JSON."""
    return _encoder.encode(value)


# -- Retractions (contract §10): `POST /notifications/retract` and the `retracted` frame --
# Kept apart from the other structs: what a producer retracts, and what tocsin answers.

MAX_RETRACT_TARGETS = 1000

RetractKeys = Annotated[list[Key], msgspec.Meta(min_length=1, max_length=MAX_RETRACT_TARGETS)]
RetractIds = Annotated[
    list[NotificationId], msgspec.Meta(min_length=1, max_length=MAX_RETRACT_TARGETS)
]
RetractRecipients = Annotated[list[UserId], msgspec.Meta(min_length=1, max_length=MAX_RECIPIENTS)]


class RetractRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The body of `POST /notifications/retract`: the recipients' live notifications with
    these keys (`recipients` and `keys`), or these notifications (`ids` alone). Beyond
    this schema: each id must be one this stream gave out (not of an earlier incarnation)."""

    recipients: RetractRecipients | msgspec.UnsetType = msgspec.UNSET
    keys: RetractKeys | msgspec.UnsetType = msgspec.UNSET
    ids: RetractIds | msgspec.UnsetType = msgspec.UNSET


class Retracted(msgspec.Struct):
    """The `200` answer of `POST /notifications/retract`: the ids of the notifications it
    found live and retracted (what was not found, or already gone, is not listed)."""

    retracted: list[NotificationId]


class RetractedEvent(msgspec.Struct):
    """The data of an `event: retracted` frame: remove these notifications. The frame has
    its own `id:` when it is a stored retraction, and none when a notification that
    replaced others with its key comes right after it, in the same write."""

    ids: list[NotificationId]


_retract_decoder = msgspec.json.Decoder(RetractRequest)


def decode_retract_request(data: bytes) -> RetractRequest:
    """Validate a `POST /notifications/retract` body: exactly one of `keys` (with
    `recipients`) and `ids` (without); raise `InvalidInput` naming the field."""
    request: RetractRequest = decode_json(_retract_decoder, data)
    by_keys = request.keys is not msgspec.UNSET
    by_ids = request.ids is not msgspec.UNSET
    if by_keys and by_ids:
        raise InvalidInput(
            "give keys (with recipients) or ids, not both: retract by key or by id", "$.ids"
        )
    if not by_keys and not by_ids:
        raise InvalidInput(
            "say what to retract: keys (with recipients), or the ids of notifications", "$.keys"
        )
    if by_keys and request.recipients is msgspec.UNSET:
        raise InvalidInput(
            "recipients is required with keys: whose notifications with these keys to retract",
            "$.recipients",
        )
    if by_ids and request.recipients is not msgspec.UNSET:
        raise InvalidInput(
            "recipients goes with keys only: an id already names its recipient",
            "$.recipients",
        )
    return request


# -- Notification state, preferences and the grouped feed (contract §9; §10's groups) -------

MUTED_KIND_PATTERN = r"^[a-z0-9_.-]{1,64}(\.\*)?$(?!\n)"
MAX_STATE_IDS = 1000
MAX_MUTED_KINDS = 100
PATTERN_WORDS[MUTED_KIND_PATTERN] = Words(
    "a kind or a prefix of kinds",
    "1–64 characters of a–z, 0–9, '_', '.', '-', optionally followed by '.*' "
    "(build.* mutes build.started, build.failed, ...)",
)

StateAction = Literal["read", "unread", "seen", "archive", "unarchive"]
FeedStatus = Literal["all", "unread", "unseen", "read", "archived"]
MutedKind = Annotated[
    str,
    msgspec.Meta(
        pattern=MUTED_KIND_PATTERN,
        description="A kind (comment.created), or a prefix ending in .* (build.*).",
    ),
]
# The selectors of a state change, in the order a request's second one is named.
SELECTORS = ("ids", "up_to", "kind", "subject_id", "all")


class ItemState(msgspec.Struct):
    """One notification's state for its user (contract §9): read implies seen."""

    read: bool
    seen: bool
    archived: bool


class FeedItem(Notification, kw_only=True, omit_defaults=True):
    """A notification as the feed lists it: with its state."""

    state: ItemState


class StateChange(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The body of `POST /notifications/state`: an action and exactly one selector, and the
    `change` a `state` frame reports (contract §9). `ids`, `up_to`: the user's own
    notifications; `kind`, `subject_id`: every one of the user's with it; `all`: every one."""

    action: StateAction
    ids: (
        Annotated[list[NotificationId], msgspec.Meta(min_length=1, max_length=MAX_STATE_IDS)]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    up_to: NotificationId | msgspec.UnsetType = msgspec.UNSET
    kind: Kind | msgspec.UnsetType = msgspec.UNSET
    subject_id: SubjectId | msgspec.UnsetType = msgspec.UNSET
    all: Literal[True] | msgspec.UnsetType = msgspec.UNSET

    def selector(self) -> str:
        """The one selector given; raise `InvalidInput` naming the field for none or two."""
        given = [name for name in SELECTORS if getattr(self, name) is not msgspec.UNSET]
        if not given:
            raise InvalidInput(
                f"a selector is required: give exactly one of {', '.join(SELECTORS)}", "$"
            )
        if len(given) > 1:
            raise InvalidInput(
                f"{given[1]} is a second selector beside {given[0]}: give exactly one of "
                f"{', '.join(SELECTORS)}",
                f"$.{given[1]}",
            )
        return given[0]


class Counts(msgspec.Struct):
    """The answer of `POST /notifications/state`: the user's counts after the change.
    `unread`: not read, not archived, not muted; `unseen`: not seen, not read, not
    archived, not muted."""

    unread: int
    unseen: int


class StateEvent(msgspec.Struct, kw_only=True):
    """The data of an `event: state` frame (no `id:` line): the user's counts, and the
    `change` that moved them (absent in the frame sent right after `hello` and when counts
    are only brought up to date); `muted_kinds` when the user's preferences changed."""

    unread: int
    unseen: int
    change: StateChange | msgspec.UnsetType = msgspec.UNSET
    muted_kinds: list[MutedKind] | msgspec.UnsetType = msgspec.UNSET


class Preferences(msgspec.Struct, forbid_unknown_fields=True):
    """`GET` and `PUT /preferences`: the kinds whose notifications are stored but neither
    delivered, replayed, listed (but with `status=all`) nor counted."""

    muted_kinds: Annotated[list[MutedKind], msgspec.Meta(max_length=MAX_MUTED_KINDS)]


class Group(msgspec.Struct):
    """Notifications of one (kind, subject_id) in the default feed: how many, how many
    unread, up to 3 distinct actors (newest first) and the newest of them."""

    kind: Kind
    subject_id: SubjectId
    count: int
    unread: int
    actors: list[ActorId]
    latest: FeedItem


class Groups(msgspec.Struct):
    """A page of `GET /notifications/groups`, newest group first (by its latest item);
    `next_before` is the latest item's id of the page's last group when more follow."""

    groups: list[Group]
    next_before: NotificationId | None


class FeedQuery(msgspec.Struct, forbid_unknown_fields=False):
    """The filters of `GET /notifications` (query parameters; empty means absent)."""

    status: FeedStatus | msgspec.UnsetType = msgspec.UNSET
    kind: Kind | msgspec.UnsetType = msgspec.UNSET
    subject_id: SubjectId | msgspec.UnsetType = msgspec.UNSET


_state_change_decoder = msgspec.json.Decoder(StateChange)
_preferences_decoder = msgspec.json.Decoder(Preferences)


def decode_state_change(data: bytes) -> StateChange:
    """Validate a `POST /notifications/state` body (one selector); raise `InvalidInput`."""
    change: StateChange = decode_json(_state_change_decoder, data)
    change.selector()
    return change


def decode_preferences(data: bytes) -> Preferences:
    """Validate a `PUT /preferences` body; raise `InvalidInput` naming the field."""
    preferences: Preferences = decode_json(_preferences_decoder, data)
    # Each entry once, in the order given.
    preferences.muted_kinds = list(dict.fromkeys(preferences.muted_kinds))
    return preferences


def feed_query(args: dict[str, str]) -> FeedQuery:
    """The feed's filters from its query parameters; raise `InvalidInput` naming the one
    at fault (as `kind`, not `$.kind`: it is a query parameter)."""
    given = {name: value for name, value in args.items() if value != ""}
    try:
        return msgspec.convert(given, FeedQuery)
    except msgspec.ValidationError as error:
        message, field = explain(error, FeedQuery, PATTERN_WORDS)
        raise InvalidInput(message, field.removeprefix("$.")) from None
