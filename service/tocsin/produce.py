"""`tocsin publish`: one notification, over HTTP or natively to NATS; `tocsin retract`: a
user's notifications by key, or notifications by id, over HTTP. Every way either can fail
is one `Failure` saying what failed, where, and what to try."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from .exits import Exit, Failure
from .logs import redact_url
from .model import (
    PUBLISH_PATH,
    RETRACT_PATH,
    InvalidInput,
    PublishRequest,
    decode_publish_request,
    decode_retract_request,
)

HTTP_TIMEOUT_SECONDS = 10.0
NATS_CONNECT_TIMEOUT_SECONDS = 2.0
# Where a field of the publish or retract body comes from on the command line.
FLAGS = {
    "recipients": "--user",
    "keys": "--key",
    "ids": "--id",
    "kind": "--kind",
    "subject_id": "--subject-id",
    "text": "--text",
    "actor_id": "--actor-id",
    "meta": "--meta",
    "key": "--key",
    "expires_at": "--expires-at",
}
START_HINT = "start it with `tocsin serve`"


def flag_of(field: str | None) -> str | None:
    """The flag that gave the field at the JSON path `field` (`$.recipients[0]`: `--user`)."""
    name = (field or "").removeprefix("$.").split("[")[0].split(".")[0]
    return FLAGS.get(name)


async def publish(args: argparse.Namespace, mint: Callable[[], str]) -> int:
    """Publish what `args` describe; print the notification's id."""
    request: dict[str, Any] = {
        "recipients": [args.user],
        "kind": args.kind,
        "subject_id": args.subject_id,
        "text": args.text,
        "actor_id": args.actor_id,
        "meta": {} if args.meta is None else args.meta,
        "key": args.key,
        "expires_at": args.expires_at,
    }
    try:
        body = decode_publish_request(json.dumps(request).encode())
    except InvalidInput as err:
        raise _invalid(err) from None
    if args.nats_urls or args.nats:
        ids = await _natively(_nats_urls(args), args.stream, body)
    else:
        answer = await _post(
            args.url,
            PUBLISH_PATH,
            mint(),
            request,
            202,
            "the notification",
            "--url (or --nats to publish natively)",
        )
        ids = answer["ids"]
    print(ids[0])
    return Exit.OK


async def retract(args: argparse.Namespace, mint: Callable[[], str]) -> int:
    """Retract what `args` name (`--user` with `--key`s, or `--id`s) through tocsin's
    `POST /notifications/retract`; print the id of each notification it retracted."""
    request: dict[str, Any] = {}
    if args.user is not None:
        request["recipients"] = [args.user]
    if args.key:
        request["keys"] = list(args.key)
    if args.id:
        request["ids"] = list(args.id)
    try:
        decode_retract_request(json.dumps(request).encode())
    except InvalidInput as err:
        raise _invalid(err) from None
    answer = await _post(args.url, RETRACT_PATH, mint(), request, 200, "the retraction", "--url")
    retracted: list[str] = answer["retracted"]
    for notification_id in retracted:
        print(notification_id)
    if not retracted:
        print("tocsin retract: nothing live matched: no notification retracted", file=sys.stderr)
    return Exit.OK


def _invalid(err: InvalidInput) -> Failure:
    """A refusal of what the flags describe, naming the flag at fault."""
    flag = flag_of(err.field)
    return Failure(Exit.INVALID, f"{err.message}{f' ({flag})' if flag else ''}")


def _nats_urls(args: argparse.Namespace) -> tuple[str, ...]:
    from .embedded import NATS_URL_FILE, read_url

    if args.nats_urls:
        return tuple(args.nats_urls)
    noted = read_url(args.data_dir)
    if noted is None:
        raise Failure(
            Exit.NATS_UNREACHABLE,
            f"--nats found no embedded NATS: {args.data_dir / NATS_URL_FILE} does not exist; "
            f"{START_HINT} (without --nats-url) in this directory, pass its --data-dir, "
            "or give --nats-url",
        )
    return (noted,)


async def _natively(urls: tuple[str, ...], stream: str, body: PublishRequest) -> list[str]:
    import nats
    import nats.errors

    from .publisher import Publisher
    from .store import StoreUnavailable

    where = ", ".join(redact_url(url) for url in urls)
    problems: list[str] = []

    async def noted(err: Exception) -> None:
        problems.append(str(err) or type(err).__name__)

    try:
        # One attempt per server, no reconnecting: a command reports and ends.
        nc = await nats.connect(
            servers=list(urls),
            name="tocsin-publish",
            allow_reconnect=False,
            max_reconnect_attempts=1,
            connect_timeout=NATS_CONNECT_TIMEOUT_SECONDS,
            error_cb=noted,
        )
    except (OSError, TimeoutError, nats.errors.Error) as err:
        reason = problems[-1] if problems else str(err) or type(err).__name__
        raise Failure(
            Exit.NATS_UNREACHABLE,
            f"NATS is not reachable at {where} ({reason}); is tocsin serve (or your NATS) "
            "running there?",
        ) from None
    try:
        publisher = await Publisher.connect(nc, stream)
        return await publisher.publish(body.recipients, body.body())
    except StoreUnavailable as err:
        raise Failure(
            Exit.UNAVAILABLE,
            f"NATS at {where} did not store the notification ({err}); tocsin serve creates "
            f"the stream {stream} when it starts: is it running against this NATS?",
        ) from None
    finally:
        await nc.close()


async def _post(
    url: str,
    path: str,
    token: str,
    request: dict[str, Any],
    success: int,
    asked: str,
    elsewhere: str,
) -> dict[str, Any]:
    """POST `request` (`asked`: what it is, in words) to tocsin's `path`; its JSON answer
    when the status is `success`. `elsewhere`: the flags that point the command at
    another tocsin, said when none answers."""
    import httpx

    endpoint = url.rstrip("/") + path
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS) as client:
            response = await client.post(
                endpoint, json=request, headers={"Authorization": f"Bearer {token}"}
            )
    except (httpx.UnsupportedProtocol, httpx.InvalidURL):
        raise Failure(Exit.USAGE, f"--url {url} is not an http:// or https:// URL") from None
    except httpx.TimeoutException:
        raise Failure(
            Exit.TOCSIN_UNREACHABLE,
            f"tocsin at {url} did not answer within {HTTP_TIMEOUT_SECONDS:g} s; is it overloaded "
            "or stopped?",
        ) from None
    except httpx.HTTPError as err:
        raise Failure(
            Exit.TOCSIN_UNREACHABLE,
            f"tocsin is not reachable at {url} ({err or type(err).__name__}); {START_HINT}, "
            f"or pass {elsewhere}",
        ) from None
    if response.status_code == success:
        answer: dict[str, Any] = response.json()
        return answer
    raise answer_failure(response.status_code, response.text, response.headers, endpoint, asked)


def answer_failure(
    status: int, text: str, headers: Any, endpoint: str, asked: str = "the notification"
) -> Failure:
    """The failure an HTTP answer other than success stands for; `asked`: what a 422
    refused."""
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    error = answer.get("error") if isinstance(answer, dict) else None
    field = answer.get("field") if isinstance(answer, dict) else None
    said = error or text.strip()[:200] or "no reason given"
    if status in (401, 403):
        return Failure(
            Exit.TOKEN_REFUSED,
            f"tocsin refused the token ({status}: {said}); sign with the key `tocsin serve` "
            "uses: the same --data-dir, or the same --jwt-secret",
        )
    if status == 422:
        flag = flag_of(field)
        at = ", ".join(x for x in (flag, f"at {field}" if field else None) if x)
        return Failure(Exit.INVALID, f"tocsin refused {asked}: {said}{f' ({at})' if at else ''}")
    if status == 404:
        return Failure(Exit.REFUSED, f"{endpoint} answered 404: is --url a tocsin?")
    if 400 <= status < 500:
        where = f" at {field}" if field else ""
        return Failure(Exit.REFUSED, f"tocsin answered {status}: {said}{where}")
    retry = headers.get("retry-after") if headers is not None else None
    again = f"; try again in {retry} s" if retry else ""
    return Failure(Exit.UNAVAILABLE, f"tocsin answered {status}: {said}{again}")
