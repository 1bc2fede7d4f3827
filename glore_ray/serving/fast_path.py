"""Ray Serve's throughput-optimized mode for the GLoRe service (Ray >= 2.55).

The service is a chain of small model calls (draft, ORM, SORM, two refiners, ORM again:
docs/architecture.md §7), so Serve's per-call overhead is a large share of its CPU on a small
machine. Ray's throughput-optimized mode sends inter-deployment calls over gRPC and runs user
code and the router on the replica's own event loop (``bench/serve_load.py --serve-mode``
measures both modes in one session; the README gives the numbers). Direct ingress stays off: it
moves the HTTP port from Serve's proxy to the ingress replica, and our clients, tests and `serve
deploy` config expect the proxy's ``serve.port``.

These are read when Ray's processes import Serve, so they must be in the environment *before*
Ray starts: ``apply()`` before ``ray.init`` for a local cluster, or on the command line of
``ray start`` for a real one (``cluster.yaml`` does that). Nothing here imports Ray.
"""

from __future__ import annotations

import os

ENV = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0"}


def apply(environ: dict | None = None) -> dict[str, str]:
    """Put the throughput-optimized settings into ``environ`` (default ``os.environ``) unless the
    user already chose a value; returns what is in effect."""
    environ = os.environ if environ is None else environ
    for key, value in ENV.items():
        environ.setdefault(key, value)
    return {key: environ[key] for key in ENV}


def apply_if_enabled(serve_cfg) -> None:
    """``apply()`` when ``serve.throughput_optimized`` is on: call it just before starting a local
    Ray (joining a running cluster, it changes nothing there)."""
    if serve_cfg.throughput_optimized:
        apply()
