pid_file = "/home/vault/.pid"
exit_after_auth = true
vault {
  address = "https://vault.vault.svc:8200"
  ca_cert = "/vault/tls/ca.crt"
  retry {
    num_retries = 5
  }
}
auto_auth {
  method "kubernetes" {
    mount_path = "auth/kubernetes"
    config = {
      role = "app"
    }
  }
  sink "file" {
    config = {
      path = "/home/vault/.vault-token"
      mode = 0640
    }
  }
}
template_config {
  static_secret_render_interval = "5m"
  exit_on_retry_failure = true
}
template {
  destination = "/vault/secrets/db"
  contents = <<EOT
{{ with secret "database/creds/app" }}{{ .Data.username }}:${HOME}{{ end }}
EOT
  perms = "0600"
  command = "kill -HUP 1"
  exec {
    timeout = "30s"
  }
}
