"""Aggregate generation throughput of bllm-server with 1, 2, 4, 8 concurrent
streaming clients (docs/server.md).

  server_throughput.py BLLM_SERVER MODEL.stb [--threads T] [--tokens N] [--clients 1,2,4,8]

Starts the server with --parallel = the largest client count, warms it up,
then for each count runs that many clients at once, each streaming a
completion of N tokens (greedy, different prompts, no stop), and prints the
completion tokens of all clients over the wall time of the round, with the
server's evaluation count per round (one batched evaluation per step)."""
import argparse
import http.client
import json
import socket
import subprocess
import threading
import time

PROMPTS = ["Once upon a time", "The capital of France is", "1, 2, 3, 4,", "Dear diary, today I",
           "In the beginning", "The best way to learn", "She opened the door and", "Here is a recipe for"]


def post_stream(port, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/v1/completions", body=json.dumps(body).encode())
    r = c.getresponse()
    n = 0
    for line in r:
        if line.startswith(b"data: {"):
            ev = json.loads(line[6:])
            n = (ev.get("usage") or {}).get("completion_tokens", n)
    c.close()
    return n


def evals(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("GET", "/health")
    h = json.loads(c.getresponse().read())
    c.close()
    return h["evaluations"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("server")
    ap.add_argument("model")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--clients", default="1,2,4,8")
    a = ap.parse_args()
    counts = [int(x) for x in a.clients.split(",")]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([a.server, "-m", a.model, "--port", str(port), "-np", str(max(counts)), "-t", a.threads,
                          "-c", "512"], stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                evals(port)
                break
            except OSError:
                time.sleep(0.1)
        body = lambda i: {"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": a.tokens, "temperature": 0,
                          "stream": True}
        post_stream(port, body(0))  # warm-up
        print(f"| model | clients | completion tokens | wall s | aggregate t/s | per client t/s | evaluations |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for n in counts:
            got = [0] * n
            e0 = evals(port)
            t0 = time.time()
            ts = [threading.Thread(target=lambda i=i: got.__setitem__(i, post_stream(port, body(i)))) for i in range(n)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            dt = time.time() - t0
            tot = sum(got)
            print(f"| {a.model.split('/')[-1]} | {n} | {tot} | {dt:.2f} | {tot / dt:.1f} | {tot / dt / n:.1f} | "
                  f"{evals(port) - e0} |", flush=True)
    finally:
        p.terminate()
        p.wait(60)


if __name__ == "__main__":
    main()
