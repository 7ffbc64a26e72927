path "a" { capabilities = ["read"] }
path "b/+/c" {
  capabilities = ["list", "sudo"]
}
