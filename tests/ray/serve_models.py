"""Small, real model objects for the Serve tests and the benchmark (no mocks of Ray or Serve).

- ``ArithmeticScorer``: a deterministic step verifier for ``a op b = c`` lines (1.0 when the
  arithmetic is right, else 0.0; the answer line scores like the last computed step). It trusts a
  correct draft, so it exercises the when-gate for real.
- ``ArithmeticFixer``: a "refiner" that recomputes every step of the draft in its prompt.
- ``TriggeredGenerator``: wraps a real generator; a prompt containing EXPLODE raises, one
  containing SLOW sleeps (to test 503 / 504 without killing anything).
- ``http_serve()``: Serve's HTTP proxy on a free loopback port, shut down afterwards.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time

_STEP = re.compile(r"^\s*(?:\[BAD\])?\s*(-?\d+)\s*([+\-*])\s*(-?\d+)\s*=\s*(-?\d+)\s*$")
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def _check(line: str) -> bool | None:
    m = _STEP.match(line)
    if not m:
        return None
    a, op, b, c = m.groups()
    return _OPS[op](int(a), int(b)) == int(c)


class ArithmeticScorer:
    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s  # per call, to model a forward pass

    def score_steps(self, prompts: list[str], solutions: list[str]) -> list[list[float]]:
        if self.delay_s:
            time.sleep(self.delay_s)
        return [self._score(s) for s in solutions]

    def _score(self, solution: str) -> list[float]:
        scores, ok = [], True
        for line in (x for x in solution.splitlines() if x.strip()):
            verdict = _check(line)
            if verdict is not None:
                ok = ok and verdict
            elif not line.strip().startswith("####"):
                ok = False  # not arithmetic: distrust it and everything after
            scores.append(0.95 if ok else 0.05)
        return scores


class ArithmeticFixer:
    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s

    def generate_texts(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        if self.delay_s:
            time.sleep(self.delay_s)
        return [self._fix(p) for p in prompts]

    def _fix(self, prompt: str) -> str:
        draft = prompt.split("Draft:\n", 1)[-1].rsplit("Refinement:", 1)[0]
        lines, last = [], None
        for line in draft.splitlines():
            m = _STEP.match(line)
            if m:
                a, op, b, _ = m.groups()
                last = _OPS[op](int(a), int(b))
                lines.append(f"{a} {op} {b} = {last}")
        return "\n".join(lines + ([f"#### {last}"] if last is not None else []))


class TriggeredGenerator:
    def __init__(self, inner, slow_s: float = 10.0):
        self.inner, self.slow_s = inner, slow_s

    def generate_texts(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        if any("EXPLODE" in p for p in prompts):
            raise RuntimeError("the model exploded (test trigger)")
        if any("SLOW" in p for p in prompts):
            time.sleep(self.slow_s)
        return self.inner.generate_texts(prompts, max_new_tokens)


class SleepGenerator:
    """A generator whose cost is a fixed time per call plus a small time per prompt, like a
    batched forward pass; for the batching benchmark."""

    def __init__(self, per_call_s: float = 0.05, per_item_s: float = 0.002):
        self.per_call_s, self.per_item_s = per_call_s, per_item_s

    def generate_texts(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        time.sleep(self.per_call_s + self.per_item_s * len(prompts))
        return ["1 + 1 = 2\n#### 2" for _ in prompts]


def hf_triggered(path: str, slow_s: float = 10.0):
    from glore_ray.serving.deployments import load_text_generator

    return TriggeredGenerator(load_text_generator(path), slow_s)


@contextlib.contextmanager
def http_serve():
    """Serve's HTTP proxy on 127.0.0.1 and a free port; yields the base URL and shuts Serve down
    afterwards (freeing the CPUs for later test modules)."""
    from ray import serve

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
