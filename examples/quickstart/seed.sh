#!/usr/bin/env bash
# Seeds a dev OpenBao for the quickstart with the bao CLI: KV v2 and KV v1 secrets, a PKI role,
# a policy, and an AppRole whose role ID and secret ID land in $1/creds.
# Needs BAO_ADDR and BAO_TOKEN (the dev root token) and `bao` on PATH.
set -euo pipefail
work=${1:?usage: seed.sh WORK_DIR}
mkdir -p "$work/creds"

bao kv put -mount=secret myapp/db username=myapp password='correct-horse-battery-staple' >/dev/null
echo '{"checkout_v2": true, "max_cart_items": 50}' | bao kv put -mount=secret myapp/features - >/dev/null
bao secrets enable -path=kv -version=1 kv >/dev/null
bao write kv/platform/site name=atlantida region=eu-west db_host=db.atlantida.internal >/dev/null

bao secrets enable pki >/dev/null
bao secrets tune -max-lease-ttl=24h pki >/dev/null
bao write pki/root/generate/internal common_name="quickstart CA" ttl=24h >/dev/null
bao write pki/roles/myapp allowed_domains=internal allow_subdomains=true max_ttl=2h >/dev/null

bao policy write myapp - >/dev/null <<'HCL'
path "secret/data/myapp/*" { capabilities = ["read"] }
path "kv/platform/*"       { capabilities = ["read"] }
path "pki/issue/myapp"     { capabilities = ["update"] }
HCL

bao auth enable approle >/dev/null
bao write auth/approle/role/myapp token_policies=myapp token_ttl=1h >/dev/null
bao read -field=role_id auth/approle/role/myapp/role-id >"$work/creds/role-id"
bao write -f -field=secret_id auth/approle/role/myapp/secret-id >"$work/creds/secret-id"
