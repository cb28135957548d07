"""The command line: token, publish (over HTTP and natively), retract and tail, against real
processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import jwt

from tocsin.embedded import EmbeddedNats

from support import SECRET, Tocsin, auth, run_cli, spawn_cli, user_token, wait_for


def tocsin_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `tocsin ARGS` with the tests' secret; its completed process."""
    return run_cli(*args)


def test_token_for_a_user_and_for_a_publisher() -> None:
    user = tocsin_cli("token", "--user", "alice", "--ttl", "120")
    assert user.returncode == 0, user.stderr
    claims = jwt.decode(user.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["exp"] - claims["iat"] == 120
    publisher = tocsin_cli("token", "--publisher")
    claims = jwt.decode(publisher.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["scope"] == "publish"
    assert claims["exp"] - claims["iat"] == 3600
    bad = tocsin_cli("token", "--user", "not.valid")
    assert bad.returncode == 2
    assert "user id" in bad.stderr


def test_token_uses_the_secret_serve_creates(tmp_path: Path) -> None:
    data_dir = tmp_path
    first = subprocess.run(
        [sys.executable, "-m", "tocsin", "token", "--user", "a", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    secret = (data_dir / "jwt-secret").read_text().strip()
    assert jwt.decode(first.stdout.strip(), secret, algorithms=["HS256"])["sub"] == "a"


async def test_publish_over_http_and_natively_then_tail_shows_both(
    tocsin: Tocsin, nats_server: EmbeddedNats
) -> None:
    common = ["--kind", "comment.created", "--subject-id", "doc_42"]
    over_http = tocsin_cli(
        "publish",
        "--user",
        "alice",
        *common,
        "--text",
        "via http",
        "--meta",
        '{"n": 1}',
        "--url",
        tocsin.url,
    )
    assert over_http.returncode == 0, over_http.stderr
    native = tocsin_cli(
        "publish",
        "--user",
        "alice",
        *common,
        "--text",
        "via nats",
        "--actor-id",
        "usr_8",
        "--nats-url",
        nats_server.url,
    )
    assert native.returncode == 0, native.stderr
    ids = [over_http.stdout.strip(), native.stdout.strip()]
    assert all(i.startswith("ntf_") for i in ids)

    invalid = tocsin_cli(
        "publish",
        "--user",
        "alice",
        "--kind",
        "BAD",
        "--subject-id",
        "s",
        "--text",
        "t",
        "--url",
        tocsin.url,
    )
    assert invalid.returncode == 3
    assert (
        invalid.stderr
        == "tocsin publish: kind must be 1–64 characters of a–z, 0–9, '_', '.', '-' (--kind)\n"
    )

    before_first = "ntf_" + ids[0][4:].rsplit("_", 1)[0] + "_0"
    tail = await spawn_cli(
        *("tail", "--user", "alice", "--url", tocsin.url),
        *("--last-event-id", before_first, "--json"),
    )
    lines: list[str] = []

    async def read() -> None:
        assert tail.stdout is not None
        while len(lines) < 3:
            lines.append((await tail.stdout.readline()).decode())

    try:
        await asyncio.wait_for(read(), 20)
    finally:
        tail.terminate()
        await tail.wait()
    # First the counts every stream sends after its hello, with no id (contract §9).
    assert lines[0] == 'state - {"unread":2,"unseen":2}\n'
    events = [line.split(" ", 2) for line in lines[1:]]
    assert [e[0] for e in events] == ["notification", "notification"]
    assert [e[1] for e in events] == ids
    assert [json.loads(e[2])["text"] for e in events] == ["via http", "via nats"]
    assert json.loads(events[1][2])["actor_id"] == "usr_8"
    await wait_for(lambda: tail.returncode is not None)


async def test_retract_by_key_and_by_id_prints_what_it_retracted(tocsin: Tocsin) -> None:
    at = ("--url", tocsin.url)
    common = ("--user", "dana", "--kind", "build.status", "--subject-id", "b7", *at)
    keyed = tocsin_cli("publish", *common, "--text", "build 7 passed", "--key", "build:7")
    plain = tocsin_cli("publish", *common, "--text", "hello")
    assert (keyed.returncode, plain.returncode) == (0, 0), keyed.stderr + plain.stderr
    keyed_id, plain_id = keyed.stdout.strip(), plain.stdout.strip()

    by_key = tocsin_cli("retract", "--user", "dana", "--key", "build:7", *at)
    assert (by_key.returncode, by_key.stdout.split()) == (0, [keyed_id]), by_key.stderr
    # Already gone: nothing printed, a line on stderr saying so, and still a success.
    again = tocsin_cli("retract", "--user", "dana", "--key", "build:7", *at)
    assert (again.returncode, again.stdout) == (0, ""), again.stderr
    assert "nothing live matched" in again.stderr
    by_id = tocsin_cli("retract", "--id", plain_id, *at)
    assert (by_id.returncode, by_id.stdout.split()) == (0, [plain_id]), by_id.stderr
    async with httpx.AsyncClient(base_url=tocsin.url, timeout=10) as http:
        feed = await http.get("/notifications", headers=auth(user_token("dana")))
    assert feed.json()["items"] == []

    both = tocsin_cli("retract", "--user", "dana", "--key", "k", "--id", plain_id, *at)
    neither = tocsin_cli("retract", *at)
    no_user = tocsin_cli("retract", "--key", "build:7", *at)
    assert (both.returncode, neither.returncode, no_user.returncode) == (3, 3, 3)
    assert both.stderr.startswith("tocsin retract: give keys") and "(--id)" in both.stderr
    assert neither.stderr.endswith("(--key)\n"), neither.stderr
    assert no_user.stderr.endswith("(--user)\n"), no_user.stderr
    stranger = tocsin_cli("retract", "--id", "ntf_zzzz_1", *at)
    assert stranger.returncode == 3, stranger.stderr
    assert stranger.stderr.startswith("tocsin retract: tocsin refused the retraction: ids[0]")
    assert stranger.stderr.endswith("(--id, at $.ids[0])\n"), stranger.stderr
