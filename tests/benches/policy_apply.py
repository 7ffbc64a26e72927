#!/usr/bin/env python3
"""`hydrant policy apply` at scale: 1,000 namespaces with 3 policies and 2 roles each, against a
local OpenBao dev server (file audit device on). Measures the first apply (5,000 objects
created) and a no-change apply (everything read and compared, nothing written): wall time and
the requests in the server's audit log, by operation.

Run it from the project's root after building the shipped binary:

    cargo dist && target/tools/venv/bin/python tests/benches/policy_apply.py

Knobs (environment): NAMESPACES=1000 HYDRANT=target/x86_64-unknown-linux-gnu/release/hydrant
OUT_DIR=target/bench. Prints a markdown table and writes it to target/bench/policy-apply.md.
"""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Server, bao_binary, log  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.abspath(os.environ.get("OUT_DIR", os.path.join(ROOT, "target", "bench")))
WORK = os.path.join(OUT, "policy")
NAMESPACES = int(os.environ.get("NAMESPACES", "1000"))
HYDRANT = os.path.abspath(os.environ.get("HYDRANT", os.path.join(ROOT, "target", "x86_64-unknown-linux-gnu", "release", "hydrant")))

SETTINGS = """prefix: tenant
allowed_paths:
  - secret/data/{{ namespace }}/*
  - secret/metadata/{{ namespace }}/*
  - database/creds/{{ namespace }}_*
platform_policies: [platform-read]
audience: vault
ttl_cap: 1h
max_ttl_cap: 24h
"""


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def repository(root):
    write(os.path.join(root, "hydrant-policy.yaml"), SETTINGS)
    for n in range(NAMESPACES):
        ns = f"team-{n:04d}"
        d = os.path.join(root, "namespaces", ns)
        write(f"{d}/policies/read.hcl", f'path "secret/data/{ns}/*" {{\n  capabilities = ["read"]\n}}\n'
                                        f'path "secret/metadata/{ns}/*" {{\n  capabilities = ["list", "read"]\n}}\n')
        write(f"{d}/policies/write.hcl", f'path "secret/data/{ns}/app/*" {{\n  capabilities = ["create", "update", "read"]\n}}\n')
        write(f"{d}/policies/db.hcl", f'path "database/creds/{ns}_app" {{\n  capabilities = ["read"]\n}}\n')
        write(f"{d}/roles/app.yaml", "service_accounts: [app]\npolicies: [read, db]\nttl: 20m\nmax_ttl: 4h\n")
        write(f"{d}/roles/ci.yaml", "service_accounts: [ci, deployer]\npolicies: [read, write, platform-read]\nttl: 10m\n")


def apply(server, repo):
    env = dict(os.environ, VAULT_ADDR=server.addr, VAULT_TOKEN="root", HYDRANT_LOG="warn")
    offset = server.audit_offset()
    start = time.monotonic()
    run = subprocess.run([HYDRANT, "policy", "apply", repo], env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    if run.returncode != 0:
        raise SystemExit(f"apply failed: {run.stderr}")
    counts = {}
    for key, n in server.requests_since(offset).items():
        op = key.split(" ", 1)[0]
        counts[op] = counts.get(op, 0) + n
    return elapsed, counts, run.stdout.strip().splitlines()[-1]


def main():
    if not os.path.exists(HYDRANT):
        raise SystemExit(f"{HYDRANT} not found: run `cargo dist` first")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    repo = os.path.join(WORK, "repo")
    repository(repo)
    server = Server(bao_binary(), WORK)
    try:
        server.api("POST", "sys/auth/kubernetes", {"type": "kubernetes"})
        log(f"{NAMESPACES} namespaces written; first apply")
        first = apply(server, repo)
        log("no-change apply")
        second = apply(server, repo)
    finally:
        server.stop()
    writes = lambda c: sum(n for op, n in c.items() if op in ("create", "update", "delete"))  # noqa: E731
    table = [
        f"`hydrant policy apply` on {NAMESPACES} namespaces x (3 policies + 2 roles), local OpenBao dev server with a file audit device, 2 CPUs",
        "",
        "| apply | wall time | Vault requests (by operation) | writes | summary |",
        "|---|---|---|---|---|",
    ]
    for name, (elapsed, counts, summary) in (("first", first), ("no change", second)):
        ops = ", ".join(f"{op} {n}" for op, n in sorted(counts.items()))
        table.append(f"| {name} | {elapsed:.2f} s | {ops} | {writes(counts)} | {summary} |")
    text = "\n".join(table) + "\n"
    print(text)
    with open(os.path.join(OUT, "policy-apply.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
