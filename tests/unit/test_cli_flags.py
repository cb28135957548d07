"""The command line's flags: each described with its default and variable, every default read
from `Settings`, variables applied where no flag is given, and the exit statuses documented."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from tocsin.cli import build_parser, parse, settings_from
from tocsin.exits import MEANING, Exit, Failure
from tocsin.flags import Parser
from tocsin.settings import Settings

COMMANDS = ("serve", "token", "publish", "retract", "tail")
# CONTRACT §1: flags users rely on, each also a TOCSIN_<FLAG> variable.
BINDING = {
    "serve": [
        "--host", "--port", "--workers", "--nats-url", "--data-dir", "--stream", "--replicas",
        "--retention", "--per-user-max", "--heartbeat", "--max-conns-per-user", "--replay-max",
        "--jwt-secret", "--jwt-public-key", "--jwks-url", "--cors-origin",
    ],
    "token": ["--user", "--ttl", "--publisher", "--data-dir", "--jwt-secret"],
    "publish": ["--user", "--kind", "--subject-id", "--text", "--actor-id", "--meta"],
    "tail": ["--user", "--last-event-id"],
}  # fmt: skip
PUBLISH = ["publish", "--user", "a", "--kind", "k", "--subject-id", "s", "--text", "t"]


def subparser(name: str) -> Parser:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    chosen = action.choices[name]
    assert isinstance(chosen, Parser)
    return chosen


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_has_words_a_default_and_a_variable(command: str) -> None:
    parser = subparser(command)
    flags = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert flags
    for action in flags:
        flag = action.option_strings[0]
        variable = "TOCSIN_" + flag.removeprefix("--").replace("-", "_").upper()
        assert action.help, flag
        assert re.search(r"\(default: [^;]+; env " + variable + r"\)$", action.help), action.help
        assert len(action.help) > len(f"(default: x; env {variable})") + 10, action.help
    assert {option.flag for option in parser.options} == {a.option_strings[0] for a in flags}


@pytest.mark.parametrize("command", sorted(BINDING))
def test_binding_flags_are_all_there(command: str) -> None:
    given = {a.option_strings[0] for a in subparser(command)._actions if a.option_strings}
    assert set(BINDING[command]) <= given


def test_the_defaults_are_the_settings_defaults() -> None:
    assert settings_from(parse(["serve"], {})) == Settings()
    token = parse(["token", "--publisher"], {})
    assert token.token_ttl == Settings().token_ttl
    assert parse(PUBLISH, {}).url == Settings().url
    assert parse(["tail", "--user", "a"], {}).url == Settings().url


def test_the_help_shows_the_settings_defaults() -> None:
    shown = {a.option_strings[0]: a.help for a in subparser("serve")._actions if a.option_strings}
    assert "(default: 7d;" in str(shown["--retention"])
    assert "(default: 15s;" in str(shown["--heartbeat"])
    assert "(default: 127.0.0.1:4222;" in str(shown["--nats-listen"])
    assert f"(default: {Settings().per_user_max};" in str(shown["--per-user-max"])


def test_variables_apply_where_no_flag_is_given() -> None:
    environ = {
        "TOCSIN_PORT": "9000",
        "TOCSIN_RETENTION": "1d",
        "TOCSIN_CORS_ORIGIN": "https://a.example, https://b.example",
        "TOCSIN_DEV_LOGIN": "1",
        "TOCSIN_NATS_URL": "nats://a:4222,nats://b:4222",
        "TOCSIN_NATS_LISTEN": "127.0.0.1:5222",
        "TOCSIN_DATA_DIR": "/var/lib/tocsin",
    }
    settings = settings_from(parse(["serve", "--port", "9001"], environ))
    assert settings.port == 9001  # the flag wins
    assert settings.retention == 86400.0
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.dev_login is True
    assert settings.nats_urls == ("nats://a:4222", "nats://b:4222")
    assert settings.nats_listen == "127.0.0.1:5222"
    assert settings.data_dir == Path("/var/lib/tocsin")
    repeated = parse(["serve", "--cors-origin", "https://c.example", "--cors-origin", "x"], {})
    assert settings_from(repeated).cors_origins == ("https://c.example", "x")
    publish = parse(PUBLISH, {"TOCSIN_NATS": "yes", "TOCSIN_STREAM": "OTHER"})
    assert publish.nats is True and publish.stream == "OTHER"
    assert parse(["publish"], {**{f"TOCSIN_{k}": "x" for k in ("USER", "KIND", "TEXT")},
                               "TOCSIN_SUBJECT_ID": "s"}).kind == "x"  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "environ", "words"),
    [
        (
            ["serve"],
            {"TOCSIN_PORT": "eighty"},
            "TOCSIN_PORT must be a whole number from 1 to 65535",
        ),
        (["serve"], {"TOCSIN_DEV_LOGIN": "maybe"}, "TOCSIN_DEV_LOGIN must be 1 or 0"),
        (["serve"], {"TOCSIN_NATS_SYNC": "sometimes"}, "must be one of 'always', 'default'"),
        (["serve"], {"TOCSIN_NATS_LISTEN": "4222"}, "must be HOST:PORT"),
        (["serve", "--replicas", "7"], {}, "--replicas: must be a whole number from 1 to 5"),
        (["serve", "--retention", "0s"], {}, "--retention: must be longer than 0"),
        (["serve", "--publish-gather", "2s"], {}, "--publish-gather: must be at most 1s"),
        (["token", "--user", "a b"], {}, "must be a user id: 1–128 characters of"),
        (["publish", "--user", "a"], {}, "--kind is required (or set TOCSIN_KIND)"),
        (["frobnicate"], {}, "invalid choice: 'frobnicate'"),
    ],
)
def test_what_cannot_be_read_is_a_usage_failure_in_words(
    argv: list[str], environ: dict[str, str], words: str
) -> None:
    with pytest.raises(Failure) as caught:
        parse(argv, environ)
    assert caught.value.status == Exit.USAGE
    assert words in caught.value.message
    assert "\n" not in caught.value.message


@pytest.mark.parametrize(("given", "seconds"), [("0", 0.0), ("5ms", 0.005), ("1s", 1.0)])
def test_a_publish_gather_is_read_up_to_a_second(given: str, seconds: float) -> None:
    settings = settings_from(parse(["serve", "--publish-gather", given], {}))
    assert settings.publish_gather == seconds


def test_every_exit_status_is_distinct_and_documented() -> None:
    assert len({int(code) for code in Exit}) == len(Exit)
    assert set(MEANING) == set(Exit)
    epilog = build_parser().epilog or ""
    operations = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    for code in Exit:
        assert f"{int(code):>3}  {MEANING[code]}" in epilog
        assert re.search(rf"^\| `{int(code)}` \|", operations, re.MULTILINE), code
