path "database/creds/team-a_app" {
  capabilities = ["read"]
}
