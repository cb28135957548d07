"""tocsin behind a real nginx running ops/nginx/tocsin.conf: events pass one by one, as they
happen, and a reconnect resumes by Last-Event-ID through the proxy."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tocsin.embedded import free_port

from support import Subscriber, Tocsin, auth, publisher_token, user_token, wait_for

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "ops" / "nginx" / "tocsin.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# The bound: an event reaches the client through the proxy this soon after its publish.
ARRIVAL_BOUND_S = 0.100


def site_config(template: str, upstream_port: int, listen_port: int) -> str:
    """The ops template pointed at one tocsin process and listening on a loopback port."""
    servers = re.findall(r"^\s*server 127\.0\.0\.1:\d+;\n", template, flags=re.MULTILINE)
    assert servers, "the template's upstream lists no loopback server"
    site = template.replace(servers[0], f"    server 127.0.0.1:{upstream_port};\n", 1)
    for extra in servers[1:]:
        site = site.replace(extra, "", 1)
    site, listens = re.subn(r"listen 80;", f"listen 127.0.0.1:{listen_port};", site)
    assert listens == 1, "the template should listen once, on port 80"
    return site


def nginx_config(prefix: Path, site: str) -> str:
    """A whole nginx.conf around `site`, with every writable path under `prefix`."""
    site = site.replace("/var/log/nginx/", f"{prefix}/")
    # As root, nginx's workers would switch to `nobody`, who cannot read the pytest tmp dir.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / (kind + '_temp')};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"    access_log {prefix / 'access.log'};\n"
        f"{temp}\n"
        f"{site}\n"
        "}\n"
    )


@dataclass
class Proxy:
    """A running nginx in front of one tocsin."""

    url: str
    process: subprocess.Popen[bytes]
    prefix: Path


@pytest.fixture
def proxy(tocsin: Tocsin, tmp_path: Path) -> Iterator[Proxy]:
    """nginx (a child process) serving the ops config in front of `tocsin`."""
    if not Path(NGINX).exists():
        print(f"nginx not found at {NGINX}: install it (CI does, via .ci/run)")
        pytest.skip(f"nginx not found at {NGINX}")
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_config(prefix, site_config(TEMPLATE.read_text(), tocsin.port, port)))
    directives = f"daemon off; pid {prefix / 'nginx.pid'}; error_log stderr;"
    log = open(prefix / "error.log", "wb")  # noqa: SIM115 - open for the process's lifetime
    process = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(conf), "-g", directives],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited: {(prefix / 'error.log').read_text()}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx not serving: {(prefix / 'error.log').read_text()}")
            time.sleep(0.05)
        yield Proxy(url, process, prefix)
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
async def direct(tocsin: Tocsin) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to tocsin itself, for publishing."""
    async with httpx.AsyncClient(base_url=tocsin.url, timeout=10) as client:
        yield client


async def publish(client: httpx.AsyncClient, user: str, text: str) -> str:
    """Publish one notification for `user`; its id."""
    response = await client.post(
        "/notifications",
        json={"recipients": [user], "kind": "k", "subject_id": "s", "text": text},
        headers=auth(publisher_token()),
    )
    assert response.status_code == 202, response.text
    nid: str = response.json()["ids"][0]
    return nid


async def test_each_event_arrives_through_the_proxy_as_it_is_published(
    proxy: Proxy, direct: httpx.AsyncClient
) -> None:
    arrivals: dict[str, float] = {}
    hello = asyncio.Event()
    headers: dict[str, str] = {}

    async def read_stream() -> None:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None)) as client,
            client.stream(
                "GET",
                proxy.url + "/notifications/stream",
                headers={**auth(user_token("ada")), "Accept-Encoding": "gzip"},
            ) as response,
        ):
            assert response.status_code == 200
            headers.update(response.headers)
            event_id = ""
            async for line in response.aiter_lines():
                if line == ": hello":
                    hello.set()
                elif line.startswith("id: "):
                    event_id = line[4:]
                elif line == "" and event_id:
                    # An event counts when its blank line arrives, as in the browser.
                    arrivals[event_id] = time.monotonic()
                    event_id = ""

    reader = asyncio.create_task(read_stream())
    try:
        await asyncio.wait_for(hello.wait(), 10)
        assert headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in headers
        delays: dict[str, float] = {}
        for n in range(10):
            started = time.monotonic()
            nid = await publish(direct, "ada", f"event {n}")
            await wait_for(lambda nid=nid: nid in arrivals, 5, f"event {n} through nginx")
            delays[nid] = arrivals[nid] - started
            assert not reader.done(), "the stream ended; events must arrive while it is open"
        slow = {nid: round(d, 3) for nid, d in delays.items() if d > ARRIVAL_BOUND_S}
        assert not slow, f"events slower than {ARRIVAL_BOUND_S}s through the proxy: {slow}"
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def test_last_event_id_resume_through_the_proxy(
    proxy: Proxy, direct: httpx.AsyncClient
) -> None:
    sub = Subscriber(proxy.url, user_token("bea")).start()
    try:
        await sub.connected()
        first = [await publish(direct, "bea", f"first {n}") for n in range(3)]
        await wait_for(lambda: sub.ids == first, what="the first notifications through nginx")

        await sub.drop()
        missed = [await publish(direct, "bea", f"missed {n}") for n in range(4)]
        sub.start()
        await wait_for(lambda: len(sub.ids) >= 7, what="the missed notifications through nginx")
        assert sub.ids == first + missed
        assert sub.connects == 2
    finally:
        await sub.close()


async def test_access_log_keeps_no_query_token(proxy: Proxy) -> None:
    token = user_token("cy", ttl=60)
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream(
            "GET", proxy.url + "/notifications/stream", params={"token": token}
        ) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line == ": hello":
                break
    access_log = proxy.prefix / "access.log"

    def logged() -> bool:
        return access_log.exists() and "/notifications/stream" in access_log.read_text()

    await wait_for(logged, 10, "nginx to log the closed stream")
    assert token not in access_log.read_text()


async def test_cookie_requests_from_the_proxys_own_origin_only(
    proxy: Proxy, direct: httpx.AsyncClient
) -> None:
    newest = await publish(direct, "cai", "through the proxy")
    cookie = {"Cookie": f"tocsin_token={user_token('cai')}"}
    async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
        # The browser addressed nginx (on a port of its own), not tocsin behind it.
        foreign = await client.post(
            "/notifications/read",
            json={"up_to": newest},
            headers={**cookie, "Origin": f"http://127.0.0.1:{direct.base_url.port}"},
        )
        own = await client.post(
            "/notifications/read", json={"up_to": newest}, headers={**cookie, "Origin": proxy.url}
        )
    assert foreign.status_code == 403, foreign.text
    assert own.status_code == 200, own.text
    assert own.json()["unread"] == 0
