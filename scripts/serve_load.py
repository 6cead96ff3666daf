#!/usr/bin/python3
"""Concurrent streaming clients against a running `owl serve` (loopback).

Each client sends one streaming POST /v1/completions (temperature 0 unless
--temperature) with its own prompt, reads the server-sent events and records
the time to its first token, its text and its completion token count
(stream_options.include_usage). All clients start together (a barrier).
Prints one JSON object: per-client results and the aggregate generated
tokens per second (all completion tokens / wall time from the first request
to the last [DONE]), TTFT p50 / p99. Python standard library only.

    serve_load.py --port 8080 --clients 8 --max-tokens 128 --prompt "Once upon a time"
    serve_load.py --port 8080 --clients 8 --prompts-file prompts.txt   # one prompt a line, used in turn
"""
import argparse
import http.client
import json
import sys
import threading
import time


def percentile(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def client(a, i, prompt, barrier, out):
    body = {
        "model": a.model,
        "prompt": prompt,
        "max_tokens": a.max_tokens,
        "temperature": a.temperature,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"Content-Type": "application/json"}
    if a.key:
        headers["Authorization"] = "Bearer " + a.key
    res = {"client": i, "prompt": prompt, "text": "", "tokens": 0, "ttft": None, "error": None}
    conn = http.client.HTTPConnection(a.host, a.port, timeout=a.timeout)
    barrier.wait()
    t0 = time.monotonic()
    res["t0"] = t0
    try:
        conn.request("POST", "/v1/completions", json.dumps(body), headers)
        r = conn.getresponse()
        if r.status != 200:
            res["error"] = "HTTP %d: %s" % (r.status, r.read(300).decode("utf-8", "replace"))
        else:
            done = False
            while not done:
                line = r.readline()
                if not line:
                    break
                line = line.strip()
                if not line.startswith(b"data: "):
                    continue
                data = line[6:]
                if data == b"[DONE]":
                    done = True
                    break
                ev = json.loads(data)
                for ch in ev.get("choices") or []:
                    piece = ch.get("text") or ""
                    if piece and res["ttft"] is None:
                        res["ttft"] = time.monotonic() - t0
                    res["text"] += piece
                if ev.get("usage"):
                    res["tokens"] = ev["usage"]["completion_tokens"]
            if not done:
                res["error"] = "stream ended without [DONE]"
    except Exception as e:  # reported, not raised: the other clients go on
        res["error"] = repr(e)
    res["t1"] = time.monotonic()
    conn.close()
    out[i] = res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", default="")
    ap.add_argument("--model", default="model")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--prompt", action="append", default=[])
    ap.add_argument("--prompts-file")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--timeout", type=float, default=300.0)
    a = ap.parse_args()
    prompts = list(a.prompt)
    if a.prompts_file:
        with open(a.prompts_file, encoding="utf-8") as f:
            prompts += [ln.rstrip("\n") for ln in f if ln.strip()]
    if not prompts:
        prompts = ["Once upon a time"]
    if a.clients < 1 or a.clients > 256:
        sys.exit("serve_load.py: --clients must be 1..256")
    out = [None] * a.clients
    barrier = threading.Barrier(a.clients)
    th = [threading.Thread(target=client, args=(a, i, prompts[i % len(prompts)], barrier, out)) for i in range(a.clients)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    t0 = min(r["t0"] for r in out)
    t1 = max(r["t1"] for r in out)
    toks = sum(r["tokens"] for r in out)
    ttfts = [r["ttft"] for r in out if r["ttft"] is not None]
    summary = {
        "clients": a.clients,
        "errors": sum(1 for r in out if r["error"]),
        "completion_tokens": toks,
        "wall_s": t1 - t0,
        "tokens_per_s": toks / (t1 - t0) if t1 > t0 else 0.0,
        "ttft_p50_s": percentile(ttfts, 50),
        "ttft_p99_s": percentile(ttfts, 99),
        "results": [{k: r[k] for k in ("client", "prompt", "text", "tokens", "ttft", "error")} for r in out],
    }
    json.dump(summary, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
