"""`mcsan serve` under load: 32 concurrent clients against an index of 1,000,000 videos.

Starts ``mcsan serve INDEX`` in its own process as a user would, then, from a second process
(so that client and server each have their own interpreter):

* ``in_process``   one query at a time through ``VideoIndex.search`` in this process (the
                   `mcsan search` path), p50 / p99: what a query costs without HTTP;
* ``one_client``   one client, one request at a time, over HTTP on loopback: the same queries
                   plus the HTTP overhead;
* ``concurrent``   ``--clients`` clients (asyncio, one keep-alive connection each) sending
                   ``POST /search`` back to back for ``--seconds``: requests/s, p50 / p99,
                   errors (any answer but 200, or a failed connection).

    .venv/bin/python benchmarks/serve.py --index /tmp/mcsan-search-bench/index-clustered-1000000
    .venv/bin/python benchmarks/serve.py --index demo_out/index --seconds 5      # small

The 1,000,000-video index is the one ``benchmarks/search.py`` writes. Writes
``benchmarks/results/serve.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

QUERIES = ["a dog chases a cat", "a man is riding a horse", "the girl pushes the boy",
           "a woman is walking in the park", "a cat is chased by a dog", "the child runs",
           "a police officer follows a dog", "the horse carries the man"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, required=True, help="index directory")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--sequential", type=int, default=100,
                        help="queries for the in-process and one-client figures")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/serve.json"))
    return parser.parse_args(argv)


def percentiles(values: list[float]) -> dict[str, float]:
    return {"p50": round(float(np.percentile(values, 50)), 2),
            "p99": round(float(np.percentile(values, 99)), 2), "count": len(values)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(index: Path, port: int) -> subprocess.Popen:
    command = Path(sys.executable).with_name("mcsan")
    process = subprocess.Popen([str(command), "serve", str(index), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    import httpx

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mcsan serve ended: {process.stdout.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("mcsan serve did not answer /health within 300 s")


def in_process(index_dir: Path, count: int) -> dict:
    from mcsan.index import open_index

    index = open_index(index_dir, device="cpu")
    index.search([QUERIES[0]], k=10)
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        index.search([QUERIES[i % len(QUERIES)]], k=10)
        latencies.append(1e3 * (time.perf_counter() - started))
    return percentiles(latencies)


def one_client(url: str, count: int) -> dict:
    import httpx

    latencies = []
    with httpx.Client(base_url=url, timeout=60) as client:
        client.post("/search", json={"query": QUERIES[0], "k": 10})
        for i in range(count):
            started = time.perf_counter()
            response = client.post("/search", json={"query": QUERIES[i % len(QUERIES)],
                                                     "k": 10})
            latencies.append(1e3 * (time.perf_counter() - started))
            response.raise_for_status()
    return percentiles(latencies)


async def concurrent(url: str, clients: int, seconds: float) -> dict:
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    stop = time.monotonic() + seconds

    async def client(number: int) -> None:
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as session:
            i = number
            while time.monotonic() < stop:
                body = {"query": QUERIES[i % len(QUERIES)], "k": 10}
                started = time.perf_counter()
                try:
                    response = await session.post("/search", json=body)
                    if response.status_code != 200:
                        errors.append(f"{response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as error:
                    errors.append(repr(error))
                latencies.append(1e3 * (time.perf_counter() - started))
                i += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.perf_counter() - started
    return {"clients": clients, "seconds": round(elapsed, 1), "requests": len(latencies),
            "requests_per_second": round(len(latencies) / elapsed, 1),
            "errors": len(errors), "first_errors": errors[:5],
            "latency_ms": percentiles(latencies)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    server = start_server(args.index, port)
    startup = time.perf_counter() - started
    try:
        report = {
            "command": "python benchmarks/serve.py " + " ".join(argv or sys.argv[1:]),
            "index": str(args.index),
            "videos": json.loads((args.index / "index.json").read_text())["count"],
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "server_startup_seconds": round(startup, 1),
            "one_client_ms": one_client(url, args.sequential),
            "concurrent": asyncio.run(concurrent(url, args.clients, args.seconds)),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)
    report["in_process_ms"] = in_process(args.index, args.sequential)  # the server is gone
    report["http_overhead_p50_ms"] = round(report["one_client_ms"]["p50"]
                                           - report["in_process_ms"]["p50"], 2)
    print(json.dumps(report, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.out}")
    return 1 if report["concurrent"]["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
