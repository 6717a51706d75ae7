"""bllm-server end to end, with the official openai client (PyPI).

  test_server.py BLLM_SERVER BLLM_RUN MODEL.stb

Starts the server on a free loopback port and checks: chat and completion,
streamed and not, through openai; greedy output equal to bllm-run --temp 0;
batching (4 concurrent streaming clients: about one evaluation per step,
not one per client, and each client's text equal to its single-client
text); every bad request's status and OpenAI error body; a client that
disconnects mid-stream frees its slot; a load of 8 clients x 25 requests,
mixed streaming, some disconnecting early, every completed one correct and
/health back to all idle; SIGTERM finishes the running request and exits 0."""
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

TIMEOUT_SCALE = float(os.environ.get("BLLM_TIMEOUT_SCALE", "1"))
failures = 0
KEY = "test-key"


def check(ok, what):
    global failures
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    failures += not ok


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(server, model, *extra):
    port = free_port()
    p = subprocess.Popen([server, "-m", model, "--port", str(port), "-t", "2", *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    end = time.time() + 120 * TIMEOUT_SCALE
    while time.time() < end:
        try:
            if raw(port, "GET", "/health", key=extra and KEY)[0] == 200:
                return p, port
        except OSError:
            time.sleep(0.2)
    p.kill()
    raise RuntimeError("the server did not come up: " + p.stderr.read().decode(errors="replace"))


def raw(port, method, path, body=None, key=None, headers=None, timeout=300):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout * TIMEOUT_SCALE)
    h = dict(headers or {})
    if key:
        h["Authorization"] = "Bearer " + key
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    out = r.read()
    c.close()
    try:
        return r.status, json.loads(out)
    except ValueError:
        return r.status, out


def health(port, key=None):
    return raw(port, "GET", "/health", key=key)[1]


def wait_idle(port, key=None, seconds=30):
    end = time.time() + seconds * TIMEOUT_SCALE
    while time.time() < end:
        h = health(port, key)
        if h["slots_processing"] == 0 and h["requests_queued"] == 0:
            return h
        time.sleep(0.1)
    return health(port, key)


def stream_text(port, path, body, key=None, stop_after=None):
    """Reads an SSE response; stop_after: close the connection after that many events."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300 * TIMEOUT_SCALE)
    h = {"Authorization": "Bearer " + key} if key else {}
    c.request("POST", path, body=json.dumps(dict(body, stream=True)).encode(), headers=h)
    r = c.getresponse()
    text, events, done, finish = "", 0, False, None
    for line in r:
        line = line.decode().strip()
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            done = True
            break
        ev = json.loads(line[6:])
        ch = ev["choices"][0]
        text += ch.get("text") or (ch.get("delta") or {}).get("content") or ""
        finish = ch.get("finish_reason") or finish
        events += 1
        if stop_after and events >= stop_after:
            c.close()
            return text, False, None
    c.close()
    return text, done, finish


PROMPTS = ["Once upon a time", "The capital of France is", "1, 2, 3, 4,", "Dear diary, today I"]


def main():
    server, bllm_run, model = sys.argv[1:4]
    from openai import OpenAI
    p, port = start(server, model, "-np", "4", "-c", "256", "--api-key", KEY)
    try:
        cli = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
        # --- the API through openai
        models = cli.models.list()
        check(len(models.data) == 1 and models.data[0].id, f"GET /v1/models: {models.data[0].id!r}")
        r = cli.chat.completions.create(model="x", messages=[{"role": "user", "content": "What is 2+2?"}],
                                        max_tokens=16, temperature=0)
        check(r.choices[0].message.role == "assistant" and r.choices[0].message.content
              and r.choices[0].finish_reason in ("stop", "length") and r.usage.completion_tokens >= 1
              and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens,
              f"chat completion: {r.choices[0].message.content!r}, {r.choices[0].finish_reason}, usage {r.usage}")
        chunks = list(cli.chat.completions.create(model="x", messages=[{"role": "user", "content": "What is 2+2?"}],
                                                  max_tokens=16, temperature=0, stream=True))
        st = "".join(c.choices[0].delta.content or "" for c in chunks)
        check(st == r.choices[0].message.content and chunks[0].choices[0].delta.role == "assistant"
              and chunks[-1].choices[0].finish_reason == r.choices[0].finish_reason,
              f"streamed chat equals the non-streamed one ({len(chunks)} chunks)")
        c1 = cli.completions.create(model="x", prompt=PROMPTS[0], max_tokens=12, temperature=0)
        cs = "".join(c.choices[0].text for c in cli.completions.create(model="x", prompt=PROMPTS[0], max_tokens=12,
                                                                      temperature=0, stream=True))
        ref = subprocess.run([bllm_run, "-m", model, "-p", PROMPTS[0], "-n", "12", "--temp", "0", "-t", "1",
                              "--no-display-prompt"], capture_output=True, timeout=120 * TIMEOUT_SCALE)
        # bllm-run ends its output with a newline
        check(c1.choices[0].text == cs == ref.stdout.decode().removesuffix("\n"),
              f"completion, streamed and not, equals bllm-run --temp 0: {c1.choices[0].text!r}")
        s = cli.completions.create(model="x", prompt="1, 2, 3, 4,", max_tokens=30, temperature=0, stop=[" 7"])
        check(s.choices[0].finish_reason == "stop" and " 7" not in s.choices[0].text,
              f"stop string: {s.choices[0].text!r} ({s.choices[0].finish_reason})")

        # tokens that end inside a character: streamed events stay valid UTF-8 JSON
        u, done, _ = stream_text(port, "/v1/completions", {"prompt": "Emoji list: 😀 😃 😄 😁 🙂", "max_tokens": 24,
                                                           "temperature": 0}, KEY)
        n = cli.completions.create(model="x", prompt="Emoji list: 😀 😃 😄 😁 🙂", max_tokens=24, temperature=0)
        check(done and u == n.choices[0].text, f"multi-byte characters streamed whole: {u!r}")

        # --- batching: 4 streaming clients at once
        single = {}
        for q in PROMPTS:
            single[q] = stream_text(port, "/v1/completions", {"prompt": q, "max_tokens": 24, "temperature": 0},
                                    KEY)[0]
        e0 = health(port, KEY)["evaluations"]
        out = {}
        ts = [threading.Thread(target=lambda q=q: out.__setitem__(q, stream_text(
            port, "/v1/completions", {"prompt": q, "max_tokens": 24, "temperature": 0}, KEY)[0])) for q in PROMPTS]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        evals = health(port, KEY)["evaluations"] - e0
        check(all(out[q] == single[q] for q in PROMPTS),
              "4 concurrent streaming clients: each text equals its single-client text")
        # 4 prompts + 24 steps if all run together; 4 x 24 + 4 one by one
        check(evals <= 4 + 24 + 12, f"batched: {evals} evaluations for 4 x 24 tokens "
                                    f"(one client at a time would take {4 * 25})")

        # --- bad requests
        def err(status, body, what, want):
            ok = status == want and isinstance(body, dict) and "message" in body.get("error", {})
            check(ok, f"{what}: {status} {body.get('error', {}).get('message') if isinstance(body, dict) else body!r}")
        err(*raw(port, "POST", "/v1/chat/completions", b"{not json", key=KEY), "malformed JSON", 400)
        err(*raw(port, "POST", "/v1/chat/completions", {"messages": "hi"}, key=KEY), "messages not an array", 400)
        err(*raw(port, "POST", "/v1/completions", {"prompt": "x", "max_tokens": "5"}, key=KEY), "max_tokens a string",
            400)
        err(*raw(port, "POST", "/v1/completions", {"prompt": "x", "temperature": -1}, key=KEY), "negative temperature",
            400)
        err(*raw(port, "GET", "/v2/nothing", key=KEY), "unknown route", 404)
        err(*raw(port, "POST", "/v1/completions", b'{"prompt": "' + b"a" * (2 << 20) + b'"}', key=KEY),
            "a 2 MiB body", 413)
        st, body = raw(port, "POST", "/v1/completions", {"prompt": "word " * 400}, key=KEY)
        err(st, body, "a prompt longer than the context", 400)
        check("context" in body["error"]["message"], "  ... and the message says so")
        err(*raw(port, "GET", "/health"), "no API key", 401)
        err(*raw(port, "GET", "/health", key="wrong"), "a wrong API key", 401)

        # --- a client that disconnects mid-stream
        text, done, _ = stream_text(port, "/v1/completions", {"prompt": PROMPTS[3], "max_tokens": 200,
                                                              "temperature": 0.8}, KEY, stop_after=3)
        t0 = time.time()
        h = wait_idle(port, KEY, 10)
        check(h["slots_processing"] == 0 and not done, f"disconnect mid-stream: slot free after "
                                                       f"{time.time() - t0:.2f} s")

        # --- load: 8 clients x 25 requests
        expected = {q: single[q][:0] for q in PROMPTS}
        for q in PROMPTS:
            expected[q] = cli.completions.create(model="x", prompt=q, max_tokens=6, temperature=0).choices[0].text
        bad, completed, dropped = [], [0], [0]

        def client(k):
            rnd = random.Random(k)
            for i in range(25):
                q = rnd.choice(PROMPTS)
                mode = rnd.random()
                body = {"prompt": q, "max_tokens": 6, "temperature": 0}
                try:
                    if mode < 0.15:
                        stream_text(port, "/v1/completions", dict(body, max_tokens=50), KEY, stop_after=1)
                        dropped[0] += 1
                        continue
                    if mode < 0.6:
                        text, done, _ = stream_text(port, "/v1/completions", body, KEY)
                    else:
                        st, b = raw(port, "POST", "/v1/completions", body, key=KEY)
                        text, done = (b["choices"][0]["text"], True) if st == 200 else (None, False)
                        if st == 503:
                            continue
                    if not done or text != expected[q]:
                        bad.append((q, text))
                    else:
                        completed[0] += 1
                except Exception as e:  # noqa: BLE001 - any failure is a finding
                    bad.append((q, repr(e)))
        t0 = time.time()
        ts = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        h = wait_idle(port, KEY, 30)
        check(not bad and p.poll() is None and h["slots_processing"] == 0 and h["requests_queued"] == 0,
              f"load 8 x 25: {completed[0]} completed correctly, {dropped[0]} dropped early, {len(bad)} wrong "
              f"{bad[:2]}, in {time.time() - t0:.1f} s; /health {h}")
    finally:
        # --- SIGTERM with a request running: it completes, the server exits 0
        result = {}
        th = threading.Thread(target=lambda: result.update(r=raw(port, "POST", "/v1/completions",
                                                                 {"prompt": PROMPTS[0], "max_tokens": 120,
                                                                  "temperature": 0}, key=KEY)))
        th.start()
        end = time.time() + 30 * TIMEOUT_SCALE
        while time.time() < end and th.is_alive() and health(port, KEY)["slots_processing"] < 1:
            time.sleep(0.02)  # the request is running
        p.send_signal(signal.SIGTERM)
        th.join(120 * TIMEOUT_SCALE)
        try:
            rc = p.wait(60 * TIMEOUT_SCALE)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = None
        r = result.get("r")
        check(rc == 0 and r and r[0] == 200 and r[1]["usage"]["completion_tokens"] >= 1,
              f"SIGTERM: the running request finished ({r[0] if r else None}) and the server exited {rc}")

    # --- 503: one slot, a queue of 4, 8 requests at once
    p, port = start(server, model, "-np", "1", "-c", "128")
    codes = []
    ts = [threading.Thread(target=lambda: codes.append(raw(port, "POST", "/v1/completions",
                                                           {"prompt": "Hi", "max_tokens": 30})[0])) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    p.send_signal(signal.SIGTERM)
    p.wait(60)
    check(sorted(set(codes)) == [200, 503] and codes.count(200) >= 5,
          f"one slot and a bounded queue: {codes.count(200)} answered, {codes.count(503)} refused with 503")

    print(f"{'PASS' if not failures else 'FAIL'}: {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
