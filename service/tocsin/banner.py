"""What `tocsin serve` says once on start: where browsers and producers connect, and how to get
a token. For people; the log lines on stderr are for machines."""

from __future__ import annotations

import os

from .logs import redact_url
from .model import SUBJECT_PREFIX
from .settings import Settings

USER_PLACEHOLDER = "<user_id>"


def command() -> str:
    """How the person who started tocsin runs it again: through `uv run` if they did."""
    return "uv run tocsin" if "UV_RUN_RECURSION_DEPTH" in os.environ else "tocsin"


def banner(settings: Settings, *, embedded: bool, note: str | None = None) -> str:
    """The start-up text of a tocsin serving `settings` (`embedded`: its own nats-server)."""
    tocsin = command()
    nats = ", ".join(redact_url(url) for url in settings.nats_urls)
    subject = f"{SUBJECT_PREFIX}{USER_PLACEHOLDER}"
    where = "" if settings.data_dir == Settings().data_dir else f" --data-dir {settings.data_dir}"
    lines = [
        f"tocsin is starting on {settings.url} (ready when {settings.url}/readyz answers 200)",
        f"  browsers   {settings.url}/notifications/stream (SSE); tocsin.js at /client/tocsin.js",
        f"  producers  NATS {nats}{' (embedded)' if embedded else ''}: JetStream publish to "
        f"{subject}, stream {settings.stream}",
        f"             or POST {settings.url}/notifications with a publisher token",
        f"  tokens     {_tokens(settings, tocsin, where)}",
    ]
    if embedded:
        lines.append(
            f"  try        {tocsin} publish --nats{where} --user alice --kind demo "
            "--subject-id s --text hello"
        )
    if note:
        lines.append(f"  note       {note}")
    return "\n".join(lines)


def _tokens(settings: Settings, tocsin: str, where: str) -> str:
    if settings.jwks_url or settings.jwt_public_key:
        flag = "--jwks-url" if settings.jwks_url else "--jwt-public-key"
        return f"your identity provider signs them; tocsin verifies them with {flag}"
    key = " --jwt-secret ..." if settings.jwt_secret else where
    origin = (
        "the shared secret"
        if settings.jwt_secret
        else f"the secret in {settings.data_dir / 'jwt-secret'}"
    )
    return (
        f"{tocsin} token{key} --user {USER_PLACEHOLDER} (a subscriber), "
        f"{tocsin} token{key} --publisher; signed with {origin}"
    )
