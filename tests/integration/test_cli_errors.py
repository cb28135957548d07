"""Every expected failure of a `tocsin` command is one line on stderr, no traceback, and an exit
status of its own (tocsin --help lists them). Real processes, real sockets."""

from __future__ import annotations

from pathlib import Path

from tocsin.embedded import EmbeddedNats, free_port
from tocsin.exits import Exit

from support import SECRET, Tocsin, TocsinFactory, run_cli

NOTIFICATION = ("--user", "alice", "--kind", "k", "--subject-id", "s", "--text", "t")


def fails(status: Exit, *args: str, secret: str | None = SECRET) -> str:
    """Run `tocsin ARGS`; check it failed with `status` and one line; that line."""
    done = run_cli(*args, secret=secret)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.returncode == status, (done.returncode, done.stderr)
    return done.stderr.strip()


def test_publish_retract_and_tail_with_no_tocsin_running() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    line = fails(Exit.TOCSIN_UNREACHABLE, "publish", *NOTIFICATION, "--url", url)
    assert line.startswith(f"tocsin publish: tocsin is not reachable at {url}")
    assert "tocsin serve" in line
    assert line.endswith("or pass --url (or --nats to publish natively)")
    line = fails(Exit.TOCSIN_UNREACHABLE, "retract", "--id", "ntf_a_1", "--url", url)
    assert line.startswith(f"tocsin retract: tocsin is not reachable at {url}")
    # retract has no --nats: it is not offered.
    assert line.endswith("start it with `tocsin serve`, or pass --url"), line
    line = fails(Exit.TOCSIN_UNREACHABLE, "tail", "--user", "alice", "--url", url)
    assert line.startswith(f"tocsin tail: tocsin is not reachable at {url}")


def test_publish_to_an_unreachable_nats() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    line = fails(Exit.NATS_UNREACHABLE, "publish", *NOTIFICATION, "--nats-url", url)
    assert line.startswith(f"tocsin publish: NATS is not reachable at {url}")


def test_publish_to_a_nats_without_tocsins_stream(nats_server: EmbeddedNats) -> None:
    line = fails(Exit.UNAVAILABLE, "publish", *NOTIFICATION, "--nats-url", nats_server.url)
    assert "tocsin serve creates the stream TOCSIN" in line


def test_refused_tokens(tocsin: Tocsin) -> None:
    other = "another-secret-" + "x" * 40
    line = fails(Exit.TOKEN_REFUSED, "publish", *NOTIFICATION, "--url", tocsin.url, secret=other)
    assert "tocsin refused the token (401: invalid token" in line
    line = fails(Exit.TOKEN_REFUSED, "tail", "--user", "alice", "--url", tocsin.url, secret=other)
    assert "(401: invalid token" in line


def test_other_refusals_print_the_servers_words(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    slow = tocsin_factory(nats_server.url, "--publish-rate", "0.001")
    line = fails(Exit.REFUSED, "publish", *NOTIFICATION, "--url", slow.url)
    assert line.startswith("tocsin publish: tocsin answered 429: publish rate limit")
    assert "at recipients" in line
    line = fails(Exit.REFUSED, "publish", *NOTIFICATION, "--url", slow.url + "/nowhere")
    assert "answered 404: is --url a tocsin?" in line


def test_bad_flags_and_variables() -> None:
    assert "argument --port: must be a whole number from 1 to 65535 (got 'x')" in fails(
        Exit.USAGE, "serve", "--port", "x"
    )
    assert "unknown arguments: --colour" in fails(Exit.USAGE, "serve", "--colour", "red")
    assert "--kind is required (or set TOCSIN_KIND)" in fails(
        Exit.USAGE, "publish", "--user", "a", "--subject-id", "s", "--text", "t"
    )
    line = fails(Exit.USAGE, "publish", *NOTIFICATION, "--meta", "{not json")
    assert "argument --meta: must be a JSON object" in line
    assert "heartbeat" in fails(Exit.USAGE, "serve", "--heartbeat", "soon")
    assert "unknown arguments" in fails(Exit.USAGE, "bench", "fanout", "--no-such-flag")


def test_invalid_notifications_say_what_each_field_must_be() -> None:
    line = fails(Exit.INVALID, "publish", *NOTIFICATION, "--meta", "[1]")
    assert line == "tocsin publish: meta must be a JSON object (got a list) (--meta)"
    line = fails(Exit.INVALID, "publish", *NOTIFICATION[:-1], "")
    assert line == "tocsin publish: text must be a string of 1–1000 characters (--text)"


def test_key_files_that_cannot_be_used(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    line = fails(Exit.KEY, "token", "--user", "a", "--jwt-public-key", str(missing), secret=None)
    assert line.startswith(f"tocsin token: --jwt-public-key {missing}: No such file")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    line = fails(
        Exit.KEY,
        *("serve", "--jwt-public-key", str(garbage), "--data-dir", str(tmp_path)),
        *("--port", str(free_port()), "--nats-listen", f"127.0.0.1:{free_port()}"),
        secret=None,
    )
    assert "is not a PEM public key" in line
    locked = tmp_path / "locked"
    locked.write_text("a file where the data dir should be")
    line = fails(Exit.KEY, "token", "--user", "a", "--data-dir", str(locked), secret=None)
    assert "cannot read or create the JWT secret" in line


def test_serve_on_a_port_in_use(held_port: int, tmp_path: Path) -> None:
    line = fails(
        Exit.ADDRESS_IN_USE, "serve", "--port", str(held_port), "--data-dir", str(tmp_path)
    )
    assert line == (
        f"tocsin serve: 127.0.0.1:{held_port} is already in use (another tocsin?); "
        "stop it or pick another --port"
    )
    # Nothing was started: no embedded NATS store either.
    assert not (tmp_path / "nats").exists()


def test_serve_with_its_nats_address_in_use(held_port: int, tmp_path: Path) -> None:
    line = fails(
        Exit.ADDRESS_IN_USE,
        *("serve", "--port", str(free_port()), "--data-dir", str(tmp_path)),
        *("--nats-listen", f"127.0.0.1:{held_port}"),
    )
    assert line.startswith(f"tocsin serve: --nats-listen 127.0.0.1:{held_port} is already in use")
