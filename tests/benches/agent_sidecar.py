#!/usr/bin/env python3
"""hydrant agent as a sidecar against the anchor, bao agent as a sidecar, on the same 50 secrets;
and hydrant as a sidecar on bao agent's own HCL file ("hydrant (HCL)": `hydrant agent --config
bao.hcl`, the anchor's HCL unchanged).

The scenario is the anchor's (../shared/bench/anchor-bao-agent.sh): JWT auth (token TTL 1 h, max
24 h) with a service-account-shaped token validated offline, one file per KV v2 secret holding
five keys, and every interval at its default (hydrant: refresh_interval 5 min; bao agent:
static_secret_render_interval 5 min). Each agent gets its own dev server, so that the audit log
counts only its requests; both run at once, so that the hour of counting is spent once.

  RSS           VmRSS (and its anonymous part) SETTLE_S seconds after every file is rendered,
                and again at the end of the window
  idle CPU      user+system ticks over IDLE_S seconds right after that (/proc/PID/stat), and the
                on-CPU nanoseconds of every thread (/proc/PID/task/*/schedstat)
  requests/h    requests in the server's audit log from the first complete render on, over
                WINDOW_S seconds, scaled to an hour (WINDOW_S defaults to a full hour)

Run it from the project's root after a release build:

    cargo dist && target/tools/venv/bin/python tests/benches/agent_sidecar.py

Knobs (environment): N=50 SETTLE_S=20 IDLE_S=60 WINDOW_S=3600 AGENTS="hydrant,hydrant (HCL),bao agent" HYDRANT=target/x86_64-unknown-linux-gnu/release/hydrant
OUT_DIR=target/bench. It prints a markdown table and writes it to target/bench/agent-sidecar.md.
"""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (Server, bao_agent_hcl, bao_binary, hydrant_agent_config, kv_data, log,  # noqa: E402
                      setup)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.abspath(os.environ.get("OUT_DIR", os.path.join(ROOT, "target", "bench")))
WORK = os.path.join(OUT, "sidecar")
N = int(os.environ.get("N", "50"))
SETTLE_S = float(os.environ.get("SETTLE_S", "20"))
IDLE_S = float(os.environ.get("IDLE_S", "60"))
WINDOW_S = float(os.environ.get("WINDOW_S", "3600"))
HYDRANT = os.path.abspath(os.environ.get("HYDRANT", os.path.join(ROOT, "target", "x86_64-unknown-linux-gnu", "release", "hydrant")))
CLK_TCK = os.sysconf("SC_CLK_TCK")
AGENTS = os.environ.get("AGENTS", "hydrant,hydrant (HCL),bao agent").split(",")


def hydrant_argv(server, work, jwt_path, out):
    path = os.path.join(work, "hydrant.json")
    with open(path, "w") as f:
        f.write(hydrant_agent_config(server.addr, N, jwt_path, out, state_dir=os.path.join(work, "state")))
    return [HYDRANT, "agent", "--config", path]


def bao_argv(bao, server, work, jwt_path, out):
    path = os.path.join(work, "bao.hcl")
    with open(path, "w") as f:
        f.write(bao_agent_hcl(server.addr, N, jwt_path, out, os.path.join(work, "agent-token"), exit_after_auth=False))
    return [bao, "agent", f"-config={path}"]


def memory(pid):
    values = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "Threads"):
            values[key] = int(value.split()[0])
    return values


def cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks_ms = (int(fields[11]) + int(fields[12])) * 1000 / CLK_TCK
    on_cpu_ns = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            on_cpu_ns += int(open(f"/proc/{pid}/task/{task}/schedstat").read().split()[0])
        except (OSError, ValueError):
            pass
    return ticks_ms, on_cpu_ns / 1e6


class Agent:
    """One agent with its own server, measured through the phases of the run."""

    def __init__(self, name, bao):
        self.name = name
        self.work = os.path.join(WORK, name.replace(" ", "-"))
        os.makedirs(self.work)
        self.server = Server(bao, self.work)
        jwt_path = setup(self.server, N, self.work)
        self.out = os.path.join(self.work, "out")
        os.makedirs(self.out)
        if name == "hydrant":
            self.argv = hydrant_argv(self.server, self.work, jwt_path, self.out)
        else:
            self.argv = bao_argv(bao, self.server, self.work, jwt_path, self.out)
            if name == "hydrant (HCL)":
                self.argv = [HYDRANT, "agent", "--config", self.argv[-1].removeprefix("-config=")]
        self.dests = [f"{self.out}/s{i}.env" for i in range(N)]
        self.result = {}

    def start(self):
        env = {"PATH": os.environ.get("PATH", ""), "HOME": self.work}
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.work, "agent.log"), "w"),
                                     env=env, start_new_session=True)

    def rendered(self):
        if self.proc.poll() is not None:
            raise SystemExit(f"{self.name} exited; see {self.work}/agent.log")
        if not all(os.path.exists(d) for d in self.dests):
            return False
        for i in (0, N - 1):
            if not open(self.dests[i]).read().startswith(f"k1={kv_data(i)['k1']}\n"):
                return False
        self.result["ready_s"] = time.monotonic() - self.started
        self.window_offset = self.server.audit_offset()
        self.window_start = time.monotonic()
        return True

    def stop(self):
        if getattr(self, "proc", None) and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.server.stop()


def main():
    if not os.path.exists(HYDRANT):
        raise SystemExit(f"{HYDRANT} not found: run `cargo dist` first")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    bao = bao_binary()
    version = subprocess.run([bao, "version"], capture_output=True, text=True).stdout.strip()
    agents = []
    try:
        agents = [Agent(name, bao) for name in AGENTS]
        for agent in agents:
            agent.start()
        pending = list(agents)
        deadline = time.monotonic() + 120
        while pending:
            pending = [a for a in pending if not a.rendered()]
            if time.monotonic() > deadline:
                raise SystemExit(f"not rendered in 2 minutes: {[a.name for a in pending]}")
            time.sleep(0.01)
        log("every file rendered; settling", SETTLE_S, "s")
        time.sleep(SETTLE_S)
        before = {}
        for agent in agents:
            mem = memory(agent.proc.pid)
            agent.result.update(rss_kib=mem["VmRSS"], anon_kib=mem["RssAnon"], threads=mem["Threads"])
            before[agent.name] = cpu(agent.proc.pid)
        time.sleep(IDLE_S)
        for agent in agents:
            ticks, on_cpu = cpu(agent.proc.pid)
            agent.result["idle_cpu_ms"] = ticks - before[agent.name][0]
            agent.result["idle_on_cpu_ms"] = on_cpu - before[agent.name][1]
        log(f"idle CPU measured; counting requests until {WINDOW_S:.0f} s after the first render")
        end = max(a.window_start for a in agents) + WINDOW_S
        while time.monotonic() < end:
            time.sleep(min(30, max(0.0, end - time.monotonic())))
            for agent in agents:
                if agent.proc.poll() is not None:
                    raise SystemExit(f"{agent.name} exited during the window; see {agent.work}/agent.log")
        for agent in agents:
            window = time.monotonic() - agent.window_start
            requests = agent.server.requests_since(agent.window_offset)
            agent.result["window_s"] = window
            agent.result["requests"] = requests
            agent.result["per_hour"] = sum(requests.values()) * 3600 / window
            agent.result["rss_end_kib"] = memory(agent.proc.pid)["VmRSS"]
    finally:
        for agent in agents:
            agent.stop()

    by_name = {a.name: a.result for a in agents}
    h, b = by_name.get("hydrant"), by_name.get("bao agent")
    window_s = agents[0].result["window_s"]
    lines = [f"`hydrant agent` vs `bao agent` ({version}) as sidecars on {N} secrets, {os.cpu_count()} CPUs, "
             f"default intervals; RSS {SETTLE_S:.0f} s after the first complete render, CPU over {IDLE_S:.0f} s "
             f"idle after that, requests over {window_s:.0f} s from the first render\n",
             "| agent | start → all files | RSS (anon) | RSS after the window | threads | idle CPU (ticks / on-CPU) | Vault requests per hour |",
             "|---|---|---|---|---|---|---|"]
    for agent in agents:
        r = agent.result
        reqs = ", ".join(f"{k} ×{v}" for k, v in sorted(r["requests"].items()))
        lines.append(f"| {agent.name} | {r['ready_s'] * 1000:.0f} ms | {r['rss_kib'] / 1024:.1f} MiB "
                     f"({r['anon_kib'] / 1024:.1f}) | {r['rss_end_kib'] / 1024:.1f} MiB | {r['threads']} | "
                     f"{r['idle_cpu_ms']:.0f} ms / {r['idle_on_cpu_ms']:.1f} ms | {r['per_hour']:.0f} ({reqs}) |")
    for name in ("hydrant", "hydrant (HCL)"):
        h = by_name.get(name)
        if h is None or b is None:
            continue
        lines.append(f"\n{name} holds {h['rss_kib'] / b['rss_kib'] * 100:.1f}% of bao agent's memory "
                     f"({b['rss_kib'] / h['rss_kib']:.1f}× less) and makes {h['per_hour']:.0f} requests an hour "
                     f"against {b['per_hour']:.0f}.")
    report = "\n".join(lines) + "\n"
    with open(os.path.join(OUT, "agent-sidecar.md"), "w") as f:
        f.write(report)
    print(report)


if __name__ == "__main__":
    main()
