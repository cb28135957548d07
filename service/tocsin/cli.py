"""The `tocsin` command: serve, token, publish, tail."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .settings import Settings, parse_duration

DEFAULT_URL = "http://127.0.0.1:8080"
NATS_SYNC_CHOICES = ("always", "default")


def _env(flag: str, default: str | None = None) -> str | None:
    return os.environ.get("TOCSIN_" + flag.upper().replace("-", "_"), default)


def _urls(text: str | None) -> tuple[str, ...]:
    return tuple(u.strip() for u in (text or "").split(",") if u.strip())


def _add_key_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=_env("data-dir", ".tocsin"),
        help="where the embedded NATS store and the generated JWT secret live",
    )
    parser.add_argument(
        "--jwt-secret", default=_env("jwt-secret"), help="HS256 shared secret for tokens"
    )
    parser.add_argument(
        "--jwt-public-key",
        default=_env("jwt-public-key"),
        help="PEM public key (or a path to one) for RS/ES/EdDSA tokens",
    )
    parser.add_argument("--jwks-url", default=_env("jwks-url"), help="JWKS URL for tokens")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every `tocsin` subcommand."""
    parser = argparse.ArgumentParser(prog="tocsin", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service")
    serve.add_argument("--host", default=_env("host", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(_env("port", "8080") or 8080))
    serve.add_argument("--workers", type=int, default=int(_env("workers", "1") or 1))
    serve.add_argument(
        "--nats-url",
        default=_env("nats-url"),
        help="NATS URL(s), comma-separated; without, an embedded nats-server runs",
    )
    serve.add_argument(
        "--nats-sync",
        choices=NATS_SYNC_CHOICES,
        default=_env("nats-sync", "always"),
        help="embedded nats-server fsync: 'always' (each write, survives power loss) "
        "or 'default' (nats-server's 2-minute interval, faster)",
    )
    serve.add_argument("--stream", default=_env("stream", "TOCSIN"))
    serve.add_argument("--replicas", type=int, default=int(_env("replicas", "1") or 1))
    serve.add_argument("--retention", default=_env("retention", "7d"))
    serve.add_argument(
        "--per-user-max", type=int, default=int(_env("per-user-max", "1000") or 1000)
    )
    serve.add_argument("--heartbeat", default=_env("heartbeat", "15s"))
    serve.add_argument(
        "--max-conns-per-user", type=int, default=int(_env("max-conns-per-user", "5") or 5)
    )
    serve.add_argument("--replay-max", type=int, default=int(_env("replay-max", "500") or 500))
    serve.add_argument(
        "--publish-rate",
        type=float,
        default=float(_env("publish-rate", "10000") or 10000),
        help="notifications per second one publisher may send over HTTP (0: no limit)",
    )
    serve.add_argument(
        "--replay-cache",
        type=int,
        default=int(_env("replay-cache", "150000") or 150_000),
        help="newest notifications each process keeps in memory to answer reconnects "
        "without reading the store (0: always read the store)",
    )
    serve.add_argument(
        "--linger",
        default=_env("linger", "30s"),
        help="how long a process keeps following a user after their last stream closed, "
        "so a quick reconnect is answered from memory",
    )
    serve.add_argument(
        "--tail-check",
        default=_env("tail-check", "60s"),
        help="how often each followed user's newest stored message is checked, to find "
        "a live message lost in transit",
    )
    serve.add_argument(
        "--client-buffer",
        type=int,
        default=int(_env("client-buffer", "1024") or 1024),
        help="notifications queued for one stream before its client counts as too slow",
    )
    serve.add_argument("--cors-origin", action="append", default=list(_urls(_env("cors-origin"))))
    serve.add_argument(
        "--dev-login",
        action="store_true",
        default=_env("dev-login", "") == "1",
        help="development only: POST /dev/login signs anyone in, POST /dev/notify sends to them",
    )
    _add_key_flags(serve)

    token = commands.add_parser("token", help="print a JWT signed with tocsin's key")
    who = token.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="a subscriber token for this user")
    who.add_argument("--publisher", action="store_true", help="a publisher token")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    _add_key_flags(token)

    publish = commands.add_parser("publish", help="publish one notification, print its id")
    publish.add_argument("--user", required=True)
    publish.add_argument("--kind", required=True)
    publish.add_argument("--subject-id", required=True)
    publish.add_argument("--text", required=True)
    publish.add_argument("--actor-id")
    publish.add_argument("--meta", help="a JSON object")
    publish.add_argument(
        "--url",
        default=_env("url", DEFAULT_URL),
        help="tocsin's HTTP address (used unless --nats-url is given)",
    )
    publish.add_argument(
        "--nats-url",
        default=_env("nats-url"),
        help="publish straight to this NATS instead of over HTTP",
    )
    publish.add_argument("--stream", default=_env("stream", "TOCSIN"))
    _add_key_flags(publish)

    tail = commands.add_parser("tail", help="follow a user's stream in the terminal")
    tail.add_argument("--user", required=True)
    tail.add_argument("--last-event-id")
    tail.add_argument("--url", default=_env("url", DEFAULT_URL))
    _add_key_flags(tail)

    try:
        # The benchmark is a tool beside the package (service/tocsin_bench), not part of it:
        # present in a checkout, absent from an installed wheel.
        from tocsin_bench import add_parser as add_bench_parser
    except ImportError:
        commands.add_parser(
            "bench", help="load scenarios (only from a checkout of tocsin: service/tocsin_bench)"
        )
    else:
        add_bench_parser(commands)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings that parsed flags (and `TOCSIN_*` variables) describe."""
    if args.nats_sync not in NATS_SYNC_CHOICES:
        raise ValueError(f"--nats-sync must be one of {', '.join(NATS_SYNC_CHOICES)}")
    if args.replay_cache < 0:
        raise ValueError("--replay-cache must be 0 or more")
    return Settings(
        host=args.host,
        port=args.port,
        workers=args.workers,
        nats_urls=_urls(args.nats_url),
        data_dir=Path(args.data_dir),
        nats_sync=args.nats_sync,
        stream=args.stream,
        replicas=args.replicas,
        retention=parse_duration(args.retention),
        per_user_max=args.per_user_max,
        heartbeat=parse_duration(args.heartbeat),
        max_conns_per_user=args.max_conns_per_user,
        replay_max=args.replay_max,
        replay_cache=args.replay_cache,
        linger=parse_duration(args.linger),
        tail_check=parse_duration(args.tail_check),
        client_buffer=args.client_buffer,
        publish_rate=args.publish_rate,
        jwt_secret=args.jwt_secret,
        jwt_public_key=args.jwt_public_key,
        jwks_url=args.jwks_url,
        cors_origins=tuple(args.cors_origin),
        dev_login=args.dev_login,
    )


def _key_settings(args: argparse.Namespace) -> Settings:
    return Settings(
        data_dir=Path(args.data_dir),
        jwt_secret=args.jwt_secret,
        jwt_public_key=args.jwt_public_key,
        jwks_url=args.jwks_url,
    )


def _mint(args: argparse.Namespace, claims: dict[str, Any]) -> str:
    from .server import make_verifier

    return make_verifier(_key_settings(args)).mint(claims)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tocsin` console script."""
    from . import logs
    from .auth import publisher_claims, subscriber_claims

    args = build_parser().parse_args(argv)
    logs.configure()
    try:
        if args.command == "serve":
            from .server import run

            return run(settings_from(args))
        if args.command == "token":
            claims = (
                publisher_claims(args.ttl)
                if args.publisher
                else subscriber_claims(args.user, args.ttl)
            )
            print(_mint(args, claims))
            return 0
        if args.command == "publish":
            return asyncio.run(_publish(args))
        if args.command == "tail":
            from .tail import tail

            token = _mint(args, subscriber_claims(args.user, 3600))
            return asyncio.run(tail(args.url, token, args.last_event_id))
        if args.command == "bench":
            try:
                from tocsin_bench import run as run_bench
            except ImportError:
                print(
                    "tocsin: `tocsin bench` runs from a checkout of tocsin "
                    "(service/tocsin_bench is not installed with the package)",
                    file=sys.stderr,
                )
                return 2
            return run_bench(args)
    except ValueError as err:
        print(f"tocsin: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


async def _publish(args: argparse.Namespace) -> int:
    import httpx

    from .auth import publisher_claims
    from .model import decode_publish_request

    meta = json.loads(args.meta) if args.meta else {}
    request: dict[str, Any] = {
        "recipients": [args.user],
        "kind": args.kind,
        "subject_id": args.subject_id,
        "text": args.text,
        "actor_id": args.actor_id,
        "meta": meta,
    }
    body = decode_publish_request(json.dumps(request).encode())
    if args.nats_url:
        from .publisher import Publisher
        from .store import connect

        nc = await connect(_urls(args.nats_url), name="tocsin-publish")
        try:
            publisher = await Publisher.connect(nc, args.stream)
            ids = await publisher.publish(body.recipients, body.body())
        finally:
            await nc.close()
    else:
        token = _mint(args, publisher_claims(60))
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                args.url.rstrip("/") + "/notifications",
                json=request,
                headers={"Authorization": f"Bearer {token}"},
            )
        if response.status_code != 202:
            print(f"tocsin: {response.status_code} {response.text}", file=sys.stderr)
            return 1
        ids = response.json()["ids"]
    print(ids[0])
    return 0
