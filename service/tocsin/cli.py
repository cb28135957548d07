"""The `tocsin` command: serve, token, publish, retract, tail (and bench, from a checkout).

Every flag can also be set as a TOCSIN_<FLAG> variable (upper case, '-' as '_'); a flag on
the command line wins. Every failure is one line on stderr and an exit status of its own:
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, cast

from .exits import Exit, Failure, statuses
from .flags import (
    DEFAULTS,
    SETTINGS_FIELDS,
    AtLeastOne,
    AtLeastZero,
    NatsSync,
    Parser,
    Port,
    Rate,
    Replicas,
    add,
    address,
    duration,
    duration_or_none,
    json_object,
    resolve,
    short_wait,
    typed,
    urls,
)
from .model import UserId
from .settings import DEFAULT_NATS_LISTEN, Settings, format_duration


def _add_key_flags(parser: Parser) -> None:
    add(
        parser,
        "--data-dir",
        "where the embedded NATS store, its URL (nats-url) and the generated JWT secret live",
        field="data_dir",
        parse=Path,
    )
    add(parser, "--jwt-secret", "HS256 shared secret for tokens", field="jwt_secret")
    add(
        parser,
        "--jwt-public-key",
        "PEM public key (or a path to one) for RS/ES/EdDSA tokens",
        field="jwt_public_key",
    )
    add(parser, "--jwks-url", "JWKS URL for tokens", field="jwks_url")


def _serve_flags(serve: Parser) -> None:
    add(serve, "--host", "address to listen on (0.0.0.0: every interface)", field="host")
    add(serve, "--port", "port to listen on", field="port", parse=typed(Port))
    add(
        serve,
        "--workers",
        "worker processes sharing the port",
        field="workers",
        parse=typed(AtLeastOne),
    )
    add(
        serve,
        "--nats-url",
        "NATS URL(s), comma-separated; without, an embedded nats-server runs",
        field="nats_urls",
        parse=urls,
        metavar="URL[,URL...]",
    )
    add(
        serve,
        "--nats-listen",
        "where the embedded nats-server listens; when the default is taken, a free port "
        "(said on start and written to DATA_DIR/nats-url)",
        field="nats_listen",
        parse=address,
        show=lambda value: value or DEFAULT_NATS_LISTEN,
        metavar="HOST:PORT",
    )
    add(
        serve,
        "--nats-sync",
        "embedded nats-server fsync: 'always' (each write, survives power loss) "
        "or 'default' (nats-server's 2-minute interval, faster)",
        field="nats_sync",
        parse=typed(NatsSync),
    )
    add(
        serve,
        "--stream",
        "JetStream stream name; users' state is in the KV bucket <stream>_STATE",
        field="stream",
    )
    add(
        serve,
        "--replicas",
        "stream and bucket replicas (3 on a 3-node cluster)",
        field="replicas",
        parse=typed(Replicas),
    )
    add(
        serve,
        "--retention",
        "how long notifications are kept (s, m, h, d)",
        field="retention",
        parse=duration,
        show=format_duration,
    )
    add(
        serve,
        "--per-user-max",
        "stored notifications kept per user; the oldest go first",
        field="per_user_max",
        parse=typed(AtLeastOne),
    )
    add(
        serve,
        "--heartbeat",
        "interval of the ': ping' comment on idle streams",
        field="heartbeat",
        parse=duration,
        show=format_duration,
    )
    add(
        serve,
        "--max-conns-per-user",
        "open streams per user; one more evicts the oldest",
        field="max_conns_per_user",
        parse=typed(AtLeastOne),
    )
    add(
        serve,
        "--replay-max",
        "most notifications replayed on a reconnect; past it the client gets 'reset'",
        field="replay_max",
        parse=typed(AtLeastZero),
    )
    add(
        serve,
        "--replay-cache",
        "newest notifications each process keeps in memory to answer reconnects without "
        "reading the store (0: always read the store)",
        field="replay_cache",
        parse=typed(AtLeastZero),
    )
    add(
        serve,
        "--linger",
        "how long a process keeps following a user after their last stream closed, so a "
        "quick reconnect is answered from memory (0: not at all)",
        field="linger",
        parse=duration_or_none,
        show=format_duration,
    )
    add(
        serve,
        "--tail-check",
        "how often each followed user's newest stored message is checked, to find a live "
        "message lost on its way",
        field="tail_check",
        parse=duration,
        show=format_duration,
    )
    add(
        serve,
        "--client-buffer",
        "notifications queued for one stream before its client counts as too slow",
        field="client_buffer",
        parse=typed(AtLeastOne),
    )
    add(
        serve,
        "--publish-rate",
        "notifications per second one publisher may send over HTTP (0: no limit)",
        field="publish_rate",
        parse=typed(Rate),
        show=lambda value: f"{value:g}",
    )
    add(
        serve,
        "--publish-gather",
        "how long a publish arriving while others are in flight may wait to go to NATS "
        "with them in one write (0: none waits; one alone never does)",
        field="publish_gather",
        parse=short_wait,
        show=format_duration,
    )
    add(
        serve,
        "--cors-origin",
        "an origin allowed to call tocsin from the browser; repeatable (comma-separated in "
        "the variable)",
        field="cors_origins",
        kind="append",
        metavar="ORIGIN",
    )
    add(
        serve,
        "--dev-login",
        "development only: POST /dev/login signs anyone in, POST /dev/notify sends to them",
        field="dev_login",
        kind="switch",
    )
    _add_key_flags(serve)


def build_parser() -> Parser:
    """The argument parser of every `tocsin` subcommand."""
    epilog = "exit statuses:\n" + statuses()
    parser = Parser(prog="tocsin", description=__doc__, epilog=epilog)
    parser.add_argument("--version", action="version", version=f"tocsin {version('tocsin')}")
    # Typed as plain parsers for `tocsin_bench.add_parser`; they are `Parser`s all the same.
    commands = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", required=True, metavar="COMMAND"),
    )

    def command(name: str, summary: str) -> Parser:
        sub = commands.add_parser(name, help=summary, description=summary, epilog=epilog)
        assert isinstance(sub, Parser)  # add_subparsers makes parsers of the parent's class
        return sub

    _serve_flags(command("serve", "run the service"))

    token = command("token", "print a JWT signed with tocsin's key")
    add(token, "--user", "a subscriber token for this user", parse=typed(UserId), metavar="USER_ID")
    add(token, "--publisher", "a publisher token instead (may POST /notifications)", kind="switch")
    add(token, "--ttl", "lifetime in seconds", field="token_ttl", parse=typed(AtLeastOne))
    _add_key_flags(token)

    publish = command("publish", "publish one notification, print its id")
    add(publish, "--user", "the recipient's user id", required=True, metavar="USER_ID")
    add(publish, "--kind", "what happened, e.g. comment.created", required=True)
    add(publish, "--subject-id", "what the user clicks on, e.g. doc_42", required=True)
    add(publish, "--text", "the text the user reads", required=True)
    add(publish, "--actor-id", "who did the thing")
    add(
        publish,
        "--meta",
        "a JSON object passed through untouched",
        parse=json_object,
        metavar="JSON",
    )
    add(
        publish,
        "--key",
        "the producer's name for it: replaces the user's live notification with this key",
        metavar="KEY",
    )
    add(
        publish,
        "--expires-at",
        "when it stops being listed, replayed or counted (RFC 3339 UTC, in the future, "
        "e.g. 2026-06-07T14:32:11Z)",
        metavar="TIME",
    )
    add(publish, "--url", "tocsin's HTTP address (unless --nats or --nats-url)", field="url")
    add(
        publish,
        "--nats",
        "publish natively to the NATS of the tocsin serving from --data-dir (its embedded "
        "nats-server, found in DATA_DIR/nats-url)",
        kind="switch",
    )
    add(
        publish,
        "--nats-url",
        "publish natively to this NATS (comma-separated URLs) instead of over HTTP",
        field="nats_urls",
        parse=urls,
        metavar="URL[,URL...]",
    )
    add(publish, "--stream", "JetStream stream to publish to natively", field="stream")
    _add_key_flags(publish)

    retract = command(
        "retract", "retract a user's notifications by key, or notifications by id; print the ids"
    )
    add(retract, "--user", "whose notifications with --key to retract", metavar="USER_ID")
    add(retract, "--key", "a key to retract (with --user; repeat for more)", kind="append")
    add(
        retract,
        "--id",
        "a notification id to retract (repeat for more; without --user)",
        kind="append",
        metavar="ID",
    )
    add(retract, "--url", "tocsin's HTTP address", field="url")
    _add_key_flags(retract)

    tail = command("tail", "follow a user's stream in the terminal")
    add(
        tail,
        "--user",
        "whose stream to follow",
        required=True,
        parse=typed(UserId),
        metavar="USER_ID",
    )
    add(
        tail, "--last-event-id", "resume after this notification id (else start live)", metavar="ID"
    )
    add(tail, "--url", "tocsin's HTTP address", field="url")
    add(tail, "--json", "print each event's raw frame: '<event> <id> <data>'", kind="switch")
    _add_key_flags(tail)

    try:
        # The benchmark is a tool beside the package (service/tocsin_bench), not part of it:
        # present in a checkout, absent from an installed wheel.
        from tocsin_bench import add_parser as add_bench_parser
    except ImportError:
        command("bench", "load scenarios (only from a checkout of tocsin: service/tocsin_bench)")
    else:
        add_bench_parser(commands)
    return parser


def parse(argv: Sequence[str] | None, environ: dict[str, str]) -> argparse.Namespace:
    """Read the command line and the TOCSIN_* variables; raise `Failure` if they are wrong."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        prog = f"{parser.prog} {args.command}"
        raise Failure(
            Exit.USAGE, f"{prog}: unknown arguments: {' '.join(unknown)}; see `{prog} --help`"
        )
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    resolve(subparsers.choices[args.command], args, environ)
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings that parsed flags (and `TOCSIN_*` variables) describe."""
    return Settings(**{k: v for k, v in vars(args).items() if k in SETTINGS_FIELDS})


def _mint(args: argparse.Namespace, claims: dict[str, Any]) -> str:
    from .server import make_verifier

    verifier = make_verifier(settings_from(args))
    try:
        return verifier.mint(claims)
    except ValueError:
        raise Failure(
            Exit.KEY,
            "tocsin can sign tokens only with the shared secret: pass --jwt-secret (or leave "
            "every key flag out to use the secret in --data-dir); with --jwt-public-key or "
            "--jwks-url your identity provider signs them",
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tocsin` console script."""
    from . import logs

    try:
        args = parse(argv, dict(os.environ))
    except Failure as failure:
        print(failure.message, file=sys.stderr)
        return failure.status
    logs.configure()
    try:
        return _run(args)
    except Failure as failure:
        print(f"tocsin {args.command}: {failure.message}", file=sys.stderr)
        return failure.status
    except KeyboardInterrupt:
        return Exit.INTERRUPTED


def _run(args: argparse.Namespace) -> int:
    from .auth import publisher_claims, subscriber_claims

    if args.command == "serve":
        from .server import run

        return run(settings_from(args))
    if args.command == "token":
        if not args.publisher and args.user is None:
            raise Failure(Exit.USAGE, "say whose token: --user USER_ID, or --publisher")
        claims = (
            publisher_claims(args.token_ttl)
            if args.publisher
            else subscriber_claims(args.user, args.token_ttl)
        )
        print(_mint(args, claims))
        return Exit.OK
    if args.command == "publish":
        from .produce import publish

        return asyncio.run(publish(args, lambda: _mint(args, publisher_claims(60))))
    if args.command == "retract":
        from .produce import retract

        return asyncio.run(retract(args, lambda: _mint(args, publisher_claims(60))))
    if args.command == "tail":
        from .tail import tail

        def token() -> str:
            return _mint(args, subscriber_claims(args.user, DEFAULTS.token_ttl))

        return asyncio.run(tail(args.url, token, args.last_event_id, raw=args.json))
    if args.command == "bench":
        try:
            from tocsin_bench import run as run_bench
        except ImportError:
            raise Failure(
                Exit.USAGE,
                "`tocsin bench` runs from a checkout of tocsin "
                "(service/tocsin_bench is not installed with the package)",
            ) from None
        return run_bench(args)
    raise Failure(Exit.USAGE, f"unknown command {args.command!r}")
