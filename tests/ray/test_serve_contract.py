"""The HTTP contract (issue 17): optional bearer-token authentication, and a schema-driven fuzzer
(schemathesis, every check on) over the service's own OpenAPI document, bounded, on loopback.

The app here is the real ingress over Serve with small deterministic models (serve_models), so
the fuzzer spends its time on the contract, not on decoding.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.ray

TOKEN_ENV = "GLORE_TEST_SERVE_TOKEN"
TOKEN = secrets.token_urlsafe(24)
LIMIT_Q, LIMIT_D, LIMIT_TOKENS = 300, 600, 64


@pytest.fixture(scope="module")
def locked(ray_cluster):
    import serve_models
    from ray import cloudpickle, serve

    from glore_ray.config import load_config
    from glore_ray.serving.app import build_app

    cloudpickle.register_pickle_by_value(serve_models)
    cfg = load_config(None, [
        "serve.cpus_per_replica=0.1", "serve.ingress_cpus=0.1", f"serve.auth_token_env={TOKEN_ENV}",
        f"serve.max_question_chars={LIMIT_Q}", f"serve.max_draft_chars={LIMIT_D}",
        f"serve.max_new_tokens_limit={LIMIT_TOKENS}", "serve.request_timeout_s=10", "serve.app_name=glore_contract"])
    loaders = {"student": serve_models.ArithmeticFixer, "orm": serve_models.ArithmeticScorer,
               "sorm": serve_models.ArithmeticScorer, "global_refiner": serve_models.ArithmeticFixer,
               "local_refiner": serve_models.ArithmeticFixer}
    with pytest.raises(ValueError, match=f"{TOKEN_ENV}.*unset or empty"):
        build_app(cfg, loaders)  # a configured token that is not there: refused before deploying
    os.environ[TOKEN_ENV] = TOKEN
    try:
        app = build_app(cfg, loaders)
    finally:
        del os.environ[TOKEN_ENV]  # only the digest went into the app
    with serve_models.http_serve() as url:
        serve.run(app, name=cfg.serve.app_name, route_prefix="/")
        yield url


def test_every_route_but_healthz_needs_the_token(locked):
    assert requests.get(f"{locked}/healthz", timeout=10).status_code == 200
    good = {"Authorization": f"Bearer {TOKEN}"}
    body = {"question": "q", "draft": "4 + 5 = 9\n#### 9"}
    for method, path, kw in (("get", "/v1/config", {}), ("get", "/openapi.json", {}),
                             ("post", "/v1/refine", {"json": body}),
                             ("post", "/v1/refine", {"json": {"question": ""}})):  # 401 before validation
        missing = requests.request(method, f"{locked}{path}", timeout=30, **kw)
        assert missing.status_code == 401 and "missing bearer token" in missing.json()["error"], (path, missing.text)
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = requests.request(method, f"{locked}{path}", headers={"Authorization": "Bearer nope"}, timeout=30, **kw)
        assert wrong.status_code == 401 and wrong.json()["error"] == "wrong bearer token"
    assert requests.get(f"{locked}/v1/config", headers=good, timeout=10).json()["serve"]["auth_token_env"] == TOKEN_ENV
    assert requests.post(f"{locked}/v1/refine", json=body, headers=good, timeout=30).json()["answer"] == "9"


def test_schema_states_the_limits_and_the_token(locked):
    schema = requests.get(f"{locked}/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
    shapes = schema["components"]["schemas"]
    assert shapes["RefineRequest"]["properties"]["question"]["maxLength"] == LIMIT_Q
    draft = shapes["RefineRequest"]["properties"]["draft"]["anyOf"]
    assert {"type": "string", "maxLength": LIMIT_D}.items() <= draft[0].items() and draft[1] == {"type": "null"}
    tokens = shapes["RefineOptions"]["properties"]["max_new_tokens"]["anyOf"][0]
    assert tokens == {"type": "integer", "minimum": 1, "maximum": LIMIT_TOKENS}
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert schema["paths"]["/healthz"]["get"]["security"] == []
    assert schema["paths"]["/v1/refine"]["post"]["security"] == [{"bearer": []}]
    assert {"400", "401", "413", "422", "503", "504"} <= set(schema["paths"]["/v1/refine"]["post"]["responses"])
    allow = requests.get(f"{locked}/v1/refine", timeout=10)
    assert allow.status_code == 405 and allow.headers["Allow"] == "POST"  # RFC 9110


def test_schemathesis_with_every_check_passes(locked, tmp_path):
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    if cli is None:
        pytest.fail("schemathesis is not installed: it is in the dev extra (pip install -e '.[dev]')")
    # A too-long question or draft is documented as 413 (the service's limits are in the schema).
    (tmp_path / "schemathesis.toml").write_text(
        '[checks.negative_data_rejection]\nexpected-statuses = ["400", "401", "405", "413", "422"]\n')
    cmd = [cli, "--config-file", str(tmp_path / "schemathesis.toml"), "run", f"{locked}/openapi.json", "--checks", "all",
           "--max-examples", os.environ.get("GLORE_FUZZ_EXAMPLES", "25"), "--workers", "1",
           "--request-timeout", "20", "-H", f"Authorization: Bearer {TOKEN}", "--phases", "examples,coverage,fuzzing",
           "--suppress-health-check", "too_slow", "--no-color"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "SCHEMATHESIS_HOOKS": ""})
    out = (done.stdout + done.stderr).replace(TOKEN, "<token>")
    assert done.returncode == 0, out[-6000:]
    assert "No issues found" in out or " passed" in out, out[-3000:]


SERVE_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import serve_models
from ray import cloudpickle
from glore_ray.config import load_config
from glore_ray.serving.launch import run_service

cloudpickle.register_pickle_by_value(serve_models)
cfg = load_config(None, ["run.num_cpus=1", "serve.cpus_per_replica=0.1", "serve.ingress_cpus=0.1",
                         "serve.port={port}", "serve.throughput_optimized=false"])
arith = {{"student": serve_models.ArithmeticFixer, "orm": serve_models.ArithmeticScorer,
         "sorm": serve_models.ArithmeticScorer, "global_refiner": serve_models.ArithmeticFixer,
         "local_refiner": serve_models.ArithmeticFixer}}
run_service(cfg, arith, blocking=True)
print("run_service returned")
"""


def test_sigterm_shuts_serve_down_cleanly(tmp_path):
    """jobs/serve.py's loop (run_service, blocking): SIGTERM stops it with a clean Serve shutdown
    and exit status 0, not Ray's crash dump."""
    import signal
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "serve_it.py"
    script.write_text(SERVE_SCRIPT.format(tests=str(Path(__file__).parent), port=port))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    try:
        deadline, ready = time.monotonic() + 240, False
        while not ready and time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except requests.RequestException:  # not listening yet, or the proxy still starting
                pass
            time.sleep(0 if ready else 1)
        assert ready and proc.poll() is None, proc.communicate()[0][-4000:] if proc.poll() is not None else "not ready"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-4000:]
    assert "Serve is shut down." in out and "run_service returned" in out, out[-4000:]
    with pytest.raises(requests.RequestException):  # nothing answers on the port any more
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
