#!/usr/bin/env python3
"""Writes `.cargo/hydrant.order`: the functions the agent runs, for lld's --symbol-ordering-file.

The agent uses a small part of the binary, whose functions the compiler scatters over all of
`.text` among the webhook's, the controller's and the policy commands'. The kernel maps code in
64 KiB fault-around windows, so a scattered agent keeps most of `.text` resident although it
runs little of it. `src/build.rs` hands this file to lld when building the shipped binary
(`cargo dist`): the functions listed go first, together, and the agent's resident code shrinks.

How the list is made: the shipped binary (the release profile keeps its symbol table) runs under
valgrind's callgrind, on the benchmarks' scenario (JWT login, 50 KV v2 secrets, one template
each, in Jinja and again as consul-template templates), once as the init container (`--once`) and
once as a sidecar for SIDECAR_S seconds with a short refresh interval and a short token TTL, so
that refreshes, renewals and re-renders all run; then the init container on the anchor's own
Vault Agent HCL, and `hydrant exec` supervising a command with 50 variables; all of it twice,
against a server over http and over https (as Vault is reached in clusters).
Every function callgrind saw run is listed, sorted by name (a stable, reviewable diff).

    cargo dist && target/tools/venv/bin/python tests/benches/symbol_order.py && cargo dist

Run it again when the agent's code paths change a lot; a name that no longer exists is skipped
by lld, so a stale list only loses some of the benefit. Needs valgrind (apt install valgrind).
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (Server, bao_agent_hcl, bao_binary, hydrant_agent_config, log,  # noqa: E402
                      setup)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.path.join(ROOT, "target", "bench", "symbol-order")
HYDRANT = os.path.abspath(os.environ.get(
    "HYDRANT", os.path.join(ROOT, "target", "x86_64-unknown-linux-gnu", "release", "hydrant")))
ORDER = os.path.join(ROOT, ".cargo", "hydrant.order")
N = 50
SIDECAR_S = float(os.environ.get("SIDECAR_S", "40"))


def callgrind(work, name, argv, env, seconds=None):
    out = os.path.join(work, f"callgrind.{name}")
    command = ["valgrind", "--tool=callgrind", "--demangle=no", "--compress-strings=no",
               "--compress-pos=no", f"--callgrind-out-file={out}", *argv]
    log("callgrind:", name)
    with open(os.path.join(work, f"{name}.log"), "w") as stderr:
        proc = subprocess.Popen(command, env=env, stdout=stderr, stderr=stderr)
        if seconds is None:
            if proc.wait(600) != 0:
                raise SystemExit(f"{name} failed; see {work}/{name}.log")
        else:
            time.sleep(seconds)
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
    return out


def functions(path):
    names = set()
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith(("fn=", "cfn=")):
                name = line.split("=", 1)[1].strip()
                # callgrind names code without a symbol by its address; lld needs symbols.
                if name and not name.startswith("0x"):
                    names.add(name)
    return names


def trusting(server, config):
    """The agent config, trusting the server's own CA when it serves https."""
    doc = json.loads(config)
    if server.ca_cert:
        doc["vault"]["ca_cert"] = server.ca_cert
    return json.dumps(doc)


def profile(work, tls):
    """The functions the agent runs against a server over http or https (Vault's usual way)."""
    os.makedirs(work)
    server = Server(bao_binary(), work, tls=tls)
    try:
        jwt_path = setup(server, N, work)
        # Short-lived tokens, so that the sidecar renews within the run.
        server.api("POST", "auth/jwt/role/app", {
            "role_type": "jwt", "user_claim": "sub", "bound_subject": "system:serviceaccount:app-ns:app-sa",
            "bound_audiences": ["openbao"], "token_policies": ["app-read"],
            "token_ttl": "15s", "token_max_ttl": "1h"})
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HYDRANT_LOG": "info"}
        names = set()
        # Both template languages: Jinja (hydrant's) and consul-template (vault-k8s's).
        for syntax in ("jinja", "consul-template"):
            once = os.path.join(work, f"once-{syntax}.json")
            with open(once, "w") as f:
                f.write(trusting(server, hydrant_agent_config(
                    server.addr, N, jwt_path, os.path.join(work, f"once-out-{syntax}"), syntax=syntax)))
            names |= functions(callgrind(work, f"once-{syntax}", [HYDRANT, "agent", "--once", "--config", once], env))
            sidecar = os.path.join(work, f"sidecar-{syntax}.json")
            with open(sidecar, "w") as f:
                f.write(trusting(server, hydrant_agent_config(
                    server.addr, N, jwt_path, os.path.join(work, f"sidecar-out-{syntax}"), syntax=syntax,
                    state_dir=os.path.join(work, f"state-{syntax}"), refresh_interval="5s")))
            names |= functions(callgrind(work, f"sidecar-{syntax}", [HYDRANT, "agent", "--config", sidecar], env,
                                         SIDECAR_S))
        # Vault Agent's own HCL, unchanged (the init container on an agent-configmap).
        hcl = os.path.join(work, "once.hcl")
        with open(hcl, "w") as f:
            f.write(bao_agent_hcl(server.addr, N, jwt_path, os.path.join(work, "once-out-hcl"),
                                  os.path.join(work, "token-hcl"), exit_after_auth=True))
        hcl_env = dict(env, **({"VAULT_CACERT": server.ca_cert} if server.ca_cert else {}))
        names |= functions(callgrind(work, "once-hcl", [HYDRANT, "agent", "--config", hcl], hcl_env))
        # hydrant exec as a supervisor: 50 variables, the child started, then stopped.
        exec_config = os.path.join(work, "exec.json")
        with open(exec_config, "w") as f:
            doc = json.loads(trusting(server, hydrant_agent_config(server.addr, 1, jwt_path, work)))
            doc.pop("templates", None)
            doc.pop("secrets", None)
            doc["env"] = [{"name": f"V{i}", "path": f"secret/data/app/s{i}", "key": "k1"} for i in range(N)]
            json.dump(doc, f)
        names |= functions(callgrind(work, "exec", [HYDRANT, "exec", "--config", exec_config, "--", "sleep", "600"],
                                     env, SIDECAR_S / 4))
        return names
    finally:
        server.stop()


def main():
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is needed: apt install valgrind")
    if subprocess.run(["nm", HYDRANT], capture_output=True).returncode != 0:
        raise SystemExit(f"{HYDRANT} has no symbol table; build it with `cargo dist`")
    shutil.rmtree(WORK, ignore_errors=True)
    names = set()
    for tls in (False, True):
        names |= profile(os.path.join(WORK, "https" if tls else "http"), tls)
    defined = set(subprocess.run(["nm", "--defined-only", "--format=just-symbols", HYDRANT],
                                 capture_output=True, text=True, check=True).stdout.split())
    listed = sorted(n for n in names if n in defined)
    with open(ORDER, "w") as f:
        f.write("".join(f"{n}\n" for n in listed))
    log(f"{len(listed)} functions ({len(names) - len(listed)} names callgrind saw are not symbols) -> {ORDER}")
    for path in glob.glob(os.path.join(WORK, "*", "callgrind.*")):
        os.remove(path)


if __name__ == "__main__":
    main()
