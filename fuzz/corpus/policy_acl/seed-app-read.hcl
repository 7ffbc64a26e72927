# Every namespace may read its own KV tree.
path "secret/data/{{ namespace }}/*" {
  capabilities = ["read"]
}

path "secret/metadata/{{ namespace }}/*" {
  capabilities = ["list", "read"]
}
