#!/usr/bin/env python3
"""The tables of bench/load.sh, from the scenario lines it collected.

Input: one line per scenario run, `SERVER REP <line of the shared bench.sh>`, where SERVER is
`ceiling`, `sqlite`, `postgres` or `fastapi`, e.g.
    sqlite 1 S2 rps=14011.2 p50_ms=2.170 p99_ms=7.180 ... vmhwm_kb=18000 valid=1 path=/items/1
A ceiling line may end with `before=SERVER:SCENARIO` (PAIRED=1): that ceiling run was made just
before that scenario, which is then compared with it: its ratio is the median, over
repetitions, of its rate over the ceiling run next to it. Without such runs a ratio is the
scenario's median rate over the median of the ceiling's runs.
Runs with valid=0 are flagged and left out of the medians. Prints Markdown tables (readable as
they are, pasteable into docs/performance.md). Exit status 1 when a run was flagged, or with
--strict 1 when a target was missed.
"""

import argparse
import statistics
import sys
from collections import defaultdict

SCENARIOS = ["S1", "S2", "S3", "S4", "S5", "S6", "S7"]
LABELS = {
    "S1": "S1 GET /health",
    "S2": "S2 GET /items/{id}",
    "S3": "S3 POST /items/ (201)",
    "S4": "S4 POST /items/ invalid (422)",
    "S5": "S5 GET /protected, bad token (401)",
    "S6": "S6 POST /token (login)",
    "S7": "S7 = S2 beside S6 logins",
}
# Share of the ceiling's S1 requests/s each scenario must reach (issue #9).
RATIO_TARGETS = {"S2": 0.20, "S3": 0.05, "S4": 0.40, "S5": 0.80}
S7_P99_FACTOR = 2.0
RSS_TARGET_KB = 30e6 / 1024  # 30 MB; VmHWM is in KiB
SERVER_NAMES = {
    "sqlite": "Bulwark, SQLite (embedded defaults, memory stores)",
    "postgres": "Bulwark, PostgreSQL (fresh database, memory stores)",
    "fastapi": "FastAPI peer (uvicorn, 1 worker, SQLite WAL)",
}


def parse(path):
    """{server: {scenario: [run fields...]}} in file order."""
    runs = defaultdict(lambda: defaultdict(list))
    for line in open(path, encoding="utf-8"):
        parts = line.split()
        if len(parts) < 3:
            continue
        server, rep, scenario = parts[:3]
        fields = dict(p.split("=", 1) for p in parts[3:] if "=" in p)
        fields["rep"] = rep
        runs[server][scenario].append(fields)
    return runs


def num(fields, key):
    try:
        return float(fields[key])
    except (KeyError, ValueError):
        return None


class Figure:
    """The median of one scenario's valid runs, with what was left out."""

    def __init__(self, runs):
        self.runs = runs
        self.valid = [r for r in runs if r.get("valid") == "1"]
        self.flagged = [r for r in runs if r.get("valid") != "1"]

    def median(self, key):
        values = [v for v in (num(r, key) for r in self.valid) if v is not None]
        return statistics.median(values) if values else None

    def noisy(self):
        return sum(1 for r in self.runs if r.get("noisy") == "1")

    def noisy_cell(self):
        """`noisy runs/runs`, with the most CPU other processes took on the server's core."""
        other = [v for v in (num(r, "server_cpu_other_pct") for r in self.runs) if v is not None]
        cell = f"{self.noisy()}/{len(self.runs)}"
        return cell + (f" ({max(other):.0f} %)" if other and self.noisy() else "")

    def peak_kb(self):
        values = [v for v in (num(r, "vmhwm_kb") for r in self.runs) if v]
        return max(values) if values else None


def fmt_rps(v):
    return "—" if v is None else f"{v:,.0f}".replace(",", " ")


def fmt_ms(v):
    if v is None:
        return "—"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


def fmt_us(v):
    if v is None:
        return "—"
    return f"{v:.1f}" if v < 1000 else f"{v:,.0f}".replace(",", " ")


def fmt_mb(kb):
    return "—" if kb is None else f"{kb * 1024 / 1e6:.1f} MB"


def fmt_pct(v):
    if v is None:
        return "—"
    return f"{100 * v:.1f} %" if v < 10 else f"{100 * v:.0f} %"


def status_cell(fig):
    n, ok = len(fig.runs), len(fig.valid)
    if ok == n:
        return "ok" if n == 1 else f"ok {ok}/{n}"
    first = fig.flagged[0]
    why = first.get("reason", "invalid")
    codes = first.get("codes")
    detail = f"{why}" + (f" codes={codes}" if codes else "")
    return f"**FLAGGED** {ok}/{n} ok ({detail})"


def row(cells):
    return "| " + " | ".join(cells) + " |"


class Report:
    def __init__(self, args, runs):
        self.args = args
        self.runs = runs
        self.met = self.missed = self.unknown = 0
        ceiling = Figure(runs.get("ceiling", {}).get("S1", []))
        self.ceiling = ceiling
        self.ceiling_rps = ceiling.median("rps")

    def ratio(self, server, scenario, fig):
        """The scenario's share of the ceiling: against the ceiling runs made just before it,
        repetition by repetition, when there are such runs; else of the medians."""
        paired = {r["rep"]: num(r, "rps") for r in self.ceiling.valid
                  if r.get("before") == f"{server}:{scenario}"}
        if paired:
            ratios = [num(r, "rps") / paired[r["rep"]] for r in fig.valid
                      if paired.get(r["rep"]) and num(r, "rps") is not None]
            return statistics.median(ratios) if ratios else None
        rps = fig.median("rps")
        return rps / self.ceiling_rps if rps is not None and self.ceiling_rps else None

    def verdict(self, ok):
        if ok is None:
            self.unknown += 1
            return "no valid run"
        if ok:
            self.met += 1
            return "met"
        self.missed += 1
        return "**missed**"

    def header(self):
        return row(["scenario", "requests/s", "p50 ms", "p99 ms", "status codes", "CPU µs/req",
                    "peak RSS", "noisy (other CPU)", "vs ceiling", "target", "result"])

    def fig_cells(self, label, fig):
        rps = fig.median("rps")
        return [label, fmt_rps(rps), fmt_ms(fig.median("p50_ms")), fmt_ms(fig.median("p99_ms")),
                status_cell(fig), fmt_us(fig.median("cpu_us_per_req")), fmt_mb(fig.peak_kb()),
                fig.noisy_cell()]

    def ceiling_row(self):
        cells = self.fig_cells("ceiling: S1 on bare axum", self.ceiling)
        return row(cells + ["100 %" if self.ceiling_rps else "—", "", ""])

    def server_table(self, server, with_targets):
        figs = {s: Figure(self.runs[server][s]) for s in SCENARIOS if s in self.runs[server]}
        lines = [f"### {SERVER_NAMES.get(server, server)}", "", self.header(),
                 row(["---"] * 11), self.ceiling_row()]
        idle = Figure(self.runs[server].get("IDLE", []))
        if idle.runs:
            rss = max((num(r, "vmrss_kb") or 0 for r in idle.runs), default=0)
            lines.append(row([f"just started, idle (VmRSS {fmt_mb(rss)})", "", "", "", "", "",
                              fmt_mb(idle.peak_kb()),
                              "", "", "", ""]))
        for s, fig in figs.items():
            ratio = self.ratio(server, s, fig)
            target = result = ""
            if with_targets and s in RATIO_TARGETS:
                goal = RATIO_TARGETS[s]
                target = f"≥ {100 * goal:.0f} % of ceiling"
                result = self.verdict(None if ratio is None else ratio >= goal)
            if with_targets and s == "S7":
                idle = figs["S2"].median("p99_ms") if "S2" in figs else None
                p99 = fig.median("p99_ms")
                target = "p99 ≤ 2× S2 p99" + (f" = {fmt_ms(S7_P99_FACTOR * idle)} ms" if idle else "")
                result = self.verdict(None if idle is None or p99 is None
                                      else p99 <= S7_P99_FACTOR * idle)
            shown = fmt_pct(ratio) if s not in ("S6", "S7") else "—"
            lines.append(row(self.fig_cells(LABELS[s], fig) + [shown, target, result]))
        peaks = [f.peak_kb() for f in figs.values() if f.peak_kb()]
        peak = max(peaks) if peaks else None
        nruns = len({r["rep"] for f in figs.values() for r in f.runs})
        if with_targets:
            result = self.verdict(None if peak is None else peak <= RSS_TARGET_KB)
            lines.append(row([f"peak RSS, all {nruns} run(s)", "", "", "", "", "", fmt_mb(peak), "",
                              "", "≤ 30 MB", result]))
        else:
            lines.append(row([f"peak RSS, all {nruns} run(s)", "", "", "", "", "", fmt_mb(peak), "",
                              "", "", ""]))
        return lines, figs

    def reference_table(self, tables):
        """S5's 401 written by a bare route (the ceiling binary's `with-401` mode), against the
        ceiling's first S1 run of the same repetition, and Bulwark's S5 against it."""
        ref = Figure(self.runs["reference"].get("S5", []))
        firsts = {r["rep"]: num(r, "rps") for r in self.ceiling.valid if not r.get("before")}
        ratios = [num(r, "rps") / firsts[r["rep"]] for r in ref.valid
                  if firsts.get(r["rep"]) and num(r, "rps") is not None]
        lines = ["### Reference: S5's 401, with its headers, from a bare route (no middleware)", "",
                 self.header(), row(["---"] * 11), self.ceiling_row(),
                 row(self.fig_cells("S5's 401 from the bare route", ref)
                     + [fmt_pct(statistics.median(ratios)) if ratios else "—", "", ""])]
        ref_rps = ref.median("rps")
        for server, figs in tables.items():
            s5 = figs.get("S5")
            rps = s5.median("rps") if s5 else None
            if rps and ref_rps:
                lines.append(f"Bulwark ({server}) S5 ÷ this reference: {fmt_pct(rps / ref_rps)} "
                             "(medians).")
        return lines

    def peer_comparison(self, bulwark_server, bulwark, peer):
        name = SERVER_NAMES[bulwark_server].split(" (")[0]
        lines = [f"### {name} against the FastAPI peer (same run, same pinning)", "",
                 row(["scenario", "Bulwark req/s", "FastAPI req/s", "Bulwark ÷ FastAPI",
                      "Bulwark p99 ms", "FastAPI p99 ms", "FastAPI p99 ÷ Bulwark p99"]),
                 row(["---"] * 7)]
        for s in SCENARIOS:
            if s not in bulwark or s not in peer:
                continue
            b_rps, p_rps = bulwark[s].median("rps"), peer[s].median("rps")
            b_p99, p_p99 = bulwark[s].median("p99_ms"), peer[s].median("p99_ms")
            lines.append(row([
                LABELS[s], fmt_rps(b_rps), fmt_rps(p_rps),
                f"{b_rps / p_rps:.1f}×" if b_rps and p_rps else "—",
                fmt_ms(b_p99), fmt_ms(p_p99),
                f"{p_p99 / b_p99:.1f}×" if b_p99 and p_p99 else "—"]))
        b_peak = max((f.peak_kb() or 0 for f in bulwark.values()), default=0)
        p_peak = max((f.peak_kb() or 0 for f in peer.values()), default=0)
        lines.append(row(["peak RSS", fmt_mb(b_peak or None), fmt_mb(p_peak or None),
                          "", "", "", ""]))
        return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    for opt in ("databases", "peer", "repeat", "server-cpus", "wrk-cpu", "conns", "s6-conns",
                "duration", "warmup", "rate-limits", "strict", "paired", "elapsed", "log"):
        ap.add_argument("--" + opt, default="")
    args = ap.parse_args()
    runs = parse(args.results)
    report = Report(args, runs)

    limits = ("on, every quota 1000000/second (nothing refused)" if args.rate_limits == "high"
              else "off")
    shares = " (wrk shares a server core)" if args.wrk_cpu in args.server_cpus.split(",") else ""
    logging = ("logging as `bulwark serve` does with no settings (access log at info)"
               if args.log == "default" else "logging warnings only (RUST_LOG=warn)")
    out = [
        "",
        f"## bench/load.sh — server on CPU {args.server_cpus}, wrk on CPU {args.wrk_cpu}{shares}; "
        f"wrk 1 thread, {args.conns} connections (logins: {args.s6_conns}); "
        f"{args.duration} per run after a {args.warmup} warm-up; "
        f"median of {args.repeat} run(s); rate limits {limits}; {logging}; "
        f"{args.elapsed} s in all",
        "",
        ("Ratios: each of S1-S5 against the ceiling run made just before it, the median over "
         "repetitions; the ceiling row is the median of all its runs."
         if args.paired == "1" else
         "Ratios: each scenario's median over the median of the ceiling's runs."),
        "",
    ]
    tables = {}
    for server in args.databases.split():
        if server in runs:
            lines, figs = report.server_table(server, with_targets=True)
            tables[server] = figs
            out += lines + [""]
    if "reference" in runs:
        out += report.reference_table(tables) + [""]
    if "fastapi" in runs:
        lines, peer = report.server_table("fastapi", with_targets=False)
        out += lines + [""]
        base = next((s for s in ("sqlite", "postgres") if s in tables), None)
        if base:
            out += report.peer_comparison(base, tables[base], peer) + [""]
    elif args.peer == "1":
        out += ["FastAPI peer: no results (see the messages above).", ""]

    flagged = []
    for server, by in runs.items():
        for s, rs in by.items():
            for r in rs:
                if r.get("valid") != "1":
                    flagged.append(f"{server} run {r['rep']} {s}: reason={r.get('reason', '?')}"
                                   f" codes={r.get('codes', '?')} errors={r.get('errors', '?')}")
    noisy = sum(1 for by in runs.values() for rs in by.values() for r in rs if r.get("noisy") == "1")
    out.append(f"targets: {report.met} met, {report.missed} missed, "
               f"{report.unknown} without a valid run; "
               f"{noisy} run(s) noisy (other processes took > 10 % of the server's CPU)")
    if flagged:
        out.append(f"FLAGGED runs (wrong status codes or socket errors; not counted): {len(flagged)}")
        out += ["  " + f for f in flagged]
    print("\n".join(out))
    if flagged or (args.strict == "1" and (report.missed or report.unknown)):
        sys.exit(1)


if __name__ == "__main__":
    main()
