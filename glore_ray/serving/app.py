"""The GLoRe HTTP service (docs/architecture.md §7): one FastAPI ingress composing five model deployments.

    POST /v1/refine     draft -> ORM (when) -> SORM (where) -> global || local (how) -> ORM rerank
    POST /v1/score      the ORM's and SORM's score at every step of given solutions, and the first
                        step under a threshold (one solution, or a batch of them)
    GET  /healthz       liveness (never needs a token)
    GET  /v1/config     the serve and refine config in effect
    GET  /openapi.json  the HTTP contract

With ``serve.auth_token_env`` set, every route but ``/healthz`` needs ``Authorization: Bearer
<token>`` (serving/auth.py). /openapi.json states the limits the service enforces.

Build it with ``build_app(cfg, loaders)`` (tests pass small real models), or from a config file:
``serve run glore_ray.serving.launch:app_builder config=configs/tiny.yaml`` / ``serve deploy
configs/serve.yaml``. Nothing here starts Serve at import time.

No ``from __future__ import annotations`` here: FastAPI must resolve the route annotations
(RefineRequest) at runtime, and Serve's ingress wrapper hides the module globals from it.
"""


import asyncio
import copy
import dataclasses
import time
from collections.abc import Callable, Mapping

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError
from starlette.exceptions import HTTPException as StarletteHTTPException

from glore_ray.config import Config, RefineConfig, ServeConfig
from glore_ray.decide import Candidate, decide, first_bad_step, refine_plan, should_refine
from glore_ray.decide.when import final_score
from glore_ray.serving import auth
from glore_ray.serving.deployments import GeneratorDeployment, ScorerDeployment
from glore_ray.serving.schemas import (
    CandidateOut,
    ErrorResponse,
    RefineOptions,
    RefineRequest,
    RefineResponse,
    ScoreBatchRequest,
    ScoreRequest,
    ScoreResponse,
    StepScoresOut,
)
from glore_ray.tasks.prompts import student_prompt
from glore_ray.tasks.steps import split_steps

MODELS = ("student", "orm", "sorm", "global_refiner", "local_refiner")
DEPLOYMENT_NAMES = {"student": "Student", "orm": "ORM", "sorm": "SORM",
                    "global_refiner": "GlobalRefiner", "local_refiner": "LocalRefiner"}
# Every status the routes send besides 200 (400: a body that is not JSON at all, FastAPI's own).
_ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 413, 422, 503, 504)}
_AUTH_ERRORS = {401: {"model": ErrorResponse}}

# openapi_url=None: the ingress serves /openapi.json itself, behind the token when one is set.
api = FastAPI(title="glore-ray", version="0.1.0", openapi_url=None, docs_url=None, redoc_url=None,
              description="GLoRe (Havrilla et al., ICML 2024): when, where and how to refine a math solution.")


@api.exception_handler(RequestValidationError)
async def _invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
    # Only location, message and type: the raw input may be non-UTF-8 bytes that JSON can't carry.
    detail = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
              for e in err.errors()]
    summary = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in detail[:5])
    return JSONResponse(status_code=422, content={"error": f"invalid request: {summary}", "detail": detail})


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
    # err.headers carries Allow on a 405 (RFC 9110) and WWW-Authenticate on a 401.
    return JSONResponse(status_code=err.status_code, content={"error": str(err.detail)}, headers=err.headers)


class ModelCallError(Exception):
    """A model stage failed (503) or ran out of time (504)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# Everything GloreIngress uses is defined above it: Serve pickles the class by value when the
# decorators run, so a helper defined later in this module would be missing in the replica.
def _first_line(err: Exception) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return (lines[-1] if lines else type(err).__name__)[:300]


def _candidate_out(c: Candidate) -> CandidateOut:
    return CandidateOut(kind=c.kind, text=c.text, score=c.score, step_scores=list(c.step_scores), answer=c.answer)


def _check_length(name: str, text: str, limit: int) -> None:
    if len(text) > limit:
        raise HTTPException(413, f"{name} has {len(text)} characters; the limit is {limit}")


def _constrain(prop: dict, type_name: str, **keywords) -> None:
    """Add JSON Schema ``keywords`` to the ``type_name`` branch of a property (itself, or the
    matching branch of an ``anyOf`` such as ``string | null``)."""
    branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") == type_name]
    if not branches:
        raise ValueError(f"no {type_name} branch in schema property {prop}")
    branches[0].update(keywords)


@serve.deployment
@serve.ingress(api)
class GloreIngress:
    def __init__(self, student, orm, sorm, global_refiner, local_refiner,
                 serve_cfg: ServeConfig, refine_cfg: RefineConfig, auth_digest: str | None = None):
        self.models = {"student": student, "orm": orm, "sorm": sorm, "global": global_refiner, "local": local_refiner}
        self.serve_cfg, self.refine_cfg = serve_cfg, refine_cfg
        auth.configure(auth_digest)  # None: no authentication (serving/auth.py)
        self._schema: dict | None = None  # /openapi.json, with this service's limits

    @api.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok"}

    @api.get("/openapi.json", include_in_schema=False, dependencies=[Depends(auth.require_token)])
    async def openapi(self, request: Request) -> JSONResponse:
        if self._schema is None:  # the config is fixed for the replica's life: build it once
            self._schema = self._contract(request.app.openapi())
        return JSONResponse(self._schema)

    @api.get("/v1/config", responses=_AUTH_ERRORS, dependencies=[Depends(auth.require_token)])
    async def config(self) -> dict:
        return {"serve": dataclasses.asdict(self.serve_cfg), "refine": dataclasses.asdict(self.refine_cfg)}

    @api.post("/v1/refine", response_model=RefineResponse, responses=_ERRORS,
              dependencies=[Depends(auth.require_token)])
    async def refine(self, body: RefineRequest) -> RefineResponse:
        self._check_limits(body)
        options = self._resolve(body.options)
        deadline = time.monotonic() + self.serve_cfg.request_timeout_s
        try:
            return await self._pipeline(body, options, deadline)
        except ModelCallError as err:
            raise HTTPException(err.status, str(err)) from None

    @api.post("/v1/score", response_model=ScoreResponse, responses=_ERRORS,
              dependencies=[Depends(auth.require_token)])
    async def score(self, body: ScoreRequest | ScoreBatchRequest) -> ScoreResponse:
        """Each step's ORM and SORM scores and the first step under the threshold, for one solution
        or a batch (the ORM and SORM deployments batch them with other requests' work)."""
        start, timings = time.monotonic(), {}
        items = body.items if isinstance(body, ScoreBatchRequest) else [body]
        self._check_score_limits(items)
        threshold = self.refine_cfg.where_threshold if body.options.threshold is None else body.options.threshold
        use_orm = body.options.use_orm_for_where
        use_orm = self.refine_cfg.use_orm_for_where if use_orm is None else use_orm
        prompts, solutions = [student_prompt(i.question) for i in items], [i.solution for i in items]
        deadline = start + self.serve_cfg.request_timeout_s
        t0 = time.monotonic()
        try:
            orm, sorm = await asyncio.gather(self._call("score", deadline, "orm", "score_all", prompts, solutions),
                                             self._call("score", deadline, "sorm", "score_all", prompts, solutions))
        except ModelCallError as err:
            raise HTTPException(err.status, str(err)) from None
        timings["score"] = (time.monotonic() - t0) * 1000
        results = [StepScoresOut(steps=split_steps(s), orm=o, sorm=w, orm_final=final_score(o),
                                 first_bad_step=first_bad_step(o if use_orm else w, threshold))
                   for s, o, w in zip(solutions, orm, sorm, strict=True)]
        timings["total"] = (time.monotonic() - start) * 1000
        return ScoreResponse(results=results, threshold=threshold, where_model="orm" if use_orm else "sorm",
                             timings_ms={k: round(v, 3) for k, v in timings.items()})

    # ---------------------------------------------------------------- request checks

    def _check_score_limits(self, items) -> None:
        cfg = self.serve_cfg
        if len(items) > cfg.max_score_items:
            raise HTTPException(413, f"{len(items)} items; the limit is {cfg.max_score_items} a request")
        for n, item in enumerate(items):
            _check_length(f"items[{n}].question", item.question, cfg.max_question_chars)
            _check_length(f"items[{n}].solution", item.solution, cfg.max_draft_chars)

    def _contract(self, schema: dict) -> dict:
        """The OpenAPI document with this service's limits (what ``_check_limits`` enforces) and,
        when a token is configured, the bearer security scheme."""
        schema = copy.deepcopy(schema)
        cfg, shapes = self.serve_cfg, schema["components"]["schemas"]
        request, options = shapes["RefineRequest"]["properties"], shapes["RefineOptions"]["properties"]
        _constrain(request["question"], "string", maxLength=cfg.max_question_chars)
        _constrain(request["draft"], "string", maxLength=cfg.max_draft_chars)
        _constrain(options["max_new_tokens"], "integer", maximum=cfg.max_new_tokens_limit)
        for shape in ("ScoreItem", "ScoreRequest"):
            _constrain(shapes[shape]["properties"]["question"], "string", maxLength=cfg.max_question_chars)
            _constrain(shapes[shape]["properties"]["solution"], "string", maxLength=cfg.max_draft_chars)
        _constrain(shapes["ScoreBatchRequest"]["properties"]["items"], "array", maxItems=cfg.max_score_items)
        return auth.with_security(schema) if auth.enabled() else schema

    def _check_limits(self, body: RefineRequest) -> None:
        cfg = self.serve_cfg
        _check_length("question", body.question, cfg.max_question_chars)
        if body.draft is not None:
            _check_length("draft", body.draft, cfg.max_draft_chars)
        asked = body.options.max_new_tokens
        if asked is not None and asked > cfg.max_new_tokens_limit:
            raise HTTPException(422, f"options.max_new_tokens = {asked} is above the limit {cfg.max_new_tokens_limit}")

    def _resolve(self, options: RefineOptions) -> RefineOptions:
        """The request's options over the service's refine config: every field set."""
        cfg = self.refine_cfg
        defaults = {"when_threshold": cfg.when_threshold, "where_threshold": cfg.where_threshold,
                    "use_orm_for_where": cfg.use_orm_for_where,
                    "max_new_tokens": min(cfg.max_new_tokens, self.serve_cfg.max_new_tokens_limit)}
        return RefineOptions(**(defaults | options.model_dump(exclude_none=True)))

    # ---------------------------------------------------------------- the policy over HTTP

    async def _pipeline(self, body: RefineRequest, opt: RefineOptions, deadline: float) -> RefineResponse:
        timings: dict[str, float] = {}
        start = time.monotonic()
        prompt = student_prompt(body.question)
        draft = body.draft
        if draft is None:
            draft = await self._timed(timings, "draft", deadline, "student", "generate", prompt, opt.max_new_tokens)
        orm_scores = await self._timed(timings, "orm_draft", deadline, "orm", "score", prompt, draft)
        where_scores, where_model = None, None
        if should_refine(final_score(orm_scores), opt.when_threshold):  # when (paper 4.2)
            where_model = "orm" if opt.use_orm_for_where else "sorm"
            where_scores = orm_scores if opt.use_orm_for_where else await self._timed(
                timings, "where", deadline, "sorm", "score", prompt, draft)
        try:
            plan = refine_plan(body.question, draft, orm_scores, where_scores, opt.when_threshold, opt.where_threshold)
        except ValueError as err:  # scores inconsistent with the draft: a model fault, not the client's
            raise ModelCallError(503, f"policy could not use the model scores: {err}") from None
        solutions, scores = await self._refinements(plan, prompt, opt, deadline, timings) if plan.refine else ({}, {})
        decision = decide(plan, solutions, scores)
        timings["total"] = (time.monotonic() - start) * 1000
        return RefineResponse(
            answer=decision.answer, chosen=_candidate_out(decision.chosen),
            candidates=[_candidate_out(c) for c in decision.candidates], refined=decision.refined,
            draft_score=decision.draft_score, draft_source="request" if body.draft is not None else "student",
            bad_step=decision.bad_step, where_model=where_model, where_scores=list(where_scores or []),
            options=opt, timings_ms={k: round(v, 3) for k, v in timings.items()})

    async def _refinements(self, plan, prompt: str, opt: RefineOptions, deadline: float, timings: dict):
        """How: global and (when a bad step was found) local refinement concurrently, then the ORM
        scores both in one call."""
        kinds = list(plan.prompts)
        outputs = await self._timed_all(timings, "refine", deadline, [
            (kind, "generate", plan.prompts[kind], opt.max_new_tokens) for kind in kinds])
        solutions = {kind: plan.solution(kind, out) for kind, out in zip(kinds, outputs)}
        scores = await self._timed(timings, "orm_refinements", deadline, "orm", "score_all",
                                   [prompt] * len(kinds), [solutions[kind] for kind in kinds])
        return solutions, dict(zip(kinds, scores))

    async def _timed(self, timings, stage, deadline, model, method, *args):
        t0 = time.monotonic()
        try:
            return await self._call(stage, deadline, model, method, *args)
        finally:
            timings[stage] = (time.monotonic() - t0) * 1000

    async def _timed_all(self, timings, stage, deadline, calls):
        t0 = time.monotonic()
        try:
            return await asyncio.gather(*(self._call(stage, deadline, m, meth, *a) for m, meth, *a in calls))
        finally:
            timings[stage] = (time.monotonic() - t0) * 1000

    async def _call(self, stage: str, deadline: float, model: str, method: str, *args):
        """One model call under the request's deadline; a replica that died is retried (Serve
        restarts it and routes to a live one), any other model error is a 503."""
        handle = getattr(self.models[model], method)
        for attempt in range(self.serve_cfg.model_retries + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ModelCallError(504, f"request timed out before stage {stage!r} ({self.serve_cfg.request_timeout_s}s limit)")
            try:
                return await asyncio.wait_for(handle.remote(*args), timeout=remaining)
            except asyncio.TimeoutError:
                raise ModelCallError(504, f"stage {stage!r} ({model}) timed out "
                                      f"({self.serve_cfg.request_timeout_s}s request limit)") from None
            except (RayActorError, BackPressureError) as err:
                if attempt == self.serve_cfg.model_retries:
                    raise ModelCallError(503, f"stage {stage!r} ({model}) unavailable: {type(err).__name__}") from None
                await asyncio.sleep(0.2 * (attempt + 1))
            except Exception as err:  # noqa: BLE001 - any model failure is reported, the replica lives on
                raise ModelCallError(503, f"stage {stage!r} ({model}) failed: {_first_line(err)}") from None


# --------------------------------------------------------------------------------------------
# Building the application


def replica_cpus(serve_cfg: ServeConfig, model: str) -> float:
    spec = getattr(serve_cfg, model)
    return serve_cfg.cpus_per_replica if spec.cpus is None else spec.cpus


def resource_demand(serve_cfg: ServeConfig) -> dict[str, float]:
    """CPUs and GPUs the app's replicas reserve together (Serve's controller and proxy reserve none)."""
    cpus = serve_cfg.ingress_replicas * serve_cfg.ingress_cpus
    gpus = 0.0
    for model in MODELS:
        options = _model_options(serve_cfg, model)
        cpus += options["num_replicas"] * options["ray_actor_options"]["num_cpus"]
        gpus += options["num_replicas"] * options["ray_actor_options"]["num_gpus"]
    return {"CPU": cpus, "GPU": gpus}


def _model_options(serve_cfg: ServeConfig, model: str) -> dict:
    spec = getattr(serve_cfg, model)
    gpus = serve_cfg.gpus_per_replica if spec.gpus is None else spec.gpus
    return {"name": DEPLOYMENT_NAMES[model], "num_replicas": spec.replicas or serve_cfg.replicas,
            "ray_actor_options": {"num_cpus": replica_cpus(serve_cfg, model), "num_gpus": gpus},
            "max_ongoing_requests": serve_cfg.max_ongoing_requests}


def build_app(cfg: Config, loaders: Mapping[str, Callable[[], object]]):
    """The Serve application: ``GloreIngress.bind(<five model deployments>, configs)``.

    ``loaders`` maps student, orm, sorm, global_refiner, local_refiner to picklable callables that
    return the model objects inside each replica.
    """
    missing = [m for m in MODELS if m not in loaders]
    unknown = sorted(set(loaders) - set(MODELS))
    if missing or unknown:
        raise ValueError(f"loaders need exactly {list(MODELS)}; missing {missing}, unknown {unknown}")
    s = cfg.serve
    batching = (s.batch_max_size, s.batch_wait_timeout_s)
    bound = {}
    for model in MODELS:
        kind = ScorerDeployment if model in ("orm", "sorm") else GeneratorDeployment
        bound[model] = kind.options(**_model_options(s, model)).bind(loaders[model], *batching)
    ingress = GloreIngress.options(num_replicas=s.ingress_replicas, ray_actor_options={"num_cpus": s.ingress_cpus},
                                   max_ongoing_requests=s.ingress_max_ongoing_requests)
    return ingress.bind(*(bound[m] for m in MODELS), s, cfg.refine, auth.digest_from_env(s.auth_token_env))
