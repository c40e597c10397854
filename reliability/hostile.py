#!/usr/bin/env python3
"""Hostile traffic against a running Bulwark server (part `hostile` of reliability/run).

    hostile.py BASE_URL TOKEN --seconds N --idle 1000 --slow 200

1. Baseline: a normal client (one request at a time, new connection every tenth request)
   measures GET /items/ latency for N seconds.
2. Attack: 1000 connections that send nothing and slowloris clients that trickle request
   headers a byte at a time are held open (re-opened as the server cuts them) while the same
   normal client measures again. The normal client must be served (no failure) within its
   usual latency (p99 at most 5x the baseline's + 10 ms: the slack a shared CI machine needs).
3. Probes, each on its own connection: 64 KiB of headers -> 431, Content-Length with
   Transfer-Encoding -> 400, JSON nested 100 000 deep -> 422 within a second, bytes that are
   not UTF-8 in path, query, header and body -> 4xx, never 5xx; every error body is JSON.

Prints `FIGURE hostile ...` lines; exits 1 on any failed check. Standard library only.
"""

import argparse
import asyncio
import json
import socket
import statistics
import sys
import threading
import time
import urllib.parse

FAILURES = []


def check(ok, what):
    if not ok:
        FAILURES.append(what)
        print(f"FAIL: {what}", file=sys.stderr)


def content_length(head):
    """The Content-Length of a response head (bytes), or None."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return None


def status_of(head):
    """The status code of a response head (bytes), or 0 when it has none."""
    try:
        return int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def raw_request(host, port, data, timeout=10.0):
    """Sends raw bytes, returns (status, headers_text, body_bytes, seconds)."""
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass  # the server may answer and close before reading everything
        buf = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            buf += chunk
            head, sep, body = buf.partition(b"\r\n\r\n")
            if sep:
                length = content_length(head)
                if length is not None and len(body) >= length:
                    break
    took = time.monotonic() - started
    head, _, body = buf.partition(b"\r\n\r\n")
    return status_of(head), head.decode("latin-1"), body, took


class NormalClient:
    """One request at a time; keep-alive, with a new connection every tenth request."""

    def __init__(self, host, port, token):
        self.host, self.port = host, port
        self.request = (
            f"GET /items/ HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()
        self.sock = None

    def _connect(self):
        if self.sock:
            self.sock.close()
        self.sock = socket.create_connection((self.host, self.port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def one(self, fresh):
        started = time.monotonic()
        if fresh or self.sock is None:
            self._connect()
        self.sock.sendall(self.request)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        length = content_length(head) or 0
        while len(body) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            body += chunk
        return status_of(head), time.monotonic() - started

    def measure(self, seconds):
        latencies, failures, n = [], 0, 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                status, took = self.one(fresh=(n % 10 == 0))
                if status != 200:
                    failures += 1
                latencies.append(took)
            except OSError:
                failures += 1
                self.sock = None
            n += 1
            time.sleep(0.005)
        if self.sock:
            self.sock.close()
            self.sock = None
        return latencies, failures


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class Attack:
    """Idle and slowloris connections, kept at their counts until stopped."""

    def __init__(self, host, port, idle, slow):
        self.host, self.port, self.idle, self.slow = host, port, idle, slow
        self.opened = {"idle": 0, "slow": 0}
        self.held = {"idle": 0, "slow": 0}
        self.peak = {"idle": 0, "slow": 0}
        self.cut = 0
        self.refused = 0
        self.stop = None
        self.loop = None

    async def _hold(self, kind):
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                self.refused += 1
                await asyncio.sleep(0.2)
                continue
            self.opened[kind] += 1
            self.held[kind] += 1
            self.peak[kind] = max(self.peak[kind], self.held[kind])
            try:
                if kind == "slow":
                    writer.write(b"GET /items/ HTTP/1.1\r\nHost: x\r\n")
                    await writer.drain()
                    while not self.stop.is_set():
                        writer.write(b"X")  # one byte of a header that never ends
                        await writer.drain()
                        try:
                            data = await asyncio.wait_for(reader.read(1024), 1.0)
                            if not data:
                                break
                        except asyncio.TimeoutError:
                            pass
                else:
                    while not self.stop.is_set():
                        try:
                            data = await asyncio.wait_for(reader.read(1024), 0.5)
                            if not data:
                                break
                        except asyncio.TimeoutError:
                            pass
                if not self.stop.is_set():
                    self.cut += 1
            except OSError:
                if not self.stop.is_set():
                    self.cut += 1
            finally:
                self.held[kind] -= 1
                writer.close()

    async def _main(self, ready):
        self.stop = asyncio.Event()
        tasks = [asyncio.create_task(self._hold("idle")) for _ in range(self.idle)]
        tasks += [asyncio.create_task(self._hold("slow")) for _ in range(self.slow)]
        while self.held["idle"] + self.held["slow"] < (self.idle + self.slow) * 0.95:
            await asyncio.sleep(0.05)
        ready.set()
        await self.stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def start(self):
        ready = threading.Event()

        def run():
            self.loop = asyncio.new_event_loop()
            self.loop.run_until_complete(self._main(ready))

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        if not ready.wait(60):
            raise RuntimeError("could not open the attack connections")

    def finish(self):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)


def probes(host, port, token):
    results = []
    auth = f"Authorization: Bearer {token}\r\n"

    big = "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + "a" * (64 * 1024) + "\r\n\r\n"
    results.append(("64 KiB of headers", big.encode(), 431, None))

    body = '{"name":"smuggled","price":1.0}'
    chunked = f"{len(body):x}\r\n{body}\r\n0\r\n\r\n"
    for order in ("cl-te", "te-cl"):
        framing = (
            f"Content-Length: {len(chunked)}\r\nTransfer-Encoding: chunked"
            if order == "cl-te"
            else f"Transfer-Encoding: chunked\r\nContent-Length: {len(body)}"
        )
        req = (
            f"POST /items/ HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
            f"{framing}\r\n\r\n{chunked}"
        )
        results.append((f"Content-Length + Transfer-Encoding ({order})", req.encode(), 400, None))

    for name, nested in (
        ("arrays", "[" * 100_000),
        ("objects", '{"a":' * 100_000),
    ):
        req = (
            f"POST /items/ HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
            f"Content-Length: {len(nested)}\r\n\r\n{nested}"
        )
        results.append((f"JSON nested 100000 deep ({name})", req.encode(), 422, 1.0))

    a = auth.encode()
    json_body = b'{"name":"\xff\xfe","price":1.0}'
    form_body = b"username=\xff&password=%FF%FE"
    for what, data in (
        ("raw bytes in path", b"GET /items/\xff\xfe HTTP/1.1\r\nHost: x\r\n" + a + b"\r\n"),
        ("encoded bytes in path", b"GET /items/%FF%FE HTTP/1.1\r\nHost: x\r\n" + a + b"\r\n"),
        ("raw bytes in query", b"GET /items/?limit=\xff HTTP/1.1\r\nHost: x\r\n" + a + b"\r\n"),
        ("encoded bytes in query", b"GET /items/?limit=%FF HTTP/1.1\r\nHost: x\r\n" + a + b"\r\n"),
        ("bytes in a header", b"GET /items/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\r\n\r\n"),
        (
            "bytes in a JSON body",
            b"POST /items/ HTTP/1.1\r\nHost: x\r\n" + a + b"Content-Type: application/json\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(json_body) + json_body,
        ),
        (
            "bytes in a form body",
            b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(form_body) + form_body,
        ),
    ):
        results.append((f"invalid UTF-8: {what}", data, "4xx", None))

    passed = 0
    for what, data, expected, within in results:
        status, head, body, took = raw_request(host, port, data)
        ok = status == expected if isinstance(expected, int) else 400 <= status < 500
        try:
            ok = ok and "detail" in json.loads(body)
        except ValueError:
            ok = False
        if within is not None:
            ok = ok and took < within
        check(ok, f"probe {what}: expected {expected}, got {status} in {took * 1000:.0f} ms {body[:120]!r}")
        passed += ok
        print(f"probe {what}: {status} in {took * 1000:.1f} ms")
    return passed, len(results)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("token")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--slow", type=int, default=200)
    args = parser.parse_args()
    url = urllib.parse.urlparse(args.base_url)
    host, port = url.hostname, url.port

    client = NormalClient(host, port, args.token)
    client.measure(1)  # warm-up
    base, base_fail = client.measure(args.seconds)
    attack = Attack(host, port, args.idle, args.slow)
    attack.start()
    under, under_fail = client.measure(args.seconds)
    held_at_end = dict(attack.held)
    attack.finish()

    b50, b99 = percentile(base, 50) * 1000, percentile(base, 99) * 1000
    u50, u99 = percentile(under, 50) * 1000, percentile(under, 99) * 1000
    print(
        f"FIGURE hostile phase=baseline requests={len(base)} failures={base_fail} "
        f"p50_ms={b50:.2f} p99_ms={b99:.2f} max_ms={max(base) * 1000:.1f}"
    )
    print(
        f"FIGURE hostile phase=attack idle_connections={args.idle} slowloris={args.slow} "
        f"peak_idle={attack.peak['idle']} peak_slow={attack.peak['slow']} "
        f"held_at_end={held_at_end['idle'] + held_at_end['slow']} opened={sum(attack.opened.values())} "
        f"cut_by_server={attack.cut} connect_refused={attack.refused} requests={len(under)} "
        f"failures={under_fail} p50_ms={u50:.2f} p99_ms={u99:.2f} max_ms={max(under) * 1000:.1f} "
        f"p99_ratio={u99 / b99:.2f}"
    )
    check(base_fail == 0, "the normal client failed before the attack")
    check(under_fail == 0, f"the normal client failed {under_fail} times under attack")
    check(attack.peak["idle"] >= args.idle * 0.95, "the idle connections were not all open at once")
    check(u99 <= 5 * b99 + 10, f"p99 under attack {u99:.1f} ms > 5 x {b99:.1f} ms + 10 ms")

    passed, total = probes(host, port, args.token)
    print(f"FIGURE hostile phase=probes passed={passed} total={total}")
    # The server still serves after all that.
    status, _ = NormalClient(host, port, args.token).one(fresh=True)
    check(status == 200, f"the server answers {status} after the attack")
    if FAILURES:
        print(f"{len(FAILURES)} hostile-traffic check(s) failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
