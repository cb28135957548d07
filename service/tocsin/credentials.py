"""Who a request speaks for: its token from the Authorization header, cookie or query."""

from __future__ import annotations

from hypercorn.typing import WWWScope

from .auth import TOKEN_COOKIE, Principal, Unauthorized, Verifier, check_query_lifetime
from .scope import cookie, header, query

HEADER, COOKIE, QUERY = "header", "cookie", "query"


def credential(scope: WWWScope, *, allow_query: bool) -> tuple[str, str] | None:
    """Where the request's token is and what it says: the first of the Authorization header
    (even a malformed one), the cookie, then `?token=` if allowed; None without any."""
    authorization = header(scope, b"authorization")
    if authorization is not None:
        return HEADER, authorization
    from_cookie = cookie(scope, TOKEN_COOKIE)
    if from_cookie:
        return COOKIE, from_cookie
    from_query = query(scope, "token") if allow_query else None
    if from_query:
        return QUERY, from_query
    return None


async def authenticate(verifier: Verifier, scope: WWWScope, *, allow_query: bool) -> Principal:
    """The principal of the request's token (see `credential`).

    Raise `Unauthorized` when there is none or it is not valid; `KeysUnavailable`
    when the signing keys cannot be fetched.
    """
    found = credential(scope, allow_query=allow_query)
    if found is None:
        raise Unauthorized(
            "no token: send 'Authorization: Bearer <jwt>' or the tocsin_token cookie"
        )
    source, value = found
    if source == HEADER:
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization header must be 'Bearer <token>'")
        return await verifier.verify(token.strip())
    principal = await verifier.verify(value)
    if source == QUERY:
        check_query_lifetime(principal)
    return principal
