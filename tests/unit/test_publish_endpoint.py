"""`POST /notifications` served from ASGI answers a bug as Quart answers one in its routes."""

from __future__ import annotations

import pytest
from quart import Quart

from tocsin import publish_endpoint
from tocsin.app import create_app
from tocsin.auth import Verifier
from tocsin.runtime import Runtime
from tocsin.settings import Settings

from support import SECRET, auth, publisher_token

BODY = b'{"recipients": ["alice"], "kind": "k", "subject_id": "s", "text": "t"}'


def app_with_a_broken_route() -> Quart:
    settings = Settings(cors_origins=("https://app.example",))
    app = create_app(settings, Runtime(settings), Verifier(secret=SECRET))

    @app.post("/broken")
    async def broken() -> str:
        raise RuntimeError("a bug")

    return app


async def test_an_unexpected_error_is_a_json_500_as_in_quarts_routes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def bug(data: bytes) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(publish_endpoint, "decode_publish_request", bug)
    client = app_with_a_broken_route().test_client()
    headers = {
        **auth(publisher_token()),
        "Content-Type": "application/json",
        "Content-Length": str(len(BODY)),
        "Origin": "https://app.example",
    }
    ours = await client.post("/notifications", data=BODY, headers=headers)
    quarts = await client.post("/broken", data=BODY, headers=headers)
    assert ours.status_code == quarts.status_code == 500
    assert await ours.get_data() == await quarts.get_data()
    assert list(ours.headers.items()) == list(quarts.headers.items())
