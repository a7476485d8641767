"""The chat server: OpenAI-compatible endpoints against a real uvicorn server in this process
(with the `openai` client) on a run trained once per session, bounds and errors, the
concurrency limit, checkpoint listing. Its pieces: tests/unit/test_chat_pieces.py; the chat
command: tests/e2e/test_chat_cli.py; the page in a browser: tests/e2e/test_chat_browser.py."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from urllib.parse import urlsplit

import httpx
import pytest
import torch

from parrot_lm.generation.params import SamplingParams
from parrot_lm.serve.settings import Settings
from parrot_lm.serve.streaming import Utf8StreamDecoder
from tests.helpers.chat import LAST, RUN, STEPS, long_seed, serve, shared_tiny_outputs

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPT_LIMIT = 2000


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, small_data_dir):
    """An outputs dir with the tiny run (last + 2 step checkpoints), a corrupt file and a
    foreign one."""
    root = tmp_path_factory.mktemp("chat") / "outputs"
    shutil.copytree(shared_tiny_outputs(tmp_path_factory, small_data_dir), root)
    broken = root / "runs" / "broken" / "checkpoints"
    broken.mkdir(parents=True)
    (broken / "last.ckpt").write_bytes(b"this is not a checkpoint")
    torch.save({"weights": torch.zeros(2)}, broken / "foreign.ckpt")
    shutil.copy(root / LAST, broken / "no-tokenizer.ckpt")  # loads, but cannot talk
    return root


@pytest.fixture(scope="module")
def server(outputs):
    from parrot_lm.serve.app import create_app

    settings = Settings(outputs_dir=outputs, max_prompt_chars=PROMPT_LIMIT, max_concurrent=2)
    app = create_app(settings)
    with serve(app) as url:
        yield url, app


@pytest.fixture
def client(server):
    url, _ = server
    return openai.OpenAI(base_url=f"{url}/v1", api_key="anything", max_retries=0, timeout=60)


def post(url: str, path: str, body) -> httpx.Response:
    content = body if isinstance(body, (str, bytes)) else json.dumps(body)
    headers = {"Content-Type": "application/json"}
    return httpx.post(url + path, content=content, headers=headers, timeout=60)


def test_utf8_stream_decoder_with_the_trained_bpe(outputs):
    from parrot_lm.data.tokenizer import load_tokenizer_dir
    from parrot_lm.runs.loading import find_tokenizer_dir

    enc = load_tokenizer_dir(find_tokenizer_dir(outputs / LAST))
    text = "Ünïcödé 🦜 stories — «quoted» 日本"
    ids = enc.encode_ordinary(text)
    decoder = Utf8StreamDecoder(enc)
    pieces = [decoder.feed(t) for t in ids] + [decoder.flush()]
    assert "".join(pieces) == text and all("\ufffd" not in p for p in pieces)


def test_listing_shows_the_run_step_and_val_loss(server, client):
    url, _ = server
    ids = [m.id for m in client.models.list().data]
    assert LAST in ids and f"{RUN}/checkpoints/step{STEPS // 2:07d}.ckpt" in ids
    assert not any(i.startswith("runs/broken") for i in ids)  # unreadable: not offered
    listing = httpx.get(f"{url}/api/checkpoints", timeout=30).json()
    by_id = {c["id"]: c for c in listing["checkpoints"]}
    last = by_id[LAST]
    assert (last["run"], last["step"], last["val_loss_step"]) == (RUN, STEPS, STEPS)
    assert last["val_loss_source"] == "tensorboard" and 0 < last["val_loss"] < 8
    assert by_id[f"{RUN}/checkpoints/step{STEPS // 2:07d}.ckpt"]["step"] == STEPS // 2
    assert "corrupt" in by_id["runs/broken/checkpoints/last.ckpt"]["error"]
    assert "not a ParrotLM" in by_id["runs/broken/checkpoints/foreign.ckpt"]["error"]
    assert "No tokenizer" in by_id["runs/broken/checkpoints/no-tokenizer.ckpt"]["error"]
    assert listing["limits"]["max_prompt_chars"] == PROMPT_LIMIT
    page = httpx.get(url + "/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for element in ('id="checkpoint"', 'id="prompt"', 'id="send"', 'id="messages"', "<script>"):
        assert element in page.text
    # Self-contained: nothing fetched from elsewhere (the test machine has no network).
    assert "http://" not in page.text and "https://" not in page.text and "src=" not in page.text


def test_completion_text_finish_reason_and_usage(outputs, client):
    from parrot_lm.generation.text import complete_texts
    from parrot_lm.runs.loading import load_model

    prompt = "Once upon a time"
    out = client.completions.create(model=LAST, prompt=prompt, max_tokens=12, temperature=0)
    choice = out.choices[0]
    loaded = load_model(outputs / LAST)
    n_prompt = len(loaded.tokenizer.encode_ordinary(prompt))
    assert out.object == "text_completion" and out.model == LAST and out.id.startswith("cmpl-")
    assert out.usage.prompt_tokens == n_prompt
    assert out.usage.total_tokens == n_prompt + out.usage.completion_tokens
    assert choice.finish_reason in ("stop", "length")
    if choice.finish_reason == "length":
        assert out.usage.completion_tokens == 12
    else:
        assert out.usage.completion_tokens < 12
    # Greedy: the same text as the batch generator gives.
    greedy = SamplingParams(max_new_tokens=12, temperature=0)
    expected = complete_texts(loaded.model, loaded.tokenizer, [prompt], greedy)[0]
    assert choice.text == expected
    sampled = client.completions.create(
        model=LAST, prompt=prompt, max_tokens=30, temperature=1.0, seed=3, extra_body={"top_k": 20}
    )
    assert 0 <= sampled.usage.completion_tokens <= 30


def test_streamed_chat_equals_the_non_streamed_reply(server, client):
    messages = [{"role": "user", "content": "Tell me a story about a dog."}]
    args = dict(model=LAST, messages=messages, max_tokens=60, temperature=1.0)
    args["seed"] = long_seed(server[0], "/v1/chat/completions", args)
    whole = client.chat.completions.create(**args)
    started = time.perf_counter()
    stream = client.chat.completions.create(
        **args, stream=True, stream_options={"include_usage": True}
    )
    deltas, finish, usage, first_at = [], None, None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            assert chunk.object == "chat.completion.chunk"
            if choice.delta.content:
                first_at = first_at or time.perf_counter() - started
                deltas.append(choice.delta.content)
            finish = choice.finish_reason or finish
    elapsed = time.perf_counter() - started
    reply = whole.choices[0].message
    print(f"streamed {len(deltas)} chunks in {elapsed:.3f} s, first after {first_at:.3f} s")
    assert reply.role == "assistant" and reply.content
    assert "".join(deltas) == reply.content
    assert len(deltas) >= 3
    assert finish == whole.choices[0].finish_reason
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens
    assert "\nUser:" not in reply.content and not reply.content[:1].isspace()


def test_stop_strings_are_trimmed_streamed_or_not(server, client):
    args = dict(model=LAST, prompt="The little dog", max_tokens=40, temperature=1.0)
    args["seed"] = long_seed(server[0], "/v1/completions", args)
    full = client.completions.create(**args).choices[0].text
    assert len(full) >= 12, full
    stop = full[6:9]
    cut = full.index(stop)
    stopped = client.completions.create(**args, stop=[stop, "never appears"])
    assert stopped.choices[0].text == full[:cut]
    assert stopped.choices[0].finish_reason == "stop"
    pieces = [c.choices[0].text for c in client.completions.create(**args, stop=stop, stream=True)]
    assert "".join(pieces) == full[:cut]


def test_bad_requests_get_a_4xx_with_one_sentence(server, client):
    url, _ = server
    ok = {"model": LAST, "prompt": "Once", "max_tokens": 2}
    cases = [
        ({**ok, "prompt": "  "}, 400, "prompt is empty"),
        ({**ok, "max_tokens": 10**6}, 400, "max_new_tokens_limit"),
        ({**ok, "max_tokens": 0}, 400, "max_tokens must be between 1"),
        ({**ok, "prompt": "x" * (PROMPT_LIMIT + 1)}, 400, "max_prompt_chars"),
        ({**ok, "temperature": -0.5}, 400, "temperature must be >= 0"),
        ({**ok, "top_p": 1.5}, 400, "top_p must be in (0, 1]"),
        ({**ok, "top_p": 0}, 400, "top_p must be in (0, 1]"),
        ({**ok, "top_k": -1}, 400, "top_k must be >= 0"),
        ({**ok, "n": 2}, 400, "n must be 1"),
        ({**ok, "max_tokens": "many"}, 400, "Invalid 'max_tokens'"),
        ({**ok, "prompt": 123}, 400, "Invalid 'prompt'"),
        ({**ok, "prompt": "y" * (6 * PROMPT_LIMIT + (1 << 20))}, 413, "the limit is"),
        ({k: v for k, v in ok.items() if k != "model"}, 400, "'model' is required"),
        ({**ok, "model": "runs/nope/checkpoints/last.ckpt"}, 404, "is not a checkpoint"),
        ({**ok, "model": "../outside.ckpt"}, 404, "is not a checkpoint"),
        ({**ok, "model": "runs/broken/checkpoints/last.ckpt"}, 422, "unreadable or corrupt"),
        ({**ok, "model": "runs/broken/checkpoints/foreign.ckpt"}, 422, "not a ParrotLM"),
        ({**ok, "model": "runs/broken/checkpoints/no-tokenizer.ckpt"}, 422, "No tokenizer"),
        ("{not json", 400, "not valid JSON"),
        ("[1, 2]", 400, "must be a JSON object"),
    ]
    for body, status, fragment in cases:
        response = post(url, "/v1/completions", body)
        assert response.status_code == status, (body, response.text)
        error = response.json()["error"]
        assert fragment in error["message"], (fragment, error)
        assert error["type"] in ("invalid_request_error",)
        assert error["message"].endswith(".") and "\n" not in error["message"]
    chat = {"model": LAST, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    for body, fragment in [
        ({**chat, "messages": []}, "messages is empty"),
        ({**chat, "messages": [{"role": "pirate", "content": "arr"}]}, "role 'pirate'"),
        ({**chat, "max_completion_tokens": 5000, "max_tokens": None}, "max_new_tokens_limit"),
        ({**chat, "stream": True, "temperature": -1}, "temperature"),
    ]:
        response = post(url, "/v1/chat/completions", body)
        assert response.status_code == 400 and fragment in response.json()["error"]["message"]
    with pytest.raises(openai.NotFoundError, match="is not a checkpoint"):
        client.completions.create(model="no-such-model", prompt="hi", max_tokens=2)
    with pytest.raises(openai.BadRequestError, match="max_new_tokens_limit"):
        client.chat.completions.create(model=LAST, messages=chat["messages"], max_tokens=99999)
    # Still serving, and nothing leaked a generation slot.
    assert client.completions.create(**ok).choices[0].finish_reason in ("stop", "length")
    assert httpx.get(f"{url}/health", timeout=30).json()["active_generations"] == 0


def test_over_the_concurrency_limit_is_429_and_slots_come_back(server, client):
    url, app = server
    slots = app.state.slots
    held = [slots.try_acquire() for _ in range(slots.limit)]  # two generations "running"
    assert all(held) and slots.try_acquire() is None
    try:
        body = {"model": LAST, "prompt": "Once", "max_tokens": 2}
        busy = post(url, "/v1/completions", body)
        assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
        assert "busy" in busy.json()["error"]["message"]
        streamed = post(url, "/v1/chat/completions", {**body, "messages": [], "stream": True})
        assert streamed.status_code == 400  # a bad request is refused before any slot is taken
        with pytest.raises(openai.RateLimitError, match="max_concurrent"):
            client.chat.completions.create(
                model=LAST, messages=[{"role": "user", "content": "hi"}], stream=True
            )
    finally:
        for lease in held:
            lease.release()
    assert client.completions.create(model=LAST, prompt="Once", max_tokens=2).choices
    # A client that leaves mid-stream frees its slot too.
    body = {"model": LAST, "prompt": "Once", "max_tokens": 500, "stream": True, "seed": 1}
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        next(response.iter_lines())
    deadline = time.monotonic() + 10
    while slots.active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slots.active == 0


def test_sse_wire_format_ends_with_done(server):
    url, _ = server
    body = {"model": LAST, "prompt": "Once", "max_tokens": 5, "stream": True, "seed": 2}
    raw = post(url, "/v1/completions", body).text
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    chunks = [json.loads(e[len("data: ") :]) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-1])
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])


def test_nothing_served_loads_from_another_host(server):
    """The page is self-contained; FastAPI's CDN-backed /docs and /redoc are off, the schema
    is still served."""
    import re

    url, _ = server
    page = httpx.get(url + "/", timeout=60).text
    assert "<textarea" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert not re.search(r"""@import|url\(\s*["']?(https?:)?//""", page)
    for path in ("/docs", "/redoc"):
        assert httpx.get(url + path, timeout=60).status_code == 404
    schema = httpx.get(url + "/openapi.json", timeout=60).json()
    assert {"/v1/completions", "/v1/chat/completions", "/v1/models"} <= set(schema["paths"])


def test_val_loss_from_a_csv_log_or_an_evaluation(outputs, tmp_path):
    from parrot_lm.serve.checkpoints import CheckpointCatalog

    root = tmp_path / "outputs"
    for name in ("csvrun", "evalrun"):
        (root / name / "checkpoints").mkdir(parents=True)
        shutil.copy(outputs / LAST, root / name / "checkpoints" / "last.ckpt")
        shutil.copytree(outputs / RUN / "tokenizer", root / name / "tokenizer")
    (root / "csvrun" / "csv").mkdir()
    (root / "csvrun" / "csv" / "metrics.csv").write_text(
        f"epoch,step,train/loss,val/loss\n0,10,3.0,\n0,20,,2.5\n0,{STEPS + 5},,1.0\n"
    )
    (root / "evalrun" / "eval").mkdir()
    (root / "evalrun" / "eval" / "last-val-stride16.json").write_text(
        json.dumps({"step": STEPS, "eval_set": "val", "loss": 3.25})
    )
    found = {info.run: info for info in CheckpointCatalog(root).scan()}
    assert (found["csvrun"].val_loss, found["csvrun"].val_loss_step) == (2.5, 20)
    assert found["csvrun"].val_loss_source == "csv"
    assert (found["evalrun"].val_loss, found["evalrun"].val_loss_source) == (3.25, "evaluate")


def test_the_server_answers_while_a_generation_runs_and_survives_one_failing(server, monkeypatch):
    """Generation runs in worker threads: with one parked mid-stream, the event loop still
    answers; a generation that fails mid-stream ends its stream with an error event."""
    import parrot_lm.serve.completions as app_module

    gate = threading.Event()

    class Parked(app_module.TextStream):
        def _pieces(self):
            for i, piece in enumerate(super()._pieces()):
                yield piece
                if i == 0:
                    assert gate.wait(30)

    class Failing(app_module.TextStream):
        def _pieces(self):
            yield next(super()._pieces())
            raise RuntimeError("the model fell over")

    url, _ = server
    body = {"model": LAST, "prompt": "Once", "max_tokens": 20}
    body = {**body, "stream": True, "seed": long_seed(url, "/v1/completions", body)}
    monkeypatch.setattr(app_module, "TextStream", Parked)
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=30) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line).startswith("data: {")
        health = httpx.get(f"{url}/health", timeout=10).json()  # while the model is parked
        assert health["active_generations"] == 1
        gate.set()
        rest = [line for line in lines if line]
    assert rest[-1] == "data: [DONE]"
    monkeypatch.setattr(app_module, "TextStream", Failing)
    events = [e for e in post(url, "/v1/completions", body).text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert "the model fell over" in json.loads(events[-2][len("data: ") :])["error"]["message"]
    monkeypatch.undo()
    assert httpx.get(f"{url}/health", timeout=10).json()["active_generations"] == 0
    assert post(url, "/v1/completions", {**body, "stream": False}).status_code == 200


class _NeverEnds:
    """A tokenizer whose end-of-text id is never sampled, so a reply runs to max_tokens."""

    eot_token = None

    def __init__(self, tokenizer) -> None:
        self._tokenizer = tokenizer

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


def _post_then_hang_up(url: str, path: str, body: dict, started: threading.Event) -> None:
    """POST `body` over a plain socket, then close the connection once the server has started
    generating, before any answer: a client that gave up on a non-streamed reply."""
    address = urlsplit(url)
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(head.encode() + data)
        assert started.wait(30), "the generation never started"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_a_client_leaving_a_whole_reply_stops_it_and_frees_its_slot(server, monkeypatch, path):
    """A non-streamed reply whose client hangs up stops within a few tokens and gives its
    slot back, so the next client is served instead of getting 429 until max_tokens."""
    import parrot_lm.serve.completions as app_module

    url, app = server
    slots = app.state.slots
    started, made = threading.Event(), []

    class Slow(app_module.TextStream):
        """Runs to max_tokens at 20 ms a token: 20 s unless the server stops it."""

        def __init__(self, model, tokenizer, *args, **kwargs):
            super().__init__(model, _NeverEnds(tokenizer), *args, **kwargs)
            made.append(self)

        def _pieces(self):
            for piece in super()._pieces():
                started.set()
                time.sleep(0.02)
                yield piece

    max_tokens = 1000
    body = {"model": LAST, "max_tokens": max_tokens, "temperature": 1.0, "seed": 0}
    if path == "/v1/completions":
        body["prompt"] = "Once upon a time"
    else:
        body["messages"] = [{"role": "user", "content": "Tell me a long story."}]
    monkeypatch.setattr(app_module, "TextStream", Slow)
    held = slots.try_acquire()  # one slot busy elsewhere: the leaving client takes the last
    assert held is not None and slots.active == 1
    try:
        _post_then_hang_up(url, path, body, started)
        left = time.monotonic()
        while slots.active > 1 and time.monotonic() - left < 5:
            time.sleep(0.02)
        freed_after = time.monotonic() - left
        assert slots.active == 1, "the slot is still held after the client left"
        stream = made[0]
        assert stream.cancelled and stream.finish_reason is None
        assert stream.elapsed_s is not None  # its token loop has ended, not merely paused
        assert stream.completion_tokens < 50, stream.completion_tokens
        print(f"slot freed {freed_after:.3f} s after hang-up, {stream.completion_tokens} tokens")
        # The next client gets the freed slot.
        again = post(url, path, {**body, "max_tokens": 2})
        assert again.status_code == 200, again.text
        assert again.json()["usage"]["completion_tokens"] == 2
    finally:
        held.release()
    assert slots.active == 0
