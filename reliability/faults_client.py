#!/usr/bin/env python3
"""Load client of the fault-injection part (reliability/faults.sh); Python standard library only.

    run     drives requests at full speed from several threads (one keep-alive connection each)
            until a stop file appears; records every request (start time, latency, operation,
            status) and every acknowledged create (the 201's item and what was sent).
    report  judges one fault from those records and the fault's timestamps (an events file of
            `name epoch-seconds` lines written by faults.sh), prints `key=value` figures and exits
            1 when the server broke its promises.
    verify  reads back every acknowledged item (GET /items/{id}) and compares it field by field:
            prints acknowledged, checked, lost and corrupted, and exits 1 unless both are 0.

`--mix` names one operation per thread (`create*6,ready` is six threads creating items and one
polling readiness): `create` (POST /items/), `login` (POST /token), `limited` (GET /users/me, a
route faults.sh gives a tight limit), `ready` (GET /ready, paced every 100 ms). The access token
comes from $REL_TOKEN and the login password from $REL_LOGIN_PASSWORD (not the command line,
which other users of the machine can read).
"""

import argparse
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

ITEM_FIELDS = ("id", "name", "description", "price", "tax", "price_with_tax", "owner_id",
               "created_at", "updated_at")


class Connection:
    """One keep-alive HTTP/1.1 connection, reopened after any failure."""

    def __init__(self, url, timeout):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        """(status, body bytes); raises OSError / HTTPException when the server is gone."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            response = self.conn.getresponse()
            data = response.read()
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return response.status, data
        except BaseException:
            self.close()
            raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Worker(threading.Thread):
    def __init__(self, args, index, op, stop, tag):
        super().__init__(daemon=True)
        self.args, self.index, self.op, self.stop, self.tag = args, index, op, stop, tag
        self.records = []  # (start, latency_ms, op, status)
        self.acked = []    # {"sent": {...}, "item": {...}}
        self.seq = 0

    def run(self):
        conn = Connection(self.args.url, self.args.timeout)
        auth = {"Authorization": "Bearer " + self.args.token}
        op = self.op
        while not self.stop.is_set():
            self.seq += 1
            sent = None
            if op == "create":
                sent = {"name": f"fault-{self.tag}-{self.index}-{self.seq}",
                        "description": f"<p>acknowledged <b>{self.seq}</b></p>",
                        "price": round(1 + (self.seq % 997) * 0.25, 2),
                        "tax": round((self.index % 7) * 0.5, 2)}
                method, path = "POST", "/items/"
                body = json.dumps(sent)
                headers = dict(auth, **{"Content-Type": "application/json"})
            elif op == "login":
                method, path = "POST", "/token"
                body = urllib.parse.urlencode({"username": self.args.login_user,
                                               "password": self.args.login_password})
                headers = {"Content-Type": "application/x-www-form-urlencoded"}
            elif op == "limited":
                method, path, body, headers = "GET", "/users/me", None, auth
            elif op == "ready":
                method, path, body, headers = "GET", "/ready", None, {}
            else:
                raise SystemExit(f"unknown operation {op}")
            start = time.time()
            try:
                status, data = conn.request(method, path, body, headers)
            except (OSError, http.client.HTTPException) as err:
                self.records.append((start, (time.time() - start) * 1000, op,
                                     "err-" + type(err).__name__))
                time.sleep(0.02)  # the server is gone: do not spin while it restarts
                continue
            self.records.append((start, (time.time() - start) * 1000, op, status))
            if op == "create" and status == 201:
                self.acked.append({"sent": sent, "item": json.loads(data)})
            if status >= 500 and status != 503:
                sys.stderr.write(f"{op}: {status} {data[:200]!r}\n")
            if op == "ready":
                time.sleep(0.1)
        conn.close()


def threads_of(mix):
    """`create*6,ready` -> ["create", ..., "create", "ready"]."""
    ops = []
    for part in mix.split(","):
        op, _, count = part.partition("*")
        ops += [op] * int(count or 1)
    return ops


def cmd_run(args):
    stop = threading.Event()
    tag = f"{os.getpid()}-{int(time.time())}"
    workers = [Worker(args, i, op, stop, tag) for i, op in enumerate(threads_of(args.mix))]
    for w in workers:
        w.start()
    deadline = time.time() + args.max_seconds
    while not os.path.exists(args.stop_file) and time.time() < deadline:
        time.sleep(0.05)
    stop.set()
    for w in workers:
        w.join()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "requests.tsv"), "a") as f:
        for w in workers:
            for r in w.records:
                f.write("%.6f\t%.3f\t%s\t%s\n" % r)
    with open(os.path.join(args.out, "acked.jsonl"), "a") as f:
        for w in workers:
            for a in w.acked:
                f.write(json.dumps(a) + "\n")
    total = sum(len(w.records) for w in workers)
    acked = sum(len(w.acked) for w in workers)
    print(f"requests={total} acknowledged={acked}")


def load_records(path):
    records = []
    with open(path) as f:
        for line in f:
            start, latency, op, status = line.rstrip("\n").split("\t")
            records.append((float(start), float(latency), op,
                            int(status) if status.isdigit() else status))
    return records


def load_events(path):
    events = {}
    with open(path) as f:
        for line in f:
            name, stamp = line.split()
            events.setdefault(name, []).append(float(stamp))
    return events


def summary(records):
    counts = {}
    for r in records:
        counts[r[3]] = counts.get(r[3], 0) + 1
    return ",".join(f"{k}:{counts[k]}" for k in sorted(counts, key=str)) or "none"


# What each scenario allows while the fault lasts, and requires once it is over:
# op -> (statuses allowed during the fault, statuses required after recovery). "err" stands for
# any failure to get an answer at all (connection refused or cut).
EXPECT = {
    "pg-stop": {"create": ({201, 503}, {201}), "ready": ({200, 503}, {200})},
    # Redis: logins fail closed (503, or 429 from a limit decided before the outage), other
    # limits fail open (the tightly limited route answers 200 beyond its limit).
    # A login may also fail closed with Redis up, when a check misses its 50 ms budget on a
    # starved machine: tolerated outside outages up to STRAY_LOGIN_503 of logins, and reported.
    "redis-stop": {"create": ({201}, {201}), "login": ({200, 429, 503}, {200, 429, 503}),
                   "limited": ({200, 429}, {200, 429}), "ready": ({200, 503}, {200})},
    # SIGKILL: while the server is dead, requests cannot even connect.
    "kill9": {"create": ({201, "err"}, {201})},
}


STRAY_LOGIN_503 = 0.05


def allowed(status, statuses):
    return status in statuses or ("err" in statuses and str(status).startswith("err-"))


def cmd_report(args):
    records = sorted(load_records(args.requests), key=lambda r: r[0])
    events = load_events(args.events)
    downs, ups = events.get("down", []), events.get("up", [])
    if len(downs) != len(ups) or not downs:
        raise SystemExit("report: the events file needs as many `down` as `up` lines")
    expect = EXPECT[args.scenario]
    failures = []
    windows = list(zip(downs, ups))

    def overlaps(r, window):  # the request was under way at some point of the fault
        return r[0] < window[1] and r[0] + r[1] / 1000 >= window[0]

    during_all, max_503, max_during, recovery = [], 0.0, 0.0, []
    healthy_before = [r for r in records if r[0] + r[1] / 1000 < downs[0]]
    for r in healthy_before:
        if not allowed(r[3], expect[r[2]][1]):
            failures.append(f"{r[2]} answered {r[3]} before any fault")
    for cycle, window in enumerate(windows, 1):
        down, up = window
        nxt = downs[cycle] if cycle < len(downs) else float("inf")
        during = [r for r in records if overlaps(r, window)]
        during_all += during
        for r in during:
            if not allowed(r[3], expect[r[2]][0]):
                failures.append(f"cycle {cycle}: {r[2]} answered {r[3]} during the fault")
            if r[3] == 503:
                max_503 = max(max_503, r[1])
            if not str(r[3]).startswith("err-"):
                max_during = max(max_during, r[1])
        # Each operation must show the outage's promised answer at least once ...
        got = {op: {r[3] for r in during if r[2] == op} for op in expect}
        if args.scenario == "pg-stop" and 503 not in got["create"]:
            failures.append(f"cycle {cycle}: no create answered 503 while PostgreSQL was down")
        if "ready" in got and 503 not in got["ready"]:
            failures.append(f"cycle {cycle}: /ready never answered 503 during the outage")
        if "login" in got and 503 not in got["login"]:
            failures.append(f"cycle {cycle}: no login failed closed (503) while Redis was down")
        if "limited" in got and 200 not in got["limited"]:
            failures.append(f"cycle {cycle}: the limited route did not fail open")
        # ... and recover: from some point after `up`, every answer is the healthy one.
        after = [r for r in records if r[0] >= up and r[0] + r[1] / 1000 < nxt]
        if not after:
            failures.append(f"cycle {cycle}: no request after the restart")
            continue
        bad = [r for r in after if not allowed(r[3], expect[r[2]][1])]
        last_bad = max((r[0] + r[1] / 1000 for r in bad), default=up)
        healthy = [r for r in after if r[0] > last_bad]
        if not healthy or healthy[-1][0] - last_bad < args.min_healthy:
            failures.append(f"cycle {cycle}: did not recover after the restart (last failures: "
                            f"{[(round(r[0] - up, 2), r[2], r[3]) for r in bad[-3:]]})")
        else:
            recovery.append(max(0.0, last_bad - up))
        if "limited" in got:
            limited = [r for r in healthy if r[2] == "limited"]
            if limited and 429 not in {r[3] for r in limited}:
                failures.append(f"cycle {cycle}: the limit did not resume after Redis came back")
    outside = [r for r in records if r[2] == "login" and not any(overlaps(r, w) for w in windows)]
    stray = sum(1 for r in outside if r[3] == 503)
    if outside and stray > STRAY_LOGIN_503 * len(outside):
        failures.append(f"{stray} of {len(outside)} logins answered 503 with Redis up")
    for cycle, (down, up) in enumerate(windows, 1):
        nxt = downs[cycle] if cycle < len(downs) else float("inf")
        logins = [r for r in outside if up <= r[0] < nxt]
        if logins and 200 not in {r[3] for r in logins}:
            failures.append(f"cycle {cycle}: no login succeeded after Redis came back")
    if max_503 > args.max_503_ms:
        failures.append(f"a 503 took {max_503:.0f} ms (budget {args.max_503_ms:.0f} ms)")
    if max_during > args.max_latency_ms:
        failures.append(f"a request took {max_during:.0f} ms during the fault "
                        f"(budget {args.max_latency_ms:.0f} ms)")
    recovered = "yes" if len(recovery) == len(downs) else "no"
    print(f"requests={len(during_all)} statuses={summary(during_all)} max_503_ms={max_503:.0f} "
          f"max_ms={max_during:.0f} recovered={recovered} "
          f"recovery_ms={max(recovery, default=0) * 1000:.0f}"
          + (f" login_503_outside={stray}/{len(outside)}" if outside else "")
          + f" total={len(records)}")
    for f in failures[:20]:
        sys.stderr.write(f"FAIL {f}\n")
    sys.exit(1 if failures else 0)


def cmd_verify(args):
    acked = []
    with open(args.acked) as f:
        for line in f:
            acked.append(json.loads(line))
    lost, corrupted, checked = [], [], 0
    lock = threading.Lock()
    chunks = [acked[i::args.threads] for i in range(args.threads)]

    def check(chunk):
        nonlocal checked
        conn = Connection(args.url, args.timeout)
        for entry in chunk:
            item, sent = entry["item"], entry["sent"]
            status, data = conn.request("GET", f"/items/{item['id']}", None,
                                        {"Authorization": "Bearer " + args.token})
            with lock:
                checked += 1
                if status == 404:
                    lost.append(item["id"])
                    continue
                if status != 200:
                    raise SystemExit(f"verify: GET /items/{item['id']} answered {status}")
                stored = json.loads(data)
                same = all(stored.get(k) == item.get(k) for k in ITEM_FIELDS)
                same = same and all(item.get(k) == v for k, v in sent.items())
                if not same:
                    corrupted.append((item, stored))
        conn.close()

    threads = [threading.Thread(target=check, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [a["item"]["id"] for a in acked]
    duplicates = len(ids) - len(set(ids))
    # Items committed whose 201 never reached a client (in flight at a fault): allowed.
    status, data = Connection(args.url, args.timeout).request(
        "GET", "/items/?limit=1", None, {"Authorization": "Bearer " + args.token})
    stored = json.loads(data)["total"] if status == 200 else -1
    print(f"acknowledged={len(acked)} checked={checked} lost={len(lost)} "
          f"corrupted={len(corrupted)} duplicate_ids={duplicates} stored={stored}")
    for item_id in lost[:10]:
        sys.stderr.write(f"LOST item {item_id}\n")
    for item, stored in corrupted[:10]:
        sys.stderr.write(f"CORRUPTED acknowledged {item} stored {stored}\n")
    ok = checked == len(acked) and not lost and not corrupted and not duplicates
    ok = ok and stored >= len(acked)
    sys.exit(0 if ok else 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--url", required=True)
    run.add_argument("--token", default=os.environ.get("REL_TOKEN", ""))
    run.add_argument("--mix", default="create*8")
    run.add_argument("--login-user", default="")
    run.add_argument("--login-password", default=os.environ.get("REL_LOGIN_PASSWORD", ""))
    run.add_argument("--stop-file", required=True)
    run.add_argument("--max-seconds", type=float, default=600)
    run.add_argument("--timeout", type=float, default=40)
    run.add_argument("--out", required=True)
    report = sub.add_parser("report")
    report.add_argument("--scenario", choices=sorted(EXPECT), required=True)
    report.add_argument("--requests", required=True)
    report.add_argument("--events", required=True)
    report.add_argument("--max-503-ms", type=float, required=True)
    report.add_argument("--max-latency-ms", type=float, required=True)
    report.add_argument("--min-healthy", type=float, default=1.0,
                        help="seconds of healthy answers required after each recovery")
    verify = sub.add_parser("verify")
    verify.add_argument("--url", required=True)
    verify.add_argument("--token", default=os.environ.get("REL_TOKEN", ""))
    verify.add_argument("--acked", required=True)
    verify.add_argument("--threads", type=int, default=4)
    verify.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()
    {"run": cmd_run, "report": cmd_report, "verify": cmd_verify}[args.command](args)


if __name__ == "__main__":
    main()
