"""Who a request speaks for: its token from the Authorization header, cookie or query."""

from __future__ import annotations

from hypercorn.typing import WWWScope

from .auth import TOKEN_COOKIE, Principal, Unauthorized, Verifier, check_query_lifetime
from .scope import cookie, header, query


async def authenticate(verifier: Verifier, scope: WWWScope, *, allow_query: bool) -> Principal:
    """The principal of the first token present (header, cookie, then `?token=` if allowed).

    Raise `Unauthorized` when there is none or it is not valid; `KeysUnavailable`
    when the signing keys cannot be fetched.
    """
    authorization = header(scope, b"authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization header must be 'Bearer <token>'")
        return await verifier.verify(token.strip())
    from_cookie = cookie(scope, TOKEN_COOKIE)
    if from_cookie:
        return await verifier.verify(from_cookie)
    from_query = query(scope, "token") if allow_query else None
    if from_query:
        principal = await verifier.verify(from_query)
        check_query_lifetime(principal)
        return principal
    raise Unauthorized("no token: send 'Authorization: Bearer <jwt>' or the tocsin_token cookie")
