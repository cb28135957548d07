"""JSON Web Tokens: who a request speaks for, and minting tokens with tocsin's own key."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt.algorithms import HMACAlgorithm
from jwt.api_jws import PyJWS

from .model import is_user_id

SECRET_FILE = "jwt-secret"
# The cookie browsers carry their token in (contract §5).
TOKEN_COOKIE = "tocsin_token"
QUERY_TOKEN_MAX_LIFETIME = 300
LEEWAY = 5
VERIFIED_CACHE_SIZE = 10_000
VERIFIED_CACHE_SECONDS = 60.0
PUBLISH_SCOPE = "publish"
_ASYMMETRIC = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "EdDSA"]


class Unauthorized(Exception):
    """No usable token: answer 401."""


class Forbidden(Exception):
    """A valid token that may not do this: answer 403."""


class KeysUnavailable(Exception):
    """The JWKS endpoint cannot be reached: nothing is known about the token yet, so the
    answer is "retry later" (never a 401, which would end a browser's EventSource)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """What a verified token says."""

    user: str | None
    scopes: frozenset[str]
    expires_at: float | None
    issued_at: float | None

    def subscriber(self) -> str:
        """The user this token may read for; raise `Unauthorized` without one."""
        if self.user is None:
            raise Unauthorized("token has no valid user id in 'sub'")
        return self.user

    def require_publisher(self) -> None:
        """Raise `Forbidden` unless the token carries the publish scope."""
        if PUBLISH_SCOPE not in self.scopes:
            raise Forbidden("token lacks the 'publish' scope")


def load_or_create_secret(data_dir: Path) -> tuple[str, bool]:
    """The HS256 secret kept in the data dir, made on first use; and whether it was just made."""
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_text().strip(), False
    data_dir.mkdir(parents=True, exist_ok=True)
    # Written whole under a private name, then linked into place: of two processes
    # starting at once, one links its secret and both read it, never a half-written file.
    draft = data_dir / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(48) + "\n")
    try:
        os.link(draft, path)
        created = True
    except FileExistsError:
        created = False
    finally:
        draft.unlink()
    return path.read_text().strip(), created


class _SecretHmac(HMACAlgorithm):
    """HS256 for tocsin's one shared secret, its key checked once.

    PyJWT 2.15 checks the key it is given on every verification (not empty, not PEM,
    SSH or DER, not a JWK as JSON): a JSON parse with a decoder made for the call, a DER
    parse and two pattern matches, about half of verifying a token. Opening 15,000
    streams, each with a token of its own, verifying took 28% of a worker's CPU (py-spy),
    over half of it this check. The secret never changes: it is checked once, here, as
    PyJWT would, and any other key is checked as PyJWT does."""

    def __init__(self, secret: str) -> None:
        super().__init__(HMACAlgorithm.SHA256)
        self._secret = secret
        try:
            self._prepared: bytes | None = super().prepare_key(secret)
        except jwt.InvalidKeyError:
            self._prepared = None  # refused at each verification, as before

    def prepare_key(self, key: str | bytes) -> bytes:
        if key is self._secret and self._prepared is not None:
            return self._prepared
        return super().prepare_key(key)


def _hs256_decoder(secret: str) -> jwt.PyJWT:
    """A PyJWT whose HS256 checks `secret` once (`_SecretHmac`); its other algorithms and
    every check of a token are PyJWT's own."""
    decoder = jwt.PyJWT()
    jws: PyJWS = decoder._jws  # PyJWT's own signature layer, as its module-level one is set
    jws.unregister_algorithm("HS256")
    jws.register_algorithm("HS256", _SecretHmac(secret))
    return decoder


class Verifier:
    """Checks tokens against one configured key: a shared secret, a public key, or a JWKS."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        jwks_url: str | None = None,
    ) -> None:
        if sum(x is not None for x in (secret, public_key, jwks_url)) != 1:
            raise ValueError("configure exactly one of a JWT secret, public key or JWKS URL")
        self.secret = secret
        self._public_key = public_key
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True) if jwks_url else None
        self._decoder = _hs256_decoder(secret) if secret is not None else jwt.PyJWT()
        # token -> (principal, when verified): a token seen again (every publish of a
        # service, a browser's reconnects) skips decoding it, 22.5 us even with the
        # secret checked once (`_SecretHmac`).
        self._verified: dict[str, tuple[Principal, float]] = {}

    async def verify(self, token: str) -> Principal:
        """The principal of a valid token; raise `Unauthorized` for anything else."""
        now = time.time()
        cached = self._verified.get(token)
        if cached is not None:
            principal, verified_at = cached
            # As jwt.decode would judge it now (same leeway); re-verified now and then.
            expired = principal.expires_at is not None and principal.expires_at <= now - LEEWAY
            if not expired and now - verified_at < VERIFIED_CACHE_SECONDS:
                return principal
            del self._verified[token]
        try:
            if self._jwks is not None:
                signing_key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
                claims = self._decode(token, signing_key.key, _ASYMMETRIC)
            elif self._public_key is not None:
                claims = self._decode(token, self._public_key, _ASYMMETRIC)
            else:
                assert self.secret is not None
                claims = self._decode(token, self.secret, ["HS256"])
        except jwt.PyJWKClientConnectionError as err:
            raise KeysUnavailable(f"signing keys unavailable: {err}") from None
        except jwt.PyJWTError as err:
            raise Unauthorized(f"invalid token: {err}") from None
        principal = _principal(claims)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (principal, now)
        return principal

    def _decode(self, token: str, key: Any, algorithms: list[str]) -> dict[str, Any]:
        claims: dict[str, Any] = self._decoder.decode(
            token,
            key,
            algorithms=algorithms,
            options={"verify_aud": False},
            leeway=LEEWAY,
        )
        return claims

    def mint(self, claims: dict[str, Any]) -> str:
        """Sign `claims` with the shared secret."""
        if self.secret is None:
            raise ValueError("tokens can only be minted with a shared secret (--jwt-secret)")
        return jwt.encode(claims, self.secret, algorithm="HS256")


def subscriber_claims(user: str, ttl: int) -> dict[str, Any]:
    """Claims of a token that lets `user` read their notifications for `ttl` seconds."""
    if not is_user_id(user):
        raise ValueError("user id must be 1-128 chars of [A-Za-z0-9_-]")
    now = int(time.time())
    return {"sub": user, "iat": now, "exp": now + ttl}


def publisher_claims(ttl: int) -> dict[str, Any]:
    """Claims of a token that may publish notifications for `ttl` seconds."""
    now = int(time.time())
    return {"scope": PUBLISH_SCOPE, "iat": now, "exp": now + ttl}


def check_query_lifetime(principal: Principal) -> None:
    """A token in a URL leaks into logs and history: accept only short-lived ones there."""
    if principal.expires_at is None or principal.issued_at is None:
        raise Unauthorized("a token in the query needs 'iat' and 'exp'")
    if principal.expires_at - principal.issued_at > QUERY_TOKEN_MAX_LIFETIME:
        raise Unauthorized(
            f"a token in the query may live at most {QUERY_TOKEN_MAX_LIFETIME} s; "
            "send longer-lived tokens in the Authorization header or the tocsin_token cookie"
        )


def _principal(claims: dict[str, Any]) -> Principal:
    sub = claims.get("sub")
    scope = claims.get("scope", "")
    scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
    exp = claims.get("exp")
    iat = claims.get("iat")
    return Principal(
        user=sub if isinstance(sub, str) and is_user_id(sub) else None,
        scopes=scopes,
        expires_at=float(exp) if isinstance(exp, int | float) else None,
        issued_at=float(iat) if isinstance(iat, int | float) else None,
    )
