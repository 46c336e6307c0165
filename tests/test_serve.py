"""The images server (wordbrush/serve/): a real uvicorn on a free loopback port, driven by the official openai
client and by raw HTTP. The model is the tiny untrained pipeline of conftest (16 px) unless a test needs a real
PNG from the built-in `shapes` (candidates=1 to keep it fast)."""

from __future__ import annotations

import base64
import io
import json
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx2
import numpy as np
import openai
import pytest
import uvicorn
from PIL import Image

from conftest import tiny_pipeline
from wordbrush import TextToImagePipeline
from wordbrush.serve.app import create_app
from wordbrush.serve.settings import ServeSettings

KEY = "test-key-123"


@contextmanager
def running(app):
    """Serve app on a free loopback port in a thread. The socket listens before the thread starts, so requests
    made at once wait in its backlog until the server accepts them: no polling for readiness."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted connections; without it
    sock.bind(("127.0.0.1", 0))                                  # a passed-in socket's keep-alive replies wait
    sock.listen(512)                                             # 40 ms each for delayed ACKs
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()
    assert not thread.is_alive(), "the server did not stop"


class Spy:
    """A pipeline that records each draw call and, given a gate, blocks in it until the gate opens."""

    def __init__(self, pipe, gate: threading.Event | None = None):
        self.pipe, self.gate, self.calls, self.drawing = pipe, gate, [], threading.Event()

    def __getattr__(self, name):
        return getattr(self.pipe, name)

    def draw(self, prompts, seeds, options, batch_size=64):
        self.calls.append((list(prompts), list(seeds), options))
        self.drawing.set()
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the gate"
        return self.pipe.draw(prompts, seeds, options, batch_size=batch_size)


@pytest.fixture(scope="module")
def tiny():
    return tiny_pipeline(image_size=16, text_len=8, captions=200)


def decode(b64: str) -> Image.Image:
    data = base64.b64decode(b64, validate=True)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def post(base, body, key=None, **kw):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx2.post(f"{base}/v1/images/generations", json=body, headers=headers, timeout=30, **kw)


# ------------------------------------------------------------------------------------------------ openai client


def test_openai_client_gets_two_pngs_from_shapes():
    pipe = TextToImagePipeline.from_pretrained("shapes")
    settings = ServeSettings(model="shapes", api_key=KEY, max_wait_ms=0)
    with running(create_app(settings, pipe)) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0, timeout=60)
        assert [m.id for m in client.models.list().data] == ["shapes"]
        out = client.images.generate(model="shapes", prompt="a red circle", n=2, size="64x64",
                                     response_format="b64_json", extra_body={"seed": 7, "candidates": 1})
        images = [decode(d.b64_json) for d in out.data]
        assert [im.size for im in images] == [(64, 64), (64, 64)] and all(im.mode == "RGB" for im in images)
        offline = pipe(["a red circle"], num_images_per_prompt=2, seed=7, candidates=1).images
        assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(images, offline))

        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{base}/v1", api_key="wrong", max_retries=0).images.generate(prompt="a red circle")
        with pytest.raises(openai.NotFoundError, match="serves 'shapes'"):
            client.images.generate(model="dall-e-3", prompt="a red circle")
        with pytest.raises(openai.BadRequestError, match="b64_json"):
            client.images.generate(prompt="a red circle", response_format="url")
        with pytest.raises(openai.BadRequestError, match="64x64"):
            client.images.generate(prompt="a red circle", size="1024x1024")


# ----------------------------------------------------------------------------------------------------- batching


def test_concurrent_requests_share_one_draw_and_match_offline(tiny):
    spy = Spy(tiny)
    requests = [("a red circle", 3, 2), ("two blue squares", 11, 1), ("a green triangle above a cross", 0, 3)]
    settings = ServeSettings(max_batch=6, max_wait_ms=20_000, limits={"max_n": 3})  # the batch fills long before
    with running(create_app(settings, spy)) as base, ThreadPoolExecutor(len(requests)) as pool:
        futures = [pool.submit(post, base, {"prompt": p, "n": n, "seed": s, "candidates": 1, "guidance_scale": 2.0})
                   for p, s, n in requests]
        answers = [f.result() for f in futures]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len(spy.calls) == 1 and sorted(spy.calls[0][1]) == [0, 1, 2, 3, 4, 11]  # one model call, all 6 images
    options = tiny.sampling_options(candidates=1, guidance_scale=2.0)
    for (prompt, seed, n), answer in zip(requests, answers):
        data = answer.json()["data"]
        assert [d["seed"] for d in data] == [seed + k for k in range(n)]
        for d in data:  # drawn alone, offline: the same pixels as in the shared batch
            alone, _ = tiny.draw([prompt], [d["seed"]], options)
            assert np.array_equal(np.asarray(decode(d["b64_json"])), np.asarray(alone[0])), (prompt, d["seed"])


def test_requests_with_different_options_are_not_merged(tiny):
    spy = Spy(tiny)
    bodies = [{"prompt": "a red circle", "n": 2, "seed": s, "temperature": t} for s, t in
              ((0, 1.0), (10, 0.5), (20, 1.0), (30, 0.5))]
    with running(create_app(ServeSettings(max_batch=4, max_wait_ms=20_000), spy)) as base, \
            ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda b: post(base, b), bodies))
    assert [a.status_code for a in answers] == [200] * 4
    assert len(spy.calls) == 2
    for prompts, seeds, options in spy.calls:
        assert len(seeds) == 4 and {s // 10 for s in seeds} in ({0, 2}, {1, 3})  # same temperature together


def test_full_queue_answers_429_with_retry_after_and_recovers(tiny):
    gate = threading.Event()
    spy = Spy(tiny, gate)
    app = create_app(ServeSettings(max_batch=1, max_wait_ms=0, max_queue=2), spy)
    with running(app) as base, ThreadPoolExecutor(3) as pool:
        first = pool.submit(post, base, {"prompt": "a red circle", "seed": 1})
        assert spy.drawing.wait(20)  # the worker holds the first request
        batcher = app.state.server.batcher
        queued = [pool.submit(post, base, {"prompt": "a red circle", "seed": s}) for s in (2, 3)]
        assert batcher.wait_for(lambda b: b.waiting == 2, 20)
        started = time.monotonic()
        full = post(base, {"prompt": "a red circle", "seed": 4})
        assert time.monotonic() - started < 5
        assert full.status_code == 429 and int(full.headers["Retry-After"]) >= 1
        assert full.json()["error"]["type"] == "rate_limit_error" and "busy" in full.json()["error"]["message"]
        assert httpx2.get(f"{base}/healthz").json()["waiting"] == 2  # the event loop is not blocked
        gate.set()
        assert [f.result().status_code for f in [first, *queued]] == [200, 200, 200]
        assert post(base, {"prompt": "a red circle", "seed": 5}).status_code == 200


def test_a_disconnected_request_is_dropped_before_it_is_drawn(tiny):
    gate = threading.Event()
    spy = Spy(tiny, gate)
    app = create_app(ServeSettings(max_batch=1, max_wait_ms=0), spy)
    with running(app) as base, ThreadPoolExecutor(1) as pool:
        first = pool.submit(post, base, {"prompt": "a red circle", "seed": 1})
        assert spy.drawing.wait(20)
        batcher = app.state.server.batcher
        body = json.dumps({"prompt": "a purple diamond", "seed": 2}).encode()
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as raw:
            raw.sendall(b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            assert batcher.wait_for(lambda b: b.waiting == 1, 20)
        assert batcher.wait_for(lambda b: b.dropped == 1 and b.waiting == 0, 20)  # the client hung up
        gate.set()
        assert first.result().status_code == 200
        assert post(base, {"prompt": "a red circle", "seed": 3}).status_code == 200
    assert all("a purple diamond" not in prompts for prompts, _, _ in spy.calls)
    assert [seeds for _, seeds, _ in spy.calls] == [[1], [3]]


def test_a_failing_draw_is_a_500_without_details_and_the_server_goes_on(tiny):
    class Failing(Spy):
        def draw(self, prompts, seeds, options, batch_size=64):
            if seeds == [1]:
                raise RuntimeError("secret detail at /home/someone/model.py")
            return super().draw(prompts, seeds, options, batch_size)

    with running(create_app(ServeSettings(max_wait_ms=0), Failing(tiny))) as base:
        failed = post(base, {"prompt": "a red circle", "seed": 1})
        assert failed.status_code == 500 and failed.json()["error"]["message"] == "the model failed to draw this request"
        assert "secret" not in failed.text and "Traceback" not in failed.text
        assert post(base, {"prompt": "a red circle", "seed": 2}).status_code == 200


# ------------------------------------------------------------------------------------------ input and its limits


def test_errors_are_openai_envelopes(tiny):
    with running(create_app(ServeSettings(api_key=KEY), tiny)) as base:
        ok = {"Authorization": f"Bearer {KEY}"}
        assert httpx2.get(f"{base}/healthz").json()["model"] == "shapes"  # no key needed
        assert httpx2.get(f"{base}/").status_code == 200  # the page holds no data; its requests send the key
        cases = [
            (httpx2.get(f"{base}/v1/models"), 401, None),
            (httpx2.get(f"{base}/v1/models", headers={"Authorization": "Bearer nope"}), 401, None),
            (httpx2.get(f"{base}/v1/nothing", headers=ok), 404, None),
            (httpx2.delete(f"{base}/v1/images/generations", headers=ok), 405, None),
            (httpx2.post(f"{base}/v1/images/generations", content=b"prompt=x", headers=ok), 415, None),
            (post(base, {"prompt": "x" * 200_000}, KEY), 413, None),
            (post(base, {"n": 2}, KEY), 400, "prompt"),
            (post(base, {"prompt": "a red circle", "n": 0}, KEY), 400, "n"),
            (post(base, {"prompt": "a red circle", "n": 9}, KEY), 400, "n"),
            (post(base, {"prompt": "a red circle", "size": "64x64"}, KEY), 400, "size"),
            (post(base, {"prompt": "a\x07bell"}, KEY), 400, "prompt"),
            (post(base, {"prompt": "   "}, KEY), 400, "prompt"),
            (post(base, {"prompt": "a red circle", "model": "/etc/passwd"}, KEY), 404, "model"),
            (post(base, {"prompt": "a red circle", "style": "vivid"}, KEY), 400, "style"),
        ]
        for response, status, param in cases:
            error = response.json()["error"]
            assert response.status_code == status, (response.request.url, error)
            assert error["message"] and error["type"] and error["param"] == param
        assert cases[0][0].headers["WWW-Authenticate"] == "Bearer"
        assert "GET" not in cases[3][0].headers["Allow"] and "POST" in cases[3][0].headers["Allow"]
        assert "16x16" in cases[9][0].json()["error"]["message"]  # names the size that is allowed


def malformed_requests(rng: random.Random) -> list[dict]:
    """At least 1,000 requests that must all be refused with a 4xx: each is dict(method, path, headers, content)."""
    auth = {"Authorization": f"Bearer {KEY}"}
    js = {"Content-Type": "application/json", **auth}
    good = {"prompt": "a red circle", "n": 1, "seed": 3}
    out = []

    def body(obj, headers=js):
        return dict(method="POST", path="/v1/images/generations", headers=headers, content=json.dumps(obj).encode())

    wrong_types = [None, True, [], {}, [1], {"a": 1}, "1", 1.5, -3, 10**30, "", "a red circle"]
    expected = {"prompt": str, "model": str, "n": int, "size": str, "response_format": str, "user": str,
                "seed": int, "guidance_scale": float, "temperature": float, "candidates": int}
    for field, kind in expected.items():  # wrong types
        for value in wrong_types:
            fits = (kind is str and isinstance(value, str)) or (kind is int and type(value) is int) or \
                (kind is float and type(value) in (int, float)) or (value is None and field != "prompt")
            if not fits:
                out.append(body({**good, field: value}))
    out_of_range = {"n": [0, -1, 9, 100, 2**63], "seed": [-1, 2**32, 2**70], "guidance_scale": [-0.1, 20.5, 1e308],
                    "temperature": [0, -1, 5.5, 1e300], "candidates": [0, -2, 9, 65], "user": ["u" * 257],
                    "size": ["", "15x15", "17x17", "16x16 ", "1024x1024", "auto2", "16"],
                    "response_format": ["url", "png", "B64_JSON", ""],
                    "model": ["", "other", "../shapes", "/etc/passwd", "shapes/..", "SHAPES"],
                    "prompt": ["", " ", "\n", "\t", "\x00", "a\x00b", "\x1b[31m", "a" * 1001, "\ud800", "\u0085",
                               "ok\r\n"]}
    for field, values in out_of_range.items():
        for value in values:
            out.append(body({**good, field: value}))
    for name in ("quality", "style", "stream", "url", "path", "__proto__", "top_k", "steps", "prime_images"):
        out.append(body({**good, name: 1}))  # unknown arguments
    for obj in ([], [good], "a red circle", 1, None, True, {}):  # not an object / nothing in it
        out.append(body(obj))
    for text in (b"", b"{", b"}", b'{"prompt": }', b"{'prompt': 'x'}", b'{"prompt": "x",}', b"[" * 5000,
                 b'{"prompt": "x"} trailing', b"\xff\xfe{}", b'{"prompt": "\\ud800"}', b'{"prompt": "\\x41"}',
                 b'{"prompt": NaN}', b'{"prompt": "x", "guidance_scale": Infinity}', b'{"n": 1e999}',
                 b'{"prompt": "x", "n": 01}', '{"prompt": "ÿ"}'.encode("latin-1")):
        out.append(dict(method="POST", path="/v1/images/generations", headers=js, content=text))
    valid = json.dumps(good).encode()
    for _ in range(300):  # truncated and mutated JSON
        cut = valid[: rng.randrange(0, len(valid) - 1)]
        i = rng.randrange(len(valid))
        mutated = valid[:i] + bytes([rng.choice(b'{}[]":,\\\x00\xff')]) + valid[i + 1:]
        out.append(dict(method="POST", path="/v1/images/generations", headers=js, content=cut))
        try:
            json.loads(mutated)
        except ValueError:
            out.append(dict(method="POST", path="/v1/images/generations", headers=js, content=mutated))
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                 "application/xml", "application/jsonx", "json", "", "text/json", "application/json-patch"):
        out.append(dict(method="POST", path="/v1/images/generations", headers={"Content-Type": kind, **auth},
                        content=valid))
    out.append(dict(method="POST", path="/v1/images/generations", headers=auth, content=valid))  # no content type
    for size in (65 * 1024, 200 * 1024, 1024 * 1024, 3 * 1024 * 1024):  # huge bodies
        out.append(body({**good, "prompt": "a" * size}))
        out.append(dict(method="POST", path="/v1/images/generations", headers=js, chunked=True,
                        content=b'{"prompt": "' + b"b" * size + b'"}'))
    for method, path in (("GET", "/v1/images/generations"), ("PUT", "/v1/images/generations"),
                         ("DELETE", "/v1/images/generations"), ("PATCH", "/v1/images/generations"),
                         ("POST", "/v1/models"), ("DELETE", "/v1/models"), ("POST", "/healthz"), ("PUT", "/"),
                         ("POST", "/v1/models/shapes"), ("GET", "/v1/images"), ("GET", "/v1"),
                         ("GET", "/v1/models/other"), ("GET", "/v1/models/..%2F..%2Fetc"), ("GET", "/static/nope.js"),
                         ("GET", "/static/../settings.py"), ("GET", "/docs"), ("POST", "/v1/images/edits"),
                         ("POST", "/v1/chat/completions")):
        out.append(dict(method=method, path=path, headers=js, content=valid if method != "GET" else b""))
    keys = [{}, {"Authorization": "Bearer"}, {"Authorization": f"Bearer {KEY}x"},
            {"Authorization": f"Bearer  {KEY}"}, {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"},
            {"Authorization": f"Bearer {KEY[:-1]}"}, {"X-API-Key": KEY}]
    for headers in keys:  # no or wrong key, on every protected route
        for method, path in (("POST", "/v1/images/generations"), ("GET", "/v1/models"),
                             ("GET", "/v1/models/shapes"), ("GET", "/openapi.json"), ("GET", "/nope")):
            out.append(dict(method=method, path=path, headers={"Content-Type": "application/json", **headers},
                            content=valid if method == "POST" else b""))
    base = list(out)
    while len(out) < 1100:  # more of the same kinds, recombined: a random case with a random wrong key or type
        case = dict(rng.choice(base))
        if rng.random() < 0.3:
            case["headers"] = {**case["headers"], **rng.choice(keys[1:])}
        out.append(case)
    return out


def test_a_thousand_malformed_requests_get_4xx_and_the_server_keeps_serving(tiny):
    cases = malformed_requests(random.Random(0))
    assert len(cases) >= 1000
    spy = Spy(tiny)
    app = create_app(ServeSettings(api_key=KEY, limits={"max_body_bytes": 64 * 1024}), spy)
    statuses = {}
    with running(app) as base, httpx2.Client(base_url=base, timeout=30) as client:
        for case in cases:
            content = case["content"]
            if case.get("chunked"):
                content = iter([content[i : i + 16384] for i in range(0, len(content), 16384)])
            r = client.request(case["method"], case["path"], headers=case["headers"], content=content)
            assert 400 <= r.status_code < 500, (case["method"], case["path"], case["content"][:80], r.text[:200])
            error = r.json()["error"]
            assert isinstance(error["message"], str) and error["message"] and error["type"], r.text
            assert "Traceback" not in r.text
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert spy.calls == []  # nothing malformed reached the model
        ok = client.post("/v1/images/generations", json={"prompt": "a red circle", "n": 2},
                         headers={"Authorization": f"Bearer {KEY}"})
        assert ok.status_code == 200 and len(ok.json()["data"]) == 2
    assert set(statuses) >= {400, 401, 404, 405, 413, 415}, statuses


def test_page_and_static_files_are_served(tiny):
    with running(create_app(ServeSettings(), tiny)) as base:
        page = httpx2.get(f"{base}/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert 'id="prompt"' in page.text and "Content-Security-Policy" in page.headers
        assert "v1/images/generations" in httpx2.get(f"{base}/static/app.js").text
        assert httpx2.get(f"{base}/static/style.css").status_code == 200


# ---------------------------------------------------------------------------------------------- settings, command


def test_settings_read_environment_and_flags_win(monkeypatch):
    import argparse

    from wordbrush.cli.serve import add_arguments, settings_from

    monkeypatch.setenv("WORDBRUSH_MAX_BATCH", "7")
    monkeypatch.setenv("WORDBRUSH_API_KEY", "from-env")
    monkeypatch.setenv("WORDBRUSH_LIMITS__MAX_N", "3")
    parser = add_arguments(argparse.ArgumentParser())
    s = settings_from(parser.parse_args(["--model", "emoji", "--max-batch", "9"]))
    assert (s.model, s.max_batch, s.api_key.get_secret_value(), s.limits.max_n, s.host) == \
        ("emoji", 9, "from-env", 3, "127.0.0.1")
    assert "from-env" not in repr(s)
    assert s.compile is False and settings_from(parser.parse_args(["--compile"])).compile is True
    with pytest.raises(SystemExit):
        parser.parse_args(["--max-batch", "0"])


def test_a_compiled_server_is_compiled_and_warmed_before_serving(monkeypatch):
    from wordbrush.serve import app as serve_app

    drawn = []
    monkeypatch.setattr(TextToImagePipeline, "draw", lambda self, prompts, seeds, *a, **kw: drawn.append(
        (len(prompts), kw.get("batch_size"), self.generator._compiled is not None)) or ([], None))
    pipe = serve_app.load_pipeline(ServeSettings(model="shapes", max_batch=4, compile=True))
    rows = 4 * pipe.sampling.candidates  # one full batch (shapes: 8 candidates an image), compiled, before any request
    assert pipe.sampling.candidates > 1 and drawn == [(4, rows, True)]


def test_command_help_imports_neither_torch_nor_fastapi():
    import subprocess
    import sys

    code = ("import sys, argparse, wordbrush.cli.serve as c; c.add_arguments(argparse.ArgumentParser()); "
            "print(sorted(m for m in ('torch', 'fastapi', 'uvicorn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_command_refuses_an_unknown_model_in_one_line(capsys):
    from wordbrush.cli import main

    assert main(["serve", "--model", "no-such-model-here", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-model-here" in err[0] and "Traceback" not in err[0]
