path "database/creds/team-a-app" {
  capabilities = ["read"]
}
