"""Flags as `tocsin` reads them: each described with its default (from `Settings`) and its
TOCSIN_<FLAG> variable, read from the command line, else the variable, else the default;
a value that cannot be read is one line in words (`Failure`, exit status 2)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Annotated, Any, Literal, NoReturn

import msgspec

from .exits import Exit, Failure
from .model import PATTERN_WORDS
from .settings import DEFAULT_NATS_LISTEN, Settings, parse_address, parse_duration
from .wording import describe

DEFAULTS = Settings()
ENV_PREFIX = "TOCSIN_"
SETTINGS_FIELDS = {f.name for f in fields(Settings)}
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
    seconds = duration_or_none(text)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be longer than 0 (got {text!r})")
    return seconds


def duration_or_none(text: str) -> float:
    """Seconds in a duration such as `15s` or `7d`, where 0 means none."""
    try:
        return parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a duration such as 15s, 10m or 7d, or 0 (got {text!r})"
        ) from None


def short_wait(text: str) -> float:
    """Seconds in a duration of at most a second, where 0 means none (a publish's wait
    to share a write: longer would outlast what it waits on)."""
    seconds = duration_or_none(text)
    if seconds > 1.0:
        raise argparse.ArgumentTypeError(f"must be at most 1s, such as 5ms, or 0 (got {text!r})")
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
    dest = field if field in SETTINGS_FIELDS else name
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
    parser.options.append(Option(flag, dest, env, from_env, value, required))


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
