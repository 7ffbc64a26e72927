//! The outputs' change commands, run in the background with their timeouts when a file changed.

use std::time::Duration;

use injector::AgentConfig;
use tracing::{info, warn};

use super::Sidecar;

impl Sidecar<'_> {
    /// Runs an output's change command in the background, with its timeout.
    pub(super) fn run_command(&self, i: usize) {
        let (name, command, timeout) = command_of(self.config, i);
        let Some(argv) = command else {
            return;
        };
        let status = self.status.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            let mut child = match tokio::process::Command::new(&argv[0])
                .args(&argv[1..])
                .kill_on_drop(true)
                .spawn()
            {
                Ok(child) => child,
                Err(error) => {
                    status.command(&name, false);
                    warn!(name, %error, program = argv[0], "cannot start the change command");
                    return;
                }
            };
            match tokio::time::timeout(timeout, child.wait()).await {
                Ok(Ok(exit)) if exit.success() => {
                    status.command(&name, true);
                    info!(name, "change command ran");
                }
                Ok(Ok(exit)) => {
                    status.command(&name, false);
                    warn!(name, status = %exit, "change command failed");
                }
                Ok(Err(error)) => {
                    status.command(&name, false);
                    warn!(name, %error, "change command failed");
                }
                Err(_) => {
                    status.command(&name, false);
                    let _ = child.kill().await;
                    warn!(
                        name,
                        timeout_s = timeout.as_secs(),
                        "change command timed out and was killed"
                    );
                }
            }
        });
    }
}

fn command_of(config: &AgentConfig, i: usize) -> (&str, Option<Vec<String>>, Duration) {
    match config.outputs().nth(i) {
        Some(output) => (
            output.name,
            output.command.map(<[String]>::to_vec),
            output.command_timeout,
        ),
        None => ("", None, injector::agent_config::DEFAULT_COMMAND_TIMEOUT),
    }
}
