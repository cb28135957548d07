"""A nats-server restart under a running tocsin: open streams carry on with what is new,
and never receive again what the stream held before."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tocsin.embedded import EmbeddedNats

from support import Subscriber, Tocsin, auth, publisher_token, user_token, wait_for

pytestmark = pytest.mark.chaos


async def publish(url: str, user: str, texts: list[str]) -> list[str]:
    """Publish one notification per text for `user` through the tocsin at `url`; the ids."""
    ids = []
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        for text in texts:
            response = await http.post(
                "/notifications",
                json={"recipients": [user], "kind": "k", "subject_id": "s", "text": text},
                headers=auth(publisher_token()),
            )
            assert response.status_code == 202, response.text
            ids.append(response.json()["ids"][0])
    return ids


@pytest.mark.parametrize("with_cursor", [True, False], ids=["resumed", "live"])
async def test_streams_get_only_new_notifications_after_a_nats_restart(
    nats_server: EmbeddedNats, tocsin_factory: Callable[..., Tocsin], with_cursor: bool
) -> None:
    first = tocsin_factory(nats_server.url, "--heartbeat", "1s")
    history = await publish(first.url, "hal", [f"old {n}" for n in range(20)])
    # A process started after the history was stored has seen nothing of it live.
    fresh = tocsin_factory(nats_server.url, "--heartbeat", "1s")
    cursor = history[-1] if with_cursor else None
    sub = Subscriber(fresh.url, user_token("hal"), last_event_id=cursor).start()
    try:
        await sub.connected()
        nats_server.stop()
        nats_server.start()
        await wait_for(
            lambda: httpx.get(fresh.url + "/readyz", timeout=1).status_code == 200,
            20,
            "tocsin ready again",
        )
        after = await publish(fresh.url, "hal", ["new"])
        await wait_for(lambda: after[0] in sub.ids, 30, "the new notification")
        assert sub.ids == after, f"old notifications came again: {sub.ids[:5]}..."
    finally:
        await sub.close()
