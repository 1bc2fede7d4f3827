"""The HTTP service's section of the config (``serve:``; docs/architecture.md §7).

Kept apart from ``glore_ray.config`` because it is the one section about serving rather than a
stage of the method; ``glore_ray.config`` re-exports both classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServeDeploymentConfig:
    """One model deployment's Ray resources; None inherits ServeConfig's shared value."""

    replicas: int | None = None  # Serve replicas of this model
    cpus: float | None = None  # CPUs per replica
    gpus: float | None = None  # GPUs per replica (fractions share a GPU)

    def __post_init__(self):
        if self.replicas is not None and self.replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {self.replicas}")
        if (self.cpus is not None and self.cpus < 0) or (self.gpus is not None and self.gpus < 0):
            raise ValueError("cpus and gpus must be >= 0")


@dataclass(frozen=True)
class ServeConfig:
    """The HTTP service (docs/architecture.md §7; Ray roles: one deployment per model plus the ingress)."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_question_chars: int = 2000
    max_draft_chars: int = 8000
    replicas: int = 1
    batch_max_size: int = 16
    batch_wait_timeout_s: float = 0.01
    request_timeout_s: float = 60.0
    cpus_per_replica: float = 0.5
    gpus_per_replica: float = 0.0
    # Per-model overrides of replicas / cpus / gpus (a 13B refiner needs more than a tiny ORM).
    student: ServeDeploymentConfig = field(default_factory=ServeDeploymentConfig)
    orm: ServeDeploymentConfig = field(default_factory=ServeDeploymentConfig)
    sorm: ServeDeploymentConfig = field(default_factory=ServeDeploymentConfig)
    global_refiner: ServeDeploymentConfig = field(default_factory=ServeDeploymentConfig)
    local_refiner: ServeDeploymentConfig = field(default_factory=ServeDeploymentConfig)
    ingress_replicas: int = 1  # the FastAPI ingress only awaits handles: one is plenty on a laptop
    ingress_cpus: float = 0.1
    max_ongoing_requests: int = 64  # per model replica; must be >= batch_max_size or batches never fill
    ingress_max_ongoing_requests: int = 256  # concurrent HTTP requests per ingress replica
    max_new_tokens_limit: int = 1024  # largest max_new_tokens a request may ask for
    max_score_items: int = 64  # solutions a /v1/score request may carry
    model_retries: int = 1  # extra tries of a stage whose replica died (Serve restarts it)
    app_name: str = "glore"  # Serve application name
    route_prefix: str = "/"
    # Ray Serve's throughput-optimized mode (glore_ray/serving/fast_path.py) where we start Ray
    # ourselves; on a running cluster it is set where `ray start` runs.
    throughput_optimized: bool = True
    # Optional authentication: the *name* of an environment variable holding a bearer token (the
    # token itself never goes in a config file). Set: every route but /healthz needs it.
    auth_token_env: str | None = None

    def __post_init__(self):
        if self.batch_max_size < 1 or self.replicas < 1 or self.ingress_replicas < 1:
            raise ValueError("batch_max_size, replicas and ingress_replicas must be >= 1")
        if self.max_ongoing_requests < self.batch_max_size:
            raise ValueError(f"max_ongoing_requests ({self.max_ongoing_requests}) must be >= "
                             f"batch_max_size ({self.batch_max_size})")
        if min(self.max_question_chars, self.max_draft_chars, self.max_new_tokens_limit, self.max_score_items) < 1:
            raise ValueError("max_question_chars, max_draft_chars, max_new_tokens_limit and max_score_items must be >= 1")
        if self.request_timeout_s <= 0 or self.batch_wait_timeout_s < 0 or self.model_retries < 0:
            raise ValueError("need request_timeout_s > 0, batch_wait_timeout_s >= 0, model_retries >= 0")
        name = self.auth_token_env
        if name is not None and not (name and (name[0].isalpha() or name[0] == "_")
                                     and all(ch.isalnum() or ch == "_" for ch in name)):
            raise ValueError(f"auth_token_env must name an environment variable (letters, digits, _), got {name!r}; "
                             "the token itself goes in that variable, never in a config file")
