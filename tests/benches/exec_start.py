#!/usr/bin/env python3
"""hydrant exec against Vault Agent's process-supervisor mode (bao agent with env_template and
exec), on one local OpenBao: start to the child's exec with N variables from N secrets, and the
supervisor's resident memory while the child runs.

The scenario is the agent benchmarks' (benchlib.py): JWT auth with a service-account-shaped token
validated offline by OpenBao, KV v2 secrets secret/data/app/sN of five keys each; variable VN is
key k1 of secret N. Each supervisor starts the same child, `/bin/sh -c` writing V0 and V(N-1) to a
FIFO and then sleeping. Measured the same way for every supervisor, one whole series after the
other:

  start -> child   from the supervisor's start to the child's first write on the FIFO (the child's
                   shell startup, well under a millisecond, is in every supervisor's figure)
  rendered         bao agent only: from its start to its last render before it spawns the child,
                   from its log's millisecond timestamps (its exec server then waits 2 s)
  RSS              the supervisor's resident set (VmRSS) 0.5 s after the child started, the child
                   not counted, with its anonymous part (RssAnon; the rest is the binary's pages);
                   and its high-water mark so far (VmHWM)
  requests         requests in the server's audit log during the start, by operation and path

Supervisors: "hydrant exec" (each variable a path and key), "hydrant exec (consul-template)" (each
variable the very template bao agent renders), "bao agent" (env_template and exec, restart on
secret changes always, as hydrant's default), and "hydrant (bao agent's HCL)": `hydrant agent
--config bao.hcl` on the very file bao agent runs, unchanged (its env_template and exec make it
the process supervisor, as they make bao agent one). With restart_on_secret_changes never and only KV
values (nothing to renew), hydrant exec replaces itself with the child: no supervisor stays, so it
has no RSS row of its own ("hydrant exec (replaces itself)" measures only its start).

Run it from the project's root after a release build:

    cargo dist && target/tools/venv/bin/python tests/benches/exec_start.py

Knobs (environment): N=10 RUNS=11 SETTLE_S=0.5 SUPERVISORS="hydrant exec,...,bao agent" HYDRANT=target/x86_64-unknown-linux-gnu/release/hydrant OUT_DIR=target/bench
It prints a markdown table and writes it to target/bench/exec-start.md.
"""
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Server, bao_binary, consul_template, kv_data, log, setup  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.abspath(os.environ.get("OUT_DIR", os.path.join(ROOT, "target", "bench")))
WORK = os.path.join(OUT, "exec")
N = int(os.environ.get("N", "10"))
RUNS = int(os.environ.get("RUNS", "11"))
SETTLE_S = float(os.environ.get("SETTLE_S", "0.5"))
HYDRANT = os.path.abspath(os.environ.get("HYDRANT", os.path.join(ROOT, "target", "x86_64-unknown-linux-gnu", "release", "hydrant")))
SUPERVISORS = os.environ.get(
    "SUPERVISORS",
    "hydrant exec,hydrant exec (consul-template),hydrant exec (replaces itself),hydrant (bao agent's HCL),"
    "bao agent").split(",")
FIFO = os.path.join(WORK, "started")
# The child: tells the benchmark it runs (and what it got), then waits to be stopped.
CHILD = ["/bin/sh", "-c", f'printf "%s %s" "$V0" "$V{N - 1}" > {FIFO}; exec sleep 600']


def hydrant_config(server, jwt_path, syntax, restart="always"):
    env = []
    for i in range(N):
        if syntax == "consul-template":
            # The value of key k1 only, as bao agent's env_template below renders it.
            env.append({"name": f"V{i}", "syntax": "consul-template",
                        "contents": f'{{{{ with secret "secret/data/app/s{i}" }}}}{{{{ .Data.data.k1 }}}}{{{{ end }}}}'})
        else:
            env.append({"name": f"V{i}", "path": f"secret/data/app/s{i}", "key": "k1"})
    doc = {"vault": {"address": server.addr},
           "auth": {"method": "jwt", "role": "app", "jwt_path": jwt_path},
           "env": env, "exec": {"restart_on_secret_changes": restart}}
    path = os.path.join(WORK, f"hydrant-{syntax}-{restart}.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return [HYDRANT, "exec", "--config", path, "--", *CHILD]


def bao_hcl(server, jwt_path):
    """bao agent's process-supervisor file, written once: both agents run on this very file."""
    q = json.dumps
    lines = [
        f"vault {{\n  address = {q(server.addr)}\n}}",
        "auto_auth {\n  method \"jwt\" {\n    mount_path = \"auth/jwt\"\n    config = {\n"
        f"      path = {q(jwt_path)}\n      role = \"app\"\n      remove_jwt_after_reading = false\n    }}\n  }}\n}}",
        "template_config {\n  exit_on_retry_failure = true\n}",
    ]
    for i in range(N):
        contents = f'{{{{ with secret "secret/data/app/s{i}" }}}}{{{{ .Data.data.k1 }}}}{{{{ end }}}}'
        lines.append(f"env_template \"V{i}\" {{\n  contents = {q(contents)}\n  error_on_missing_key = true\n}}")
    lines.append("exec {\n  command = " + q(CHILD) + "\n  restart_on_secret_changes = \"always\"\n"
                 "  restart_stop_signal = \"SIGTERM\"\n}")
    path = os.path.join(WORK, "bao.hcl")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def status_kib(pid, field):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except FileNotFoundError:
        return None
    return None


def bao_rendered_ms(t0):
    """When bao agent had rendered every variable, from its log (millisecond timestamps): the
    last render before it spawned the child. Its exec server then waits a fixed 2 s."""
    import datetime

    last = None
    for line in open(os.path.join(WORK, "supervisor.log")):
        if "(child) spawning" in line:
            break
        if 'rendered "(dynamic)"' in line:
            last = line.split()[0]
    if last is None:
        return None
    at = datetime.datetime.strptime(last, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    return at * 1e3 - t0 / 1e6


def run_once(server, argv, replaces_itself=False):
    """One start: the time to the child's first write, what it got, the supervisor's memory."""
    if os.path.exists(FIFO):
        os.unlink(FIFO)
    os.mkfifo(FIFO)
    time.sleep(SETTLE_S)
    offset = server.audit_offset()
    got = {}

    def read():
        with open(FIFO) as f:  # blocks until the child opens it
            got["text"] = f.read()
            got["t"] = time.time_ns()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": WORK}
    t0 = time.time_ns()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(WORK, "supervisor.log"), "w"), env=env,
                            start_new_session=True)
    reader.join(30)
    if "t" not in got:
        proc.kill()
        with open(FIFO, "w"):
            pass
        raise SystemExit(f"{argv[0]} never started its child; see {WORK}/supervisor.log")
    want = f"{kv_data(0)['k1']} {kv_data(N - 1)['k1']}"
    if got["text"] != want:
        raise SystemExit(f"the child got {got['text']!r}, not {want!r}")
    time.sleep(0.5)
    rss, hwm = status_kib(proc.pid, "VmRSS"), status_kib(proc.pid, "VmHWM")
    anon = status_kib(proc.pid, "RssAnon")
    requests = server.requests_since(offset)
    # Stop: the supervisor passes SIGTERM to the child (or, replaced, the child is the process).
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    rendered_ms = None
    if os.path.basename(argv[0]) == "bao":
        rendered_ms = bao_rendered_ms(t0)
    return {"start_ms": (got["t"] - t0) / 1e6, "rendered_ms": rendered_ms,
            "rss_kib": None if replaces_itself else rss,
            "hwm_kib": None if replaces_itself else hwm,
            "anon_kib": None if replaces_itself else anon,
            "requests": requests}


def main():
    if not os.path.exists(HYDRANT):
        raise SystemExit(f"{HYDRANT} not found: run `cargo dist` first")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    bao = bao_binary()
    version = subprocess.run([bao, "version"], capture_output=True, text=True).stdout.strip()
    server = Server(bao, WORK)
    results = {}
    try:
        jwt_path = setup(server, N, WORK)
        hcl = bao_hcl(server, jwt_path)
        supervisors = {
            "hydrant exec": (hydrant_config(server, jwt_path, "path"), False),
            "hydrant exec (consul-template)": (hydrant_config(server, jwt_path, "consul-template"), False),
            "hydrant exec (replaces itself)": (hydrant_config(server, jwt_path, "path", "never"), True),
            "hydrant (bao agent's HCL)": ([HYDRANT, "agent", "--config", hcl], False),
            "bao agent": ([bao, "agent", f"-config={hcl}"], False),
        }
        for name, (argv, replaces) in supervisors.items():
            if name not in SUPERVISORS:
                continue
            run_once(server, argv, replaces)  # warm-up: page cache, server caches
            runs = [run_once(server, argv, replaces) for _ in range(RUNS)]
            results[name] = runs
            med = statistics.median(r["start_ms"] for r in runs)
            log(f"{name}: start -> child {med:.1f} ms")
    finally:
        server.stop()

    size = os.path.getsize(HYDRANT) / 2 ** 20
    lines = [f"`hydrant exec` vs `bao agent` with `env_template` and `exec` ({version}), {os.cpu_count()} CPUs, "
             f"{N} variables from {N} KV v2 secrets, medians of {RUNS} runs after one warm-up each; "
             f"hydrant binary {size:.1f} MiB\n",
             "| supervisor | start → child [min–max] | start → every value rendered | supervisor RSS while the child runs | its peak (VmHWM) | Vault requests |",
             "|---|---|---|---|---|---|"]
    summary = {}
    for name, runs in results.items():
        starts = [r["start_ms"] for r in runs]
        rss = [r["rss_kib"] for r in runs if r["rss_kib"] is not None]
        hwm = [r["hwm_kib"] for r in runs if r["hwm_kib"] is not None]
        anon = [r["anon_kib"] for r in runs if r["anon_kib"] is not None]
        reqs = runs[0]["requests"]
        rendered = [r["rendered_ms"] for r in runs if r["rendered_ms"] is not None]
        s = {"start": statistics.median(starts),
             "rendered": statistics.median(rendered) if rendered else None,
             "rss": statistics.median(rss) / 1024 if rss else None,
             "hwm": statistics.median(hwm) / 1024 if hwm else None,
             "anon": statistics.median(anon) / 1024 if anon else None}
        summary[name] = s
        rss_text = (f"{s['rss']:.1f} MiB ({s['anon']:.1f} MiB anonymous)" if s["rss"] is not None
                    else "none (the child replaced it)")
        hwm_text = f"{s['hwm']:.1f} MiB" if s["hwm"] is not None else "–"
        total = sum(reqs.values())
        detail = ", ".join(f"{k} ×{v}" for k, v in sorted(reqs.items()))
        rendered_text = (f"{s['rendered']:.0f} ms (from its log)" if s["rendered"] is not None
                         else "= start → child")
        lines.append(f"| {name} | {s['start']:.1f} ms [{min(starts):.1f}–{max(starts):.1f}] | {rendered_text} | {rss_text} | "
                     f"{hwm_text} | {total} ({detail}) |")
    if "hydrant exec" in summary and "bao agent" in summary:
        h, b = summary["hydrant exec"], summary["bao agent"]
        lines.append(f"\nhydrant exec starts the child {b['start'] / h['start']:.1f}× sooner than bao agent and "
                     f"supervises it in {h['rss'] / b['rss'] * 100:.0f}% of bao agent's resident memory "
                     f"({h['rss']:.1f} against {b['rss']:.1f} MiB).")
        if "hydrant (bao agent's HCL)" in summary:
            c = summary["hydrant (bao agent's HCL)"]
            lines.append(f"\nOn bao agent's own HCL file, unchanged, hydrant starts the child "
                         f"{b['start'] / c['start']:.1f}× sooner and supervises it in "
                         f"{c['rss'] / b['rss'] * 100:.0f}% of bao agent's resident memory.")
        if b["rendered"] is not None:
            lines.append(f"\nbao agent has every value {b['rendered']:.0f} ms after its start, then its exec "
                         f"server waits a fixed 2 s before it spawns the child; to the values alone hydrant "
                         f"exec is {b['rendered'] / h['start']:.1f}× faster.")
    report = "\n".join(lines) + "\n"
    with open(os.path.join(OUT, "exec-start.md"), "w") as f:
        f.write(report)
    print(report)


if __name__ == "__main__":
    main()
