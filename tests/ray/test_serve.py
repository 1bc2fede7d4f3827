"""The GLoRe service over real HTTP through real Ray Serve (docs/architecture.md §7, issue 8).

One application is deployed for the module on 127.0.0.1 and a free port: a real tiny Llama
(random init) drafts and refines locally, a deterministic arithmetic verifier plays ORM and SORM,
and an arithmetic "fixer" plays the global refiner.
"""

from __future__ import annotations

import functools
import threading
import time

import pytest
import requests

pytestmark = pytest.mark.ray

GOOD = "4 + 5 = 9\n9 * 3 = 27\n#### 27"
BAD = "4 + 5 = 9\n9 * 3 = 28\n#### 28"  # step 1 is wrong
LIMIT_Q, LIMIT_D, LIMIT_ITEMS = 300, 600, 8


@pytest.fixture(scope="module")
def service(ray_cluster, tiny_lm_dir):
    import serve_models
    from ray import cloudpickle, serve

    from glore_ray.config import load_config
    from glore_ray.serving.app import build_app

    cloudpickle.register_pickle_by_value(serve_models)  # replicas can't import the tests folder
    cfg = load_config(None, [
        "serve.cpus_per_replica=0.1", "serve.ingress_cpus=0.1", "serve.student.replicas=2",
        f"serve.max_question_chars={LIMIT_Q}", f"serve.max_draft_chars={LIMIT_D}", f"serve.max_score_items={LIMIT_ITEMS}",
        "serve.request_timeout_s=6", "serve.max_new_tokens_limit=64", "serve.model_retries=2",
        "refine.max_new_tokens=24", "serve.app_name=glore_test"])
    hf = functools.partial(serve_models.hf_triggered, str(tiny_lm_dir), 12.0)
    loaders = {"student": hf, "orm": serve_models.ArithmeticScorer, "sorm": serve_models.ArithmeticScorer,
               "global_refiner": serve_models.ArithmeticFixer, "local_refiner": hf}
    with serve_models.http_serve() as url:
        serve.run(build_app(cfg, loaders), name=cfg.serve.app_name, route_prefix="/")
        yield url


def _refine(url, body, **kw):
    return requests.post(f"{url}/v1/refine", json=body, timeout=60, **kw)


def test_health_config_and_openapi(service):
    r = requests.get(f"{service}/healthz", timeout=10)
    assert r.status_code == 200 and r.json() == {"status": "ok"}, (r.status_code, r.text)
    cfg = requests.get(f"{service}/v1/config", timeout=10).json()
    assert cfg["serve"]["max_question_chars"] == LIMIT_Q and cfg["refine"]["when_threshold"] == 0.5
    schema = requests.get(f"{service}/openapi.json", timeout=10).json()
    assert {"RefineRequest", "RefineResponse", "ErrorResponse"} <= set(schema["components"]["schemas"])


def test_student_draft_is_refined_and_answered_with_trace(service):
    r = _refine(service, {"question": "Tom has 4 apples and buys 5 more. How many?"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["draft_source"] == "student" and body["candidates"][0]["kind"] == "draft"
    chosen = body["chosen"]
    assert body["answer"] == chosen["answer"] and chosen in body["candidates"]
    assert set(body["timings_ms"]) >= {"draft", "orm_draft", "total"}
    # The random tiny LM writes no arithmetic, so the verifier distrusts it and refinement runs.
    assert body["refined"] and body["where_model"] == "sorm" and "refine" in body["timings_ms"]


def test_wrong_draft_gets_bad_step_and_fixed_global_refinement(service):
    body = _refine(service, {"question": "q", "draft": BAD}).json()
    assert body["refined"] and body["bad_step"] == 1 and body["where_scores"] == [0.95, 0.05, 0.05]
    kinds = [c["kind"] for c in body["candidates"]]
    assert kinds == ["draft", "global", "local"]
    assert body["chosen"]["kind"] == "global" and body["answer"] == "27"
    local = body["candidates"][2]["text"]
    assert local.startswith("4 + 5 = 9\n")  # the verified prefix is kept


def test_when_gate_returns_a_trusted_draft_unrefined(service):
    body = _refine(service, {"question": "q", "draft": GOOD}).json()
    assert body["refined"] is False and body["chosen"]["kind"] == "draft" and body["answer"] == "27"
    assert len(body["candidates"]) == 1 and "where" not in body["timings_ms"] and "refine" not in body["timings_ms"]
    # The same draft with the gate opened (score 0.95 <= 1.0) is refined; the ORM locates no bad step.
    body = _refine(service, {"question": "q", "draft": GOOD, "options": {"when_threshold": 1.0}}).json()
    assert body["refined"] and body["bad_step"] is None and [c["kind"] for c in body["candidates"]] == ["draft", "global"]
    body = _refine(service, {"question": "q", "draft": BAD, "options": {"use_orm_for_where": True}}).json()
    assert body["where_model"] == "orm" and body["bad_step"] == 1 and "where" not in body["timings_ms"]


def test_score_returns_every_steps_scores_and_the_first_bad_step(service):
    one = requests.post(f"{service}/v1/score", json={"question": "q", "solution": BAD}, timeout=30)
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["where_model"] == "sorm" and body["threshold"] == 0.5 and set(body["timings_ms"]) == {"score", "total"}
    (result,) = body["results"]
    assert result["steps"] == ["4 + 5 = 9", "9 * 3 = 28", "#### 28"]  # split as the labels split them
    assert result["sorm"] == result["orm"] == [0.95, 0.05, 0.05] and result["orm_final"] == 0.05
    assert result["first_bad_step"] == 1
    batch = requests.post(f"{service}/v1/score", timeout=30, json={
        "items": [{"question": "q", "solution": GOOD}, {"question": "q", "solution": "\n  4 + 5 = 10\n\n#### 10"}],
        "options": {"threshold": 0.01, "use_orm_for_where": True}}).json()
    assert batch["where_model"] == "orm" and batch["threshold"] == 0.01
    assert [r["first_bad_step"] for r in batch["results"]] == [None, None]  # nothing is <= 0.01
    assert batch["results"][1]["steps"] == ["4 + 5 = 10", "#### 10"] and batch["results"][0]["orm_final"] == 0.95
    bad = {"no solution": {"question": "q"}, "blank solution": {"question": "q", "solution": " \n"},
           "empty batch": {"items": []}, "both forms": {"question": "q", "solution": GOOD, "items": []},
           "unknown option": {"question": "q", "solution": GOOD, "options": {"max_new_tokens": 3}},
           "solution too long": {"question": "q", "solution": "1 + 1 = 2\n" * 100},
           "too many items": {"items": [{"question": "q", "solution": GOOD}] * (LIMIT_ITEMS + 1)}}
    statuses = {name: requests.post(f"{service}/v1/score", json=b, timeout=30).status_code for name, b in bad.items()}
    assert statuses == {**{name: 422 for name in bad}, "solution too long": 413, "too many items": 413}, statuses


BAD_REQUESTS = {
    "invalid json": dict(data=b'{"question": ', headers={"content-type": "application/json"}),
    "empty body": dict(data=b"", headers={"content-type": "application/json"}),
    "json array": dict(json=[]),
    "json string": dict(json="what is 2 + 2?"),
    "json null": dict(data=b"null", headers={"content-type": "application/json"}),
    "missing question": dict(json={}),
    "question null": dict(json={"question": None}),
    "question int": dict(json={"question": 123}),
    "question list": dict(json={"question": ["a"]}),
    "question empty": dict(json={"question": ""}),
    "question blank": dict(json={"question": "  \n\t "}),
    "question NUL": dict(json={"question": "a\x00b"}),
    "question too long": dict(json={"question": "x" * (LIMIT_Q + 1)}),
    "non-utf8 bytes": dict(data=b'{"question": "\xff\xfe\xfa"}', headers={"content-type": "application/json"}),
    "plain text": dict(data=b"what is 2 + 2?", headers={"content-type": "text/plain"}),
    "draft int": dict(json={"question": "q", "draft": 5}),
    "draft empty": dict(json={"question": "q", "draft": ""}),
    "draft no steps": dict(json={"question": "q", "draft": "\n \n"}),
    "draft too long": dict(json={"question": "q", "draft": "1 + 1 = 2\n" * 100}),
    "unknown option": dict(json={"question": "q", "options": {"temperature": 0.7}}),
    "unknown field": dict(json={"question": "q", "n": 3}),
    "options not object": dict(json={"question": "q", "options": "fast"}),
    "threshold > 1": dict(json={"question": "q", "options": {"when_threshold": 1.5}}),
    "threshold < 0": dict(json={"question": "q", "options": {"where_threshold": -0.1}}),
    "threshold string": dict(json={"question": "q", "options": {"when_threshold": "0.5"}}),
    "threshold NaN": dict(data=b'{"question": "q", "options": {"when_threshold": NaN}}',
                          headers={"content-type": "application/json"}),
    "bool as string": dict(json={"question": "q", "options": {"use_orm_for_where": "yes"}}),
    "max_new_tokens 0": dict(json={"question": "q", "options": {"max_new_tokens": 0}}),
    "max_new_tokens float": dict(json={"question": "q", "options": {"max_new_tokens": 2.5}}),
    "max_new_tokens over cap": dict(json={"question": "q", "options": {"max_new_tokens": 10_000}}),
}


def test_bad_requests_get_4xx_with_a_message_and_the_service_survives(service):
    statuses = {}
    for name, kwargs in BAD_REQUESTS.items():
        r = requests.post(f"{service}/v1/refine", timeout=30, **kwargs)
        statuses[name] = r.status_code
        assert 400 <= r.status_code < 500, f"{name}: {r.status_code} {r.text[:200]}"
        error = r.json()["error"]
        assert isinstance(error, str) and len(error) > 5, name
    assert len(statuses) >= 20
    assert statuses["question too long"] == 413 and statuses["unknown option"] == 422
    assert "temperature" in requests.post(f"{service}/v1/refine", timeout=30, **BAD_REQUESTS["unknown option"]).text
    # Wrong method / path are 4xx JSON errors too.
    assert requests.get(f"{service}/v1/refine", timeout=10).status_code == 405
    assert requests.get(f"{service}/v1/nope", timeout=10).json()["error"]
    assert _refine(service, {"question": "q", "draft": GOOD}).status_code == 200


def test_model_failure_and_timeout_are_503_and_504_then_service_recovers(service):
    r = _refine(service, {"question": "EXPLODE please"})
    assert r.status_code == 503 and "exploded" in r.json()["error"] and "draft" in r.json()["error"]
    t0 = time.monotonic()
    r = _refine(service, {"question": "SLOW please"})
    assert r.status_code == 504 and "timed out" in r.json()["error"]
    assert time.monotonic() - t0 < 11
    ok = _refine(service, {"question": "Tom has 4 apples and buys 5 more. How many?"})
    assert ok.status_code == 200, ok.text


def _student_replicas():
    import ray

    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith("SERVE_REPLICA::glore_test#Student#")]


def test_killing_a_replica_under_load_loses_no_request(service):
    import ray

    time.sleep(12)  # let the SLOW request of the previous test drain from its replica
    names = _student_replicas()
    assert len(names) == 2
    results, stop = [], threading.Event()

    def client():
        while not stop.is_set():
            r = _refine(service, {"question": "Ann has 7 pens and loses 2. How many are left?"})
            results.append(r.status_code)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    ray.kill(ray.get_actor(names[0], namespace="serve"), no_restart=True)
    time.sleep(6.0)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert len(results) >= 8 and set(results) == {200}, results
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (len(_student_replicas()) != 2 or names[0] in _student_replicas()):
        time.sleep(1)
    assert len(_student_replicas()) == 2 and names[0] not in _student_replicas()  # Serve replaced it


# ---------------------------------------------------------------- building the app (no HTTP)


def test_serve_deploy_config_is_valid_for_serve(tmp_path):
    import yaml
    from ray.serve.schema import ServeDeploySchema

    from glore_ray.serving.launch import REPO_ROOT

    schema = ServeDeploySchema.model_validate(yaml.safe_load((REPO_ROOT / "configs" / "serve.yaml").read_text()))
    app = schema.applications[0]
    assert app.import_path == "glore_ray.serving.launch:app_builder" and schema.http_options.host == "127.0.0.1"
    assert (REPO_ROOT / app.args["config"]).exists()


def test_builder_rejects_bad_args_and_names_missing_checkpoints(tmp_path):
    from glore_ray.config import load_config
    from glore_ray.serving.app import build_app
    from glore_ray.serving.launch import app_builder, checkpoint_loaders, checkpoint_paths

    with pytest.raises(ValueError, match="unknown app_builder args"):
        app_builder({"config": None, "colour": "red"})
    cfg = load_config(None, [f"run.run_dir={tmp_path}"])
    paths = checkpoint_paths(cfg)
    assert paths["sorm"] == tmp_path / "reward_models" / "sorm" / "manifest.json"
    assert paths["local_refiner"] == tmp_path / "refiners" / "local" / "manifest.json"
    with pytest.raises(FileNotFoundError, match="student"):
        checkpoint_loaders(cfg)
    with pytest.raises(ValueError, match="missing \\['sorm'\\]"):
        build_app(cfg, {m: object for m in ("student", "orm", "global_refiner", "local_refiner")})
