# The least the policy commands and the controller need, for prefix "tenant", Kubernetes auth
# at "kubernetes" and the default ownership index. Listing shows names only; everything else is
# confined to the prefix.
path "sys/policies/acl" {
  capabilities = ["list"]
}
path "sys/policies/acl/tenant-*" {
  capabilities = ["create", "read", "update", "delete"]
}
path "auth/kubernetes/role" {
  capabilities = ["list"]
}
path "auth/kubernetes/role/tenant-*" {
  capabilities = ["create", "read", "update", "delete"]
}
path "secret/data/hydrant/policy-index/tenant" {
  capabilities = ["create", "read", "update"]
}
