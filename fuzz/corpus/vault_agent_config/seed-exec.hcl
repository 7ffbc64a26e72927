pid_file = "/tmp/agent.pid"
vault {
  address = "http://127.0.0.1:8200"
}
auto_auth {
  method "approle" {
    config = {
      role_id_file_path = "/etc/app/role-id"
    }
  }
  sink "file" {
    config = {
      path = "/tmp/token"
    }
  }
}
env_template "DB_PASSWORD" {
  contents = "{{ with secret \"secret/data/db\" }}{{ .Data.data.password }}{{ end }}"
  error_on_missing_key = true
}
env_template "API_KEY" {
  contents = "[[ with secret \"secret/api\" ]][[ .Data.key ]][[ end ]]"
  left_delimiter = "[["
  right_delimiter = "]]"
}
exec {
  command = ["/app/server", "--port", "8080"]
  restart_on_secret_changes = "always"
  restart_stop_signal = "SIGTERM"
}
