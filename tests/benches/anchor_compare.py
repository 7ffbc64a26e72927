#!/usr/bin/env python3
"""hydrant against `bao agent` in the anchor's own harness (../shared/bench/anchor-bao-agent.sh).

The anchor script measures `bao agent` on its scenario; its AGENT_CMD knob runs another agent
on the very same HCL files, server setup and measurements. This runs it for `bao agent` and for
`hydrant agent --config {config}` in turn, ROUNDS times (the machine drifts: alternating keeps
the two comparable), then pools every one-shot run of each agent and prints the medians, the
ratio per round and over all rounds, the sidecar's resident memory, and each agent's floor: the
CPU the server and the agent spent per one-shot run (the anchor records both), spread over the
machine's cores.

    cargo dist && target/tools/venv/bin/python tests/benches/anchor_compare.py

Knobs (environment): ROUNDS=3 NS="10 50" ONESHOT_RUNS=11 QUICK=1 (the anchor's short sidecar
phases) HYDRANT=target/x86_64-unknown-linux-gnu/release/hydrant ANCHOR=../shared/bench/anchor-bao-agent.sh
OUT_DIR=target/anchor-compare. Peak memory is GNU time's figure, which the anchor reports beside
wait4's: wait4 on a child forked from Python reports Python's own RSS for an agent smaller than
Python (see agent_oneshot.py).
"""
import glob
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANCHOR = os.path.abspath(os.environ.get("ANCHOR", os.path.join(ROOT, "..", "shared", "bench", "anchor-bao-agent.sh")))
HYDRANT = os.path.abspath(os.environ.get("HYDRANT", os.path.join(ROOT, "target", "x86_64-unknown-linux-gnu", "release", "hydrant")))
OUT = os.path.abspath(os.environ.get("OUT_DIR", os.path.join(ROOT, "target", "anchor-compare")))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
NS = os.environ.get("NS", "10 50")
CORES = os.cpu_count()

AGENTS = {
    "bao agent": {"BENCH": os.path.join(OUT, "bao"), "label": "openbao-agent"},
    "hydrant": {"BENCH": os.path.join(OUT, "hydrant"), "label": "hydrant",
                "AGENT_CMD": f"{HYDRANT} agent --config={{config}}"},
}


def run(agent, round_):
    spec = AGENTS[agent]
    env = dict(os.environ, BENCH=spec["BENCH"], NS=NS, AGENT_LABEL=spec["label"],
               ONESHOT_RUNS=os.environ.get("ONESHOT_RUNS", "11"), QUICK=os.environ.get("QUICK", "1"))
    if "AGENT_CMD" in spec:
        env["AGENT_CMD"] = spec["AGENT_CMD"]
    log = os.path.join(OUT, f"{spec['label']}-round{round_}.log")
    before = set(glob.glob(os.path.join(spec["BENCH"], "results", f"{spec['label']}-2*.json")))
    with open(log, "w") as f:
        status = subprocess.run(["bash", ANCHOR], env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    if status != 0:
        sys.exit(f"the anchor failed for {agent} (exit {status}); see {log}")
    new = set(glob.glob(os.path.join(spec["BENCH"], "results", f"{spec['label']}-2*.json"))) - before
    if len(new) != 1:
        sys.exit(f"the anchor wrote no result for {agent}; see {log}")
    return json.load(open(new.pop()))


def main():
    if not os.path.exists(ANCHOR):
        sys.exit(f"no anchor script at {ANCHOR}: set ANCHOR")
    if not os.access(HYDRANT, os.X_OK):
        sys.exit(f"no hydrant binary at {HYDRANT}: run `cargo dist` first, or set HYDRANT")
    os.makedirs(OUT, exist_ok=True)
    rounds = []
    for r in range(ROUNDS):
        rounds.append({agent: run(agent, r) for agent in AGENTS})
        print(f"round {r + 1} of {ROUNDS} done", file=sys.stderr)
    lines = [f"anchor harness ({os.path.relpath(ANCHOR, ROOT)}), {ROUNDS} rounds alternating, "
             f"{os.environ.get('ONESHOT_RUNS', '11')} one-shot runs per agent and round", ""]
    for n in NS.split():
        lines += ["| N | agent | start → all files (pooled median) | start → exit | peak RSS (GNU time) | sidecar RSS | per round |",
                  "|---|---|---|---|---|---|---|"]
        pooled = {}
        for agent in AGENTS:
            runs = [x for rd in rounds for x in rd[agent]["n"][n]["oneshot_runs"]]
            pooled[agent] = {
                "last": statistics.median(x["render_all_ms"] for x in runs),
                "exit": statistics.median(x["exit_ms"] for x in runs),
                "per_round": [statistics.median(x["render_all_ms"] for x in rd[agent]["n"][n]["oneshot_runs"]) for rd in rounds],
                "rss": [mib(rd[agent]["n"][n]["oneshot"].get("gnu_time_maxrss_kib")) for rd in rounds],
                "sidecar": [mib(rd[agent]["n"][n]["sidecar"].get("rss_kib")) for rd in rounds],
                # The floor: the CPU the server and the agent spend per run, on two cores at once.
                "server_cpu": statistics.mean(x["server_cpu_ms"] for x in runs),
                "cpu": statistics.mean(x["cpu_ms"] for x in runs),
            }
        for agent, p in pooled.items():
            lines.append(f"| {n} | {agent} | {p['last']:.1f} ms | {p['exit']:.1f} ms | {fmt(p['rss'])} MiB | "
                         f"{fmt(p['sidecar'])} MiB | {', '.join(f'{x:.1f}' for x in p['per_round'])} ms |")
        b, h = pooled["bao agent"], pooled["hydrant"]
        per = ", ".join(f"{x / y:.1f}×" for x, y in zip(b["per_round"], h["per_round"]))
        lines.append("")
        lines.append(f"N={n}: hydrant {b['last'] / h['last']:.2f}× faster to the last file (pooled; per round {per}), "
                     f"{b['exit'] / h['exit']:.2f}× to exit.")
        for agent, p in pooled.items():
            floor = (p["server_cpu"] + p["cpu"]) / CORES
            lines.append(f"{agent}: {p['server_cpu']:.1f} ms of server CPU and {p['cpu']:.1f} ms of its own per run "
                         f"(means), a floor of {floor:.1f} ms on {CORES} cores; the last file {100 * (p['last'] / floor - 1):+.0f}% over it.")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(OUT, "anchor-compare.md"), "w") as f:
        f.write(text + "\n")


def mib(kib):
    return kib / 1024 if kib is not None else None


def fmt(values):
    values = [v for v in values if v is not None]
    if not values:
        return "?"
    low, high = f"{min(values):.1f}", f"{max(values):.1f}"
    return low if low == high else f"{low}–{high}"


if __name__ == "__main__":
    main()
