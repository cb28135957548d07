"""Cross-origin access for the configured origins: credentialed CORS and preflight answers."""

from __future__ import annotations

from collections.abc import Iterable

from quart import Quart, Response, request

ALLOWED_METHODS = "GET, POST, PUT"
ALLOWED_HEADERS = "Authorization, Content-Type, Last-Event-ID, Idempotency-Key"
EXPOSED_HEADERS = "Retry-After"
MAX_AGE_SECONDS = 600


_DEFAULT_PORTS = {"http": "80", "https": "443"}


def normalize_origin(origin: str) -> str:
    """An origin as browsers send it: no trailing slash, scheme and host in lower case, and
    no port where it is the scheme's default."""
    value = origin.strip().rstrip("/").lower()
    scheme, _, rest = value.partition("://")
    default = _DEFAULT_PORTS.get(scheme)
    if default is not None and rest.endswith(":" + default):
        value = value[: -len(default) - 1]
    return value


class Cors:
    """Which origins may call tocsin with credentials, and the headers that say so."""

    def __init__(self, origins: Iterable[str]) -> None:
        # Exact matches only: with credentials allowed, a wildcard would hand every
        # site on the web its visitors' notifications.
        self.origins = frozenset(normalize_origin(o) for o in origins if o.strip())

    def allows(self, origin: str | None) -> bool:
        """Whether a request from `origin` may read tocsin's answers."""
        return origin is not None and normalize_origin(origin) in self.origins

    def preflight(self, origin: str) -> Response:
        """The `204` answer to an allowed origin's preflight `OPTIONS`."""
        response = Response("", status=204)
        del response.headers["Content-Type"]
        response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = str(MAX_AGE_SECONDS)
        return self.decorate(response, origin)

    def headers(
        self, origin: str | None, *, vary: str = "", preflight: bool = False
    ) -> list[tuple[str, str]]:
        """The headers an answer to `origin` gets: `Vary: Origin` unless `vary` names it, and
        the CORS headers if `origin` is allowed; none at all when no origin is configured."""
        if not self.origins:
            return []
        headers = []
        if "origin" not in {v.strip().lower() for v in vary.split(",")}:
            headers.append(("Vary", "Origin"))
        if origin is not None and self.allows(origin):
            headers.append(("Access-Control-Allow-Origin", origin))
            headers.append(("Access-Control-Allow-Credentials", "true"))
            if not preflight:
                headers.append(("Access-Control-Expose-Headers", EXPOSED_HEADERS))
        return headers

    def decorate(self, response: Response, origin: str | None) -> Response:
        """Add the CORS headers for `origin` if it is allowed; `Vary: Origin` either way."""
        preflight = "Access-Control-Allow-Methods" in response.headers
        vary = response.headers.get("Vary", "")
        for name, value in self.headers(origin, vary=vary, preflight=preflight):
            if name == "Vary":
                response.headers.add(name, value)
            else:
                # Set, not added: a preflight answer passes here twice.
                response.headers[name] = value
        return response


def install_cors(app: Quart, origins: Iterable[str]) -> Cors:
    """Answer preflights and decorate every response for `origins`; nothing if there are none."""
    cors = Cors(origins)
    if not cors.origins:
        return cors

    @app.before_request
    async def answer_preflight() -> Response | None:
        origin = request.headers.get("Origin")
        is_preflight = (
            request.method == "OPTIONS"
            and "Access-Control-Request-Method" in request.headers
            and cors.allows(origin)
        )
        if is_preflight:
            assert origin is not None
            return cors.preflight(origin)
        return None

    @app.after_request
    async def add_cors_headers(response: Response) -> Response:
        return cors.decorate(response, request.headers.get("Origin"))

    return cors
