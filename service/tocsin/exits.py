"""How a `tocsin` command ends: one exit status per kind of failure, and the failure itself.

An expected failure (nothing listening, a refused token, a bad flag) is a `Failure`: the
command prints its one line on stderr and exits with its status; only a bug shows a
traceback (status 1, Python's own).
"""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    """The exit statuses of `tocsin`; `MEANING` says each in words (`tocsin --help`)."""

    OK = 0
    BUG = 1
    USAGE = 2
    INVALID = 3
    TOCSIN_UNREACHABLE = 4
    NATS_UNREACHABLE = 5
    TOKEN_REFUSED = 6
    REFUSED = 7
    UNAVAILABLE = 8
    KEY = 9
    ADDRESS_IN_USE = 10
    NATS_FAILED = 11
    INTERRUPTED = 130


MEANING = {
    Exit.OK: "done",
    Exit.BUG: "a bug in tocsin (the only failure that prints a traceback)",
    Exit.USAGE: "a flag or TOCSIN_* variable that cannot be read (unknown, missing, malformed)",
    Exit.INVALID: "the notification or retraction is invalid (checked locally, or a 422)",
    Exit.TOCSIN_UNREACHABLE: "no tocsin answers at --url",
    Exit.NATS_UNREACHABLE: "no NATS answers at --nats-url (or at the URL --nats found)",
    Exit.TOKEN_REFUSED: "tocsin refused the token (401 or 403): signed with another key?",
    Exit.REFUSED: "tocsin refused the request otherwise (another 4xx, such as 413 or 429)",
    Exit.UNAVAILABLE: "tocsin or NATS could not store it now (a 5xx, JetStream failing)",
    Exit.KEY: "the JWT key cannot be used (missing or unreadable file, not a PEM key)",
    Exit.ADDRESS_IN_USE: "serve cannot listen where asked (address in use or not allowed)",
    Exit.NATS_FAILED: "serve could not start its embedded nats-server",
    Exit.INTERRUPTED: "interrupted (Ctrl-C)",
}


class Failure(Exception):
    """An expected failure of a command: its one line, and the status to exit with."""

    def __init__(self, status: Exit, message: str) -> None:
        # One line, whatever a server or library put in the message.
        line = " ".join(message.split())
        super().__init__(line)
        self.status = status
        self.message = line


def statuses() -> str:
    """The exit statuses as the lines of a help text."""
    return "\n".join(f"  {int(code):>3}  {MEANING[code]}" for code in Exit)
