#!/usr/bin/env python3
"""hydrant agent --once against the anchor, bao agent (exit_after_auth), on one local OpenBao.

The scenario is the anchor's (../shared/bench/anchor-bao-agent.sh): JWT auth with a
service-account-shaped token validated offline by OpenBao, then one file per KV v2 secret, each
holding five keys. Both agents run against the same dev server, one whole series after the other,
writing to the same file system, and are measured the same way:

  render_all  start -> the newest mtime among the N files (file timestamps are kernel-tick coarse)
  exit        start -> process exit, every file written
  peak RSS    the agent's maximum resident set, from GNU time (/usr/bin/time -f %M) in separate
              runs: wait4() on a child forked from this Python process reports Python's own RSS
              for any agent smaller than Python (the kernel keeps the pre-exec high-water
              mark), and the time wrapper itself slows the timed runs by several milliseconds
  server CPU  user+system time the OpenBao server spent during the run (/proc/PID/stat)
  requests    requests in the server's audit log during the run, by operation and path

Run it from the project's root after a release build:

    cargo dist && target/tools/venv/bin/python tests/benches/agent_oneshot.py

"hydrant (consul-template)" renders the very templates bao agent renders (the anchor's
`{{ with secret "secret/data/app/sN" }}...{{ end }}`); "hydrant" the same files from Jinja;
"hydrant (bao agent's HCL)" runs on the very file bao agent runs on (`hydrant agent --config
bao-nN.hcl`: the anchor's HCL, unchanged, token sink and exit_after_auth included).

Knobs (environment): NS="10 50" RUNS=11 RSS_RUNS=3 SETTLE_S=0.5 AGENTS="hydrant,hydrant (consul-template),hydrant (bao agent's HCL),bao agent" HYDRANT=target/x86_64-unknown-linux-gnu/release/hydrant OUT_DIR=target/bench
It prints a markdown table and writes it to target/bench/agent-oneshot.md.
"""
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (Server, bao_agent_hcl, bao_binary, hydrant_agent_config, kv_data, log,  # noqa: E402
                      setup)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.abspath(os.environ.get("OUT_DIR", os.path.join(ROOT, "target", "bench")))
WORK = os.path.join(OUT, "oneshot")
NS = [int(n) for n in os.environ.get("NS", "10 50").split()]
RUNS = int(os.environ.get("RUNS", "11"))
# Pause between runs so that each agent starts against an idle server (the previous agent's
# token revocation and the server's garbage collection are not charged to the next one).
SETTLE_S = float(os.environ.get("SETTLE_S", "0.5"))
RSS_RUNS = int(os.environ.get("RSS_RUNS", "3"))
AGENTS = os.environ.get("AGENTS", "hydrant,hydrant (consul-template),hydrant (bao agent's HCL),bao agent").split(",")
HYDRANT = os.path.abspath(os.environ.get("HYDRANT", os.path.join(ROOT, "target", "x86_64-unknown-linux-gnu", "release", "hydrant")))
TIME = os.environ.get("GNU_TIME", "/usr/bin/time")


def hydrant_config(server, n, jwt_path, out, syntax="jinja"):
    path = os.path.join(WORK, f"hydrant-n{n}-{syntax}.json")
    with open(path, "w") as f:
        f.write(hydrant_agent_config(server.addr, n, jwt_path, out, syntax=syntax))
    return [HYDRANT, "agent", "--once", "--config", path]


def bao_hcl(server, n, jwt_path, out):
    """The anchor's HCL for N secrets, written once: both agents run on this very file."""
    path = os.path.join(WORK, f"bao-n{n}.hcl")
    with open(path, "w") as f:
        f.write(bao_agent_hcl(server.addr, n, jwt_path, out, out + "/.agent-token", exit_after_auth=True))
    return path


def run_once(server, argv, out, n, measure_rss=False):
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    time.sleep(SETTLE_S)
    offset = server.audit_offset()
    server_cpu = server.cpu_ms()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": WORK}
    rss_file = os.path.join(WORK, "rss")
    if measure_rss:
        argv = [TIME, "-f", "%M", "-o", rss_file, *argv]
    t0 = time.time_ns()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(WORK, "agent.log"), "w"), env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    t1 = time.time_ns()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[0]} failed; see {WORK}/agent.log")
    dests = [f"{out}/s{i}.env" for i in range(n)]
    for i in (0, n - 1):
        want = f"k1={kv_data(i)['k1']}\n"
        if not open(dests[i]).read().startswith(want):
            raise SystemExit(f"wrong content in {dests[i]}")
    if measure_rss:
        return int(open(rss_file).read().split()[-1])
    mtimes = [os.stat(d).st_mtime_ns for d in dests]
    return {"render_all_ms": (max(mtimes) - t0) / 1e6, "exit_ms": (t1 - t0) / 1e6,
            "cpu_ms": (usage.ru_utime + usage.ru_stime) * 1e3,
            "server_cpu_ms": server.cpu_ms() - server_cpu,
            "requests": server.requests_since(offset)}


def summarise(runs, rss):
    med = lambda k: statistics.median(r[k] for r in runs)
    return {"render_all_ms": med("render_all_ms"), "exit_ms": med("exit_ms"),
            "exit_min": min(r["exit_ms"] for r in runs), "exit_max": max(r["exit_ms"] for r in runs),
            "peak_rss_mib": statistics.median(rss) / 1024, "cpu_ms": med("cpu_ms"),
            "server_cpu_ms": med("server_cpu_ms"),
            "requests": runs[0]["requests"], "request_total": sum(runs[0]["requests"].values())}


def main():
    if not os.path.exists(HYDRANT):
        raise SystemExit(f"{HYDRANT} not found: run `cargo dist` first")
    if not os.path.exists(TIME):
        raise SystemExit(f"{TIME} not found: install GNU time (apt-get install time) or set GNU_TIME")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    bao = bao_binary()
    version = subprocess.run([bao, "version"], capture_output=True, text=True).stdout.strip()
    server = Server(bao, WORK)
    results = {}
    try:
        jwt_path = setup(server, max(NS), WORK)
        for n in NS:
            out = os.path.join(WORK, f"out-n{n}")
            agents = {"hydrant": hydrant_config(server, n, jwt_path, out),
                      "hydrant (consul-template)": hydrant_config(server, n, jwt_path, out, "consul-template"),
                      "hydrant (bao agent's HCL)": [HYDRANT, "agent", "--config", bao_hcl(server, n, jwt_path, out)],
                      "bao agent": [bao, "agent", f"-config={bao_hcl(server, n, jwt_path, out)}"]}
            agents = {k: v for k, v in agents.items() if k in AGENTS}
            runs = {name: [] for name in agents}
            rss = {name: [] for name in agents}
            # One agent's whole series, then the other's. Alternating runs charged the aftermath
            # of each bao agent exit (an 80 MiB process going away) to the hydrant run after it,
            # adding 4 to 6 ms to it whatever the pause between them.
            for name, argv in agents.items():
                run_once(server, argv, out, n)  # warm-up: page cache, server caches
                for _ in range(RUNS):
                    runs[name].append(run_once(server, argv, out, n))
                for _ in range(RSS_RUNS):
                    rss[name].append(run_once(server, argv, out, n, measure_rss=True))
            results[n] = {name: summarise(r, rss[name]) for name, r in runs.items()}
            if len(results[n]) < 2:
                continue
            if "hydrant" not in results[n] or "bao agent" not in results[n]:
                continue
            h, b = results[n]["hydrant"], results[n]["bao agent"]
            log(f"N={n}: hydrant exit {h['exit_ms']:.1f} ms {h['peak_rss_mib']:.1f} MiB "
                f"{h['request_total']} req; bao agent exit {b['exit_ms']:.1f} ms {b['peak_rss_mib']:.1f} MiB "
                f"{b['request_total']} req")
    finally:
        server.stop()

    size = os.path.getsize(HYDRANT) / 2 ** 20
    lines = [f"`hydrant agent --once` vs `bao agent` ({version}), {os.cpu_count()} CPUs, "
             f"medians of {RUNS} timed runs after one warm-up each (RSS: median of {RSS_RUNS} more "
             f"runs under GNU time); hydrant binary {size:.1f} MiB\n",
             "| N secrets | agent | start → all files rendered (mtime) | start → exit [min–max] | peak RSS | agent CPU | server CPU | Vault requests |",
             "|---|---|---|---|---|---|---|---|"]
    for n, per in results.items():
        for name, s in per.items():
            reqs = ", ".join(f"{k} ×{v}" for k, v in sorted(s["requests"].items()))
            lines.append(f"| {n} | {name} | {s['render_all_ms']:.1f} ms | {s['exit_ms']:.1f} ms "
                         f"[{s['exit_min']:.1f}–{s['exit_max']:.1f}] | {s['peak_rss_mib']:.1f} MiB | "
                         f"{s['cpu_ms']:.0f} ms | {s['server_cpu_ms']:.0f} ms | {s['request_total']} ({reqs}) |")
    for n, per in results.items():
        if len(per) < 2:
            continue
        if "hydrant (consul-template)" in per and "hydrant" in per:
            c, j = per["hydrant (consul-template)"], per["hydrant"]
            lines.append(f"\nN={n}: consul-template templates cost {c['exit_ms'] / j['exit_ms'] * 100 - 100:+.0f}% "
                         f"time to exit and {c['peak_rss_mib'] / j['peak_rss_mib'] * 100 - 100:+.0f}% peak memory "
                         f"against the same files from Jinja.")
        if "hydrant (consul-template)" in per and "bao agent" in per:
            c, b = per["hydrant (consul-template)"], per["bao agent"]
            lines.append(f"\nN={n}: on bao agent's own templates hydrant is {b['exit_ms'] / c['exit_ms']:.1f}× faster to exit, "
                         f"{b['render_all_ms'] / max(c['render_all_ms'], 0.001):.1f}× faster to the last file and uses "
                         f"{c['peak_rss_mib'] / b['peak_rss_mib'] * 100:.0f}% of the memory.")
        if "hydrant (bao agent's HCL)" in per and "bao agent" in per:
            c, b = per["hydrant (bao agent's HCL)"], per["bao agent"]
            lines.append(f"\nN={n}: on bao agent's own HCL file, unchanged, hydrant is {b['exit_ms'] / c['exit_ms']:.1f}× faster to exit, "
                         f"{b['render_all_ms'] / max(c['render_all_ms'], 0.001):.1f}× faster to the last file and uses "
                         f"{c['peak_rss_mib'] / b['peak_rss_mib'] * 100:.1f}% of the memory "
                         f"({c['request_total']} requests against {b['request_total']}).")
        if "hydrant" not in per or "bao agent" not in per:
            continue
        h, b = per["hydrant"], per["bao agent"]
        lines.append(f"\nN={n}: hydrant is {b['exit_ms'] / h['exit_ms']:.1f}× faster to exit, "
                     f"{b['render_all_ms'] / max(h['render_all_ms'], 0.001):.1f}× faster to the last file, "
                     f"uses {h['peak_rss_mib'] / b['peak_rss_mib'] * 100:.0f}% of the memory and "
                     f"{h['request_total']} requests against {b['request_total']}.")
    report = "\n".join(lines) + "\n"
    with open(os.path.join(OUT, "agent-oneshot.md"), "w") as f:
        f.write(report)
    print(report)


if __name__ == "__main__":
    main()
