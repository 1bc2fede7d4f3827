"""Load test of the GLoRe service over loopback HTTP: batched vs unbatched on the same replicas.

    .venv/bin/python bench/serve_load.py                       # 48 clients x batch 16, 128 x 64; 2 rounds
    .venv/bin/python bench/serve_load.py --loads 96x32 --serve-mode default
    .venv/bin/python bench/serve_load.py --route score           # POST /v1/score (ORM + SORM only)

Deploys the app once on a local Ray (one replica per model, real tiny models: a random-init tiny
Llama generates, RewardModel heads on it score). Each load (``--loads CLIENTSxBATCH,...``) runs a
batched phase, with every ``@serve.batch`` queue resized in place to BATCH, then an unbatched
phase at 1 on the same replicas, each driven by CLIENTS closed-loop HTTP clients; rounds repeat
the loads, so drifting machine load hits both modes alike. A phase warms up (at least
``--warmup`` seconds and until every client has had an answer: the queues have filled to their
steady state) and then measures a ``--seconds`` window; only requests that complete inside the
window count, and CPU is read at its edges. Every request is refined (when_threshold = 1.0) so
every stage runs; half the requests bring a draft (exercising SORM + both refiners), half let the
student draft. Reports throughput, p50/p99 latency, errors, each stage's share of latency, the
mean batch size per deployment and each process's CPU per request, then a table of medians per
load; writes bench/results/serve_load.json. Serve runs throughput-optimized, as jobs/serve.py
runs it (``--serve-mode default`` for Serve's defaults). ``--route score`` drives the step-scoring
endpoint instead (each request one solution, half of them with a wrong first step): only the ORM
and SORM deployments work, and its results go to bench/results/serve_load_score.json.
Bounded: at most 120 s of warm-up and 120 s per window, loopback only.
"""

import argparse
import asyncio
import functools
import json
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import requests

STAGES = {"refine": ("draft", "orm_draft", "where", "refine", "orm_refinements"), "score": ("score",)}
MODELS = ("Student", "ORM", "SORM", "GlobalRefiner", "LocalRefiner")


def tiny_model_dir(size: str) -> str:
    """A random-init tiny Llama + tokenizer trained on tiny-world text, saved in HF format: the
    tiny world's model shape (``tiny``: configs/tiny.yaml, 4 x 128) or the smoke shape (2 x 64)."""
    from glore_ray.config import ModelConfig
    from glore_ray.models.tiny import build_tiny_lm
    from glore_ray.models.tokenizer import train_tokenizer
    from glore_ray.tasks.tiny_world import generate_problems

    problems = generate_problems(300, seed=0, split="train")
    tok = train_tokenizer([f"Q: {p.question}\nA: {p.reference}" for p in problems], vocab_size=384)
    path = tempfile.mkdtemp(prefix="glore_bench_lm_")
    shape = dict(n_layer=4, d_model=128, n_head=4, d_ff=384) if size == "tiny" else dict(n_layer=2, d_model=64, n_head=4, d_ff=128)
    build_tiny_lm(ModelConfig(**shape, max_len=256), tok).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def tiny_scorer(path: str, seed: int):
    import torch

    from glore_ray.models.reward import RewardModel
    from glore_ray.serving.deployments import GroupedScorer

    torch.set_num_threads(1)
    return GroupedScorer(RewardModel.from_causal_lm(path, seed=seed).eval())  # as load_reward_scorer serves one


def requests_pool(n: int, route: str = "refine") -> list[dict]:
    from glore_ray.tasks.tiny_world import generate_problems

    out = []
    for i, p in enumerate(generate_problems(n, seed=1, split="test")):
        body, lines = {"question": p.question}, p.reference.splitlines()
        if i % 2:  # a draft with its first step's result off by one
            lhs, _, rhs = lines[0].rpartition("= ")
            lines[0] = f"{lhs}= {int(rhs) + 1}"
            body["draft"] = "\n".join(lines)
        if route == "score":  # every request scores a solution: the reference or the broken draft
            body = {"question": p.question, "solution": "\n".join(lines)}
        out.append(body)
    return out


def drive(url: str, bodies: list[dict], clients: int, warmup: float, seconds: float,
          on_window=None, max_warmup: float = 120.0, route: str = "refine") -> tuple[list[dict], float]:
    """Closed loop: each client sends its next request as soon as the last one returns. The
    measurement window of ``seconds`` opens after the warm-up: at least ``warmup`` seconds *and*
    until every client has had a request answered (at most ``max_warmup``). Before that the
    queues are still filling, and in a slow phase (unbatched, many clients) a latency longer than
    a fixed warm-up would leave the window counting the first wave. Each row records when it
    completed; only completions inside the window count, so neither the fill at the start nor the
    requests still in flight at the end bias throughput. ``on_window(edge)`` is called at the
    window's start and end (to read CPU counters). Returns the rows and the warm-up it took."""
    results, lock = [], threading.Lock()
    answered: set[int] = set()
    t0 = time.monotonic()
    end = [float("inf")]  # set when the window opens

    def client(k: int):
        session, i = requests.Session(), k
        while time.monotonic() < end[0]:
            start = time.monotonic()
            try:
                r = session.post(f"{url}/v1/{route}", json=bodies[i % len(bodies)], timeout=120)
                row = {"status": r.status_code, "latency": time.monotonic() - start,
                       "timings": r.json().get("timings_ms", {}) if r.status_code == 200 else {}}
            except requests.RequestException as err:
                row = {"status": 0, "latency": time.monotonic() - start, "timings": {}, "error": str(err)[:200]}
            row["done"] = time.monotonic()
            with lock:
                results.append(row)
                answered.add(k)
            i += clients

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    while time.monotonic() - t0 < max_warmup and (time.monotonic() - t0 < warmup or len(answered) < clients):
        time.sleep(0.05)
    start = time.monotonic()
    end[0] = start + seconds
    if on_window is not None:
        on_window("start")
    time.sleep(max(0.0, end[0] - time.monotonic()))
    if on_window is not None:
        on_window("end")
    for t in threads:
        t.join()  # the requests in flight at the end finish, but are not counted
    return [r for r in results if start <= r["done"] < end[0]], start - t0


def summarize(rows: list[dict], seconds: float, stages: tuple[str, ...] = STAGES["refine"]) -> dict:
    ok = [r for r in rows if r["status"] == 200]
    lat = sorted(r["latency"] * 1000 for r in ok) or [float("nan")]
    total = sum(r["timings"].get("total", 0.0) for r in ok) or 1.0
    share = {s: round(sum(r["timings"].get(s, 0.0) for r in ok) / total, 3) for s in stages}
    return {"requests": len(rows), "ok": len(ok), "errors": len(rows) - len(ok),
            "throughput_rps": round(len(ok) / seconds, 2),
            "p50_ms": round(lat[len(lat) // 2], 1), "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1),
            "mean_ms": round(statistics.fmean(lat), 1), "stage_share_of_latency": share}


def cpu_seconds() -> dict[int, tuple[str, float]]:
    """CPU seconds used so far by each Serve process (named by its title: proxy, controller, each
    replica) and by this client process, keyed by pid: a process's title changes with the task it
    runs (``...:SORM.handle_request_with_rejection``), its pid does not."""
    import psutil

    out: dict[int, tuple[str, float]] = {}
    for proc in psutil.process_iter(["cmdline", "cpu_times"]):
        title = " ".join(proc.info["cmdline"] or [])
        if proc.pid == psutil.Process().pid:
            name = "bench clients"
        elif "ServeReplica" in title:  # ray::ServeReplica:bench:Student[.method] -> Student
            name = title.split(":")[-1].split()[0].split(".")[0]
        elif "ProxyActor" in title:
            name = "HTTP proxy"
        elif title.startswith("ray::") or "raylet" in title or "gcs_server" in title:
            name = "other Ray"
        else:
            continue
        times = proc.info["cpu_times"]
        if times is not None:
            out[proc.pid] = (name, times.user + times.system)
    return out


def cpu_ms_per_request(before: dict, after: dict, requests_ok: int) -> dict[str, float]:
    """CPU milliseconds each process spent per successful request (2 cores = 2000 ms of CPU per s)."""
    used: dict[str, float] = {}
    for pid, (name, seconds) in after.items():
        used[name] = used.get(name, 0.0) + seconds - before.get(pid, (name, 0.0))[1]
    return {name: round(1000 * used[name] / max(1, requests_ok), 1) for name in sorted(used)}


_LOOP: asyncio.AbstractEventLoop | None = None


def call_models(serve, method: str, *args) -> dict:
    """``method`` on every model deployment, awaited on one long-lived event loop: in Serve's
    throughput-optimized mode a handle's router runs on its caller's loop, so a bare
    ``.result()`` from the driver won't do, and Serve caches handles bound to that loop."""
    global _LOOP
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
        threading.Thread(target=_LOOP.run_forever, daemon=True).start()

    async def calls():
        handles = {m: serve.get_deployment_handle(m, app_name="bench") for m in MODELS}
        return dict(zip(MODELS, await asyncio.gather(*(getattr(handles[m], method).remote(*args) for m in MODELS))))

    return asyncio.run_coroutine_threadsafe(calls(), _LOOP).result()


def batch_stats(serve) -> dict:
    return call_models(serve, "batch_stats")


def set_batching(serve, batch: int) -> None:
    call_models(serve, "configure_batching", batch, 0.01)


def run_phase(name: str, clients: int, batch: int, args, url: str) -> dict:
    """One load phase: ``clients`` closed-loop clients, every model's batch queue resized to
    ``batch`` on the same replicas."""
    from ray import serve

    set_batching(serve, batch)
    bodies = requests_pool(64, args.route)
    counters = {}

    def read_counters(edge: str) -> None:  # the warm-up lets the queues settle at the new batch size
        counters[edge] = (batch_stats(serve), cpu_seconds())

    rows, warmed = drive(url, bodies, clients, args.warmup, args.seconds, read_counters, route=args.route)
    (before, cpu_before), (after, cpu_after) = counters["start"], counters["end"]
    summary = summarize(rows, args.seconds, STAGES[args.route])
    summary["cpu_ms_per_request"] = cpu_ms_per_request(cpu_before, cpu_after, summary["ok"])
    summary["clients"], summary["batch_max_size"] = clients, batch
    summary["warmup_s"] = round(warmed, 1)
    summary["mean_batch"] = {m: round((after[m]["items"] - before[m]["items"])
                                      / max(1, after[m]["batches"] - before[m]["batches"]), 2) for m in MODELS}
    summary["error_samples"] = sorted({r.get("error", str(r["status"])) for r in rows if r["status"] != 200})[:5]
    print(f"{clients:>4} clients {name:>9}: {summary['throughput_rps']:7.2f} req/s  p50 {summary['p50_ms']:8.1f} ms  "
          f"p99 {summary['p99_ms']:8.1f} ms  errors {summary['errors']}  warm-up {summary['warmup_s']} s  "
          f"mean batch {summary['mean_batch']}")
    print(f"{'':>23}CPU ms per request: {summary['cpu_ms_per_request']}")
    return summary


def deploy(args, loaders) -> None:
    from ray import serve

    from glore_ray.config import load_config
    from glore_ray.serving.app import build_app

    # when_threshold = where_threshold = 1.0: every draft is refined and its first step marked, so
    # every request runs every stage (the service's worst case). The replicas admit the largest
    # load's requests; each phase then sets its own batch size.
    clients = max(c for c, _ in args.loads)
    cfg = load_config(None, [
        f"serve.batch_max_size={max(b for _, b in args.loads)}", f"serve.max_ongoing_requests={max(64, 2 * clients)}",
        "serve.cpus_per_replica=0.1", "serve.request_timeout_s=120", "refine.when_threshold=1.0",
        "refine.where_threshold=1.0", f"refine.max_new_tokens={args.max_new_tokens}", "serve.app_name=bench"])
    serve.run(build_app(cfg, loaders), name="bench", route_prefix="/")


def parse_loads(text: str) -> list[tuple[int, int]]:
    """``48x16,128x64`` -> [(48, 16), (128, 64)]: closed-loop clients x batch size, per load."""
    loads = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        clients, sep, batch = item.partition("x")
        if not (sep and clients.isdigit() and batch.isdigit() and int(clients) > 0 and int(batch) > 0):
            raise argparse.ArgumentTypeError(f"--loads: {item!r} is not CLIENTSxBATCH (positive integers, e.g. 48x16)")
        loads.append((int(clients), int(batch)))
    if not loads:
        raise argparse.ArgumentTypeError("--loads: give at least one CLIENTSxBATCH")
    return loads


def models_cpu_ratio(phases: dict) -> float:
    """CPU the five model replicas spend per request unbatched over batched (medians over rounds).
    With every core busy, throughput is cores / CPU per request, so this is the most batching can
    give on this machine even if Serve's own share (proxy, ingress, routing) were zero."""
    def model_ms(row: dict) -> float:
        return sum(ms for name, ms in row["cpu_ms_per_request"].items() if name in MODELS)

    per_mode = {k: statistics.median(model_ms(r) for r in v) for k, v in phases.items()}
    return per_mode["unbatched"] / max(per_mode["batched"], 1e-9)


def compare(phases: dict) -> dict:
    """One load's batched vs unbatched rounds: median throughputs, their ratio, the models' CPU ratio."""
    medians = {k: statistics.median(r["throughput_rps"] for r in v) for k, v in phases.items()}
    best = {k: max(v, key=lambda r: r["throughput_rps"]) for k, v in phases.items()}
    return {"median_throughput_rps": medians,
            "throughput_ratio": round(medians["batched"] / max(medians["unbatched"], 1e-9), 2),
            "models_cpu_ratio": round(models_cpu_ratio(phases), 2),
            "median_p50_ms": {k: statistics.median(r["p50_ms"] for r in v) for k, v in phases.items()},
            "stage_share_of_latency": best["batched"]["stage_share_of_latency"], "rounds": phases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", type=parse_loads, default=parse_loads("48x16,128x64"),
                        help="comma-separated CLIENTSxBATCH loads, each run batched then unbatched per round")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=10.0, help="the least warm-up per phase, in seconds")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", choices=("tiny", "smoke"), default="tiny",
                        help="model shape: the tiny world's (4 x 128, default) or the smoke test's (2 x 64)")
    parser.add_argument("--serve-mode", choices=("throughput", "default"), default="throughput",
                        help="Ray Serve's throughput-optimized mode (the service's default) or Serve's defaults")
    parser.add_argument("--route", choices=("refine", "score"), default="refine",
                        help="the endpoint the clients call: /v1/refine (every stage) or /v1/score (ORM + SORM)")
    parser.add_argument("--out", default=None, help="default: bench/results/serve_load[_score].json")
    args = parser.parse_args()
    args.out = args.out or f"bench/results/serve_load{'_score' if args.route == 'score' else ''}.json"
    if args.serve_mode == "throughput":
        from glore_ray.serving import fast_path

        fast_path.apply()  # before Ray starts, as the service's run_service does
    args.seconds = min(args.seconds, 120.0)  # bounded by design
    import ray
    from ray import serve

    from glore_ray.serving.deployments import load_text_generator

    path = tiny_model_dir(args.model)
    gen = functools.partial(load_text_generator, path)
    loaders = {"student": gen, "global_refiner": gen, "local_refiner": gen,
               "orm": functools.partial(tiny_scorer, path, 0), "sorm": functools.partial(tiny_scorer, path, 1)}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray.init(num_cpus=2, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    url = f"http://127.0.0.1:{port}"
    phases = {load: {"batched": [], "unbatched": []} for load in args.loads}
    try:
        deploy(args, loaders)
        for _ in range(args.rounds):  # alternate, so drifting machine load hits both modes alike
            for clients, batch in args.loads:
                phases[clients, batch]["batched"].append(run_phase("batched", clients, batch, args, url))
                phases[clients, batch]["unbatched"].append(run_phase("unbatched", clients, 1, args, url))
    finally:
        serve.shutdown()
        ray.shutdown()
    results = []
    print(f"\nmedians over {args.rounds} rounds (goal: batched >= 3x unbatched throughput)")
    print("clients  batch  batched req/s  unbatched req/s  ratio  models' CPU ratio  p50 batched / unbatched ms")
    for (clients, batch), load_phases in phases.items():
        row = {"clients": clients, "batch": batch} | compare(load_phases)
        results.append(row)
        rps, p50 = row["median_throughput_rps"], row["median_p50_ms"]
        print(f"{clients:>7}  {batch:>5}  {rps['batched']:>13.2f}  {rps['unbatched']:>15.2f}  "
              f"{row['throughput_ratio']:>4.2f}x  {row['models_cpu_ratio']:>16.2f}x  "
              f"{p50['batched']:>9.0f} / {p50['unbatched']:.0f}")
    print("models' CPU ratio: the five model replicas' CPU per request, unbatched / batched: the ratio's ceiling "
          "on this CPU-bound machine if Serve's own share cost nothing")
    result = {"model": args.model, "serve_mode": args.serve_mode, "seconds": args.seconds, "warmup": args.warmup,
              "max_new_tokens": args.max_new_tokens, "cpus": 2, "loads": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
