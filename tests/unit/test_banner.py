"""What `tocsin serve` says on start, and how `tocsin publish` words an HTTP refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from tocsin.banner import banner
from tocsin.exits import Exit
from tocsin.produce import answer_failure, flag_of
from tocsin.settings import Settings

EMBEDDED = Settings(nats_urls=("nats://127.0.0.1:4222",))


def test_the_banner_says_where_to_connect_and_how_to_get_a_token() -> None:
    text = banner(EMBEDDED, embedded=True)
    assert text.startswith("tocsin is starting on http://127.0.0.1:8080")
    assert (
        "NATS nats://127.0.0.1:4222 (embedded): JetStream publish to tocsin.user.<user_id>, "
        "stream TOCSIN" in text
    )
    assert "token --user <user_id>" in text and "token --publisher" in text
    assert "the secret in .tocsin/jwt-secret" in text
    assert "publish --nats --user alice" in text


def test_the_banner_follows_the_settings() -> None:
    text = banner(
        Settings(
            host="::1",
            port=9000,
            stream="NOTES",
            data_dir=Path("/srv/t"),
            nats_urls=("nats://u:secret@nats-a:4222", "nats://nats-b:4222"),
            jwks_url="https://id.example/jwks",
        ),
        embedded=False,
    )
    assert "http://[::1]:9000" in text
    assert "NATS nats://***@nats-a:4222, nats://nats-b:4222: JetStream" in text
    assert "secret" not in text.replace("***", "")
    assert "stream NOTES" in text
    assert "your identity provider signs them" in text
    assert "--nats " not in text  # `publish --nats` finds only an embedded NATS


def test_the_banner_tells_why_the_nats_address_moved() -> None:
    text = banner(EMBEDDED, embedded=True, note="127.0.0.1:4222 is in use")
    assert text.splitlines()[-1] == "  note       127.0.0.1:4222 is in use"


@pytest.mark.parametrize(
    ("status", "body", "code", "words"),
    [
        (401, '{"error": "invalid token: Signature verification failed"}', Exit.TOKEN_REFUSED,
         "tocsin refused the token (401: invalid token: Signature verification failed)"),
        (403, '{"error": "token lacks the \'publish\' scope"}', Exit.TOKEN_REFUSED, "(403: token"),
        (422, '{"error": "kind must be …", "field": "$.kind"}', Exit.INVALID,
         "tocsin refused the notification: kind must be … (--kind, at $.kind)"),
        (413, '{"error": "Request Entity Too Large"}', Exit.REFUSED,
         "tocsin answered 413: Request Entity Too Large"),
        (404, "<html>not found</html>", Exit.REFUSED, "answered 404: is --url a tocsin?"),
        (503, '{"error": "notification store unavailable"}', Exit.UNAVAILABLE,
         "tocsin answered 503: notification store unavailable; try again in 1 s"),
        (502, "Bad Gateway\n\nfrom nginx", Exit.UNAVAILABLE,
         "tocsin answered 502: Bad Gateway from nginx"),
    ],
)  # fmt: skip
def test_http_refusals_in_one_line(status: int, body: str, code: Exit, words: str) -> None:
    failure = answer_failure(status, body, {"retry-after": "1"}, "http://t/notifications")
    assert failure.status == code
    assert words in failure.message
    assert "\n" not in failure.message


def test_fields_map_to_the_flags_that_gave_them() -> None:
    assert flag_of("$.recipients[0]") == "--user"
    assert flag_of("$.subject_id") == "--subject-id"
    assert flag_of("$.meta") == "--meta"
    assert flag_of("$") is None
    assert flag_of(None) is None
