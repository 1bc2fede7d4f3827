"""Optional bearer-token authentication for the GLoRe service (``serve.auth_token_env``).

The token lives in an environment variable where the app is built (``jobs/serve.py``, ``serve
run``); :func:`digest_from_env` turns it into its SHA-256 digest, and only the digest travels to
the ingress replica, so the token is never pickled, stored by Serve or logged. The ingress calls
:func:`configure` once; :func:`require_token` is a route dependency, so it runs before the body is
validated: a request without the token gets 401 whatever its body.

State is per process on purpose: Serve gives each ingress replica a process of its own, and the
route dependency and the ingress both reach this module by import, never by pickled copy.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from fastapi import HTTPException, Request

_digest: str | None = None  # SHA-256 hex of the token; None: no authentication


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def digest_from_env(name: str | None) -> str | None:
    """The digest of the token in the environment variable ``name`` (None when ``name`` is None)."""
    if name is None:
        return None
    token = os.environ.get(name, "").strip()
    if not token:
        raise ValueError(f"serve.auth_token_env names {name}, but that environment variable is unset or empty "
                         "where the app is built: export it (a long random string) or unset serve.auth_token_env")
    return token_digest(token)


def configure(digest: str | None) -> None:
    global _digest
    _digest = digest


def enabled() -> bool:
    return _digest is not None


async def require_token(request: Request) -> None:
    """401 unless ``Authorization: Bearer <token>`` carries the configured token (compared in
    constant time); a no-op when authentication is off."""
    if _digest is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "missing bearer token: send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(token_digest(token.strip()), _digest):
        raise HTTPException(401, "wrong bearer token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def with_security(schema: dict, open_paths: tuple[str, ...] = ("/healthz",)) -> dict:
    """``schema`` (an OpenAPI document) declaring the bearer token on every operation but
    ``open_paths``."""
    components = {**schema.get("components", {}), "securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer", "description": "the token in serve.auth_token_env"}}}
    paths = {path: {method: {**op, "security": [] if path in open_paths else [{"bearer": []}]}
                    for method, op in ops.items()} for path, ops in schema.get("paths", {}).items()}
    return {**schema, "components": components, "paths": paths}
