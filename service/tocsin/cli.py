"""The `tocsin` command: serve, token, publish, tail (and bench, from a checkout).

Every flag can also be set as a TOCSIN_<FLAG> variable (upper case, '-' as '_'); a flag on
the command line wins. Every failure is one line on stderr and an exit status of its own:
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, cast

import msgspec

from .exits import Exit, Failure, statuses
from .model import PATTERN_WORDS, UserId
from .settings import DEFAULT_NATS_LISTEN, Settings, format_duration, parse_address, parse_duration
from .wording import describe

DEFAULTS = Settings()
ENV_PREFIX = "TOCSIN_"
_SETTINGS_FIELDS = {f.name for f in fields(Settings)}
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
AtLeastOne = Annotated[int, msgspec.Meta(ge=1)]
AtLeastZero = Annotated[int, msgspec.Meta(ge=0)]
Replicas = Annotated[int, msgspec.Meta(ge=1, le=5)]
Rate = Annotated[float, msgspec.Meta(ge=0)]
NatsSync = Literal["always", "default"]

Parse = Callable[[str], Any]


@dataclass(frozen=True, slots=True)
class Option:
    """One flag: where its value comes from when it is not on the command line."""

    flag: str
    dest: str
    env: str
    parse: Parse
    default: Any
    required: bool
    field: str | None


class Parser(argparse.ArgumentParser):
    """An argument parser that fails in one line (no usage dump) and knows its options."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.options: list[Option] = []

    def error(self, message: str) -> NoReturn:
        """Refuse the command line: one line, the usage status."""
        raise Failure(Exit.USAGE, f"{self.prog}: {message}; see `{self.prog} --help`")


def typed(kind: Any) -> Parse:
    """A flag parser that reads text as `kind` and says in words what it must be."""

    def parse(text: str) -> Any:
        try:
            return msgspec.convert(text, kind, strict=False)
        except msgspec.ValidationError:
            raise argparse.ArgumentTypeError(
                f"must be {describe(kind, PATTERN_WORDS)} (got {text!r})"
            ) from None

    return parse


def duration(text: str) -> float:
    """Seconds in a positive duration such as `15s` or `7d`."""
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a duration such as 15s, 10m or 7d (got {text!r})"
        ) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be longer than 0 (got {text!r})")
    return seconds


def address(text: str) -> str:
    """A `HOST:PORT`, checked."""
    try:
        parse_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be HOST:PORT, such as {DEFAULT_NATS_LISTEN} (got {text!r})"
        ) from None
    return text.strip()


def urls(text: str) -> tuple[str, ...]:
    """The URLs of a comma-separated list."""
    return tuple(u.strip() for u in text.split(",") if u.strip())


def json_object(text: str) -> Any:
    """A JSON value (the notification's validation says if it is not an object)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(
            f"must be a JSON object such as '{{\"n\": 1}}' ({err.msg} at character {err.pos})"
        ) from None


def switch(text: str) -> bool:
    """A yes/no variable: 1, true, yes, on or 0, false, no, off."""
    if text.strip().lower() in _ON:
        return True
    if text.strip().lower() in _OFF:
        return False
    raise argparse.ArgumentTypeError(f"must be 1 or 0 (got {text!r})")


def _shown(value: Any, show: Callable[[Any], str] | None) -> str:
    if show is not None:
        return show(value)
    if value is None or value == () or value is False:
        return "none" if value is not False else "off"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def add(
    parser: Parser,
    flag: str,
    help_text: str,
    *,
    field: str | None = None,
    default: Any = None,
    parse: Parse = str,
    show: Callable[[Any], str] | None = None,
    kind: Literal["value", "switch", "append"] = "value",
    required: bool = False,
    metavar: str | None = None,
) -> None:
    """Add `flag` to `parser`: its default from `Settings.<field>` (or `default`), its variable
    TOCSIN_<FLAG>, and both said in its help."""
    name = flag.removeprefix("--").replace("-", "_")
    env = ENV_PREFIX + name.upper()
    # Named after the setting it fills, so that `settings_from` finds it.
    dest = field if field in _SETTINGS_FIELDS else name
    value = getattr(DEFAULTS, field) if field else default
    shown = "required" if required else _shown(value, show)
    described = f"{help_text} (default: {shown}; env {env})".replace("%", "%%")
    from_env: Parse
    if kind == "switch":
        parser.add_argument(flag, action="store_const", const=True, dest=dest, help=described)
        from_env = switch
    elif kind == "append":
        parser.add_argument(
            flag, action="append", type=parse, dest=dest, help=described, metavar=metavar
        )
        from_env = lambda text: tuple(parse(item) for item in urls(text))  # noqa: E731
    else:
        parser.add_argument(flag, type=parse, dest=dest, help=described, metavar=metavar)
        from_env = parse
    parser.options.append(Option(flag, dest, env, from_env, value, required, field))


def resolve(parser: Parser, args: argparse.Namespace, environ: dict[str, str]) -> None:
    """Fill in each flag not on the command line: from its variable, else its default."""
    for option in parser.options:
        given = getattr(args, option.dest)
        if given is not None:
            if isinstance(given, list):
                setattr(args, option.dest, tuple(given))
            continue
        text = environ.get(option.env, "")
        if text.strip():
            try:
                value = option.parse(text)
            except argparse.ArgumentTypeError as err:
                raise Failure(
                    Exit.USAGE, f"{parser.prog}: {option.env} {err}; fix or unset it"
                ) from None
        elif option.required:
            raise Failure(
                Exit.USAGE,
                f"{parser.prog}: {option.flag} is required (or set {option.env}); "
                f"see `{parser.prog} --help`",
            )
        else:
            value = option.default
        setattr(args, option.dest, value)


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
        "JetStream stream name; the read markers' bucket is <stream>_READ",
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
    return Settings(**{k: v for k, v in vars(args).items() if k in _SETTINGS_FIELDS})


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
