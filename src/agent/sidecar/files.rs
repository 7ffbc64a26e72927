//! The files the sidecar keeps (`hydrant agent`'s outputs): each written atomically when its
//! content changed, and its change command run then, in the background with its timeout.

use std::sync::Arc;
use std::time::Duration;

use injector::AgentConfig;
use injector::agent_config::OutputRef;
use tracing::{info, warn};

use super::Outputs;
use crate::agent::server::SidecarStatus;
use crate::files;
use crate::template::Rendered;

/// The config's templates and secrets, written into their files.
pub(crate) struct Files<'a> {
    outputs: Vec<OutputRef<'a>>,
    status: Arc<SidecarStatus>,
}

impl<'a> Files<'a> {
    /// The outputs of `config`, reporting their change commands to `status`.
    pub(crate) fn new(config: &'a AgentConfig, status: Arc<SidecarStatus>) -> Files<'a> {
        Files {
            outputs: config.outputs().collect(),
            status,
        }
    }
}

impl Outputs for Files<'_> {
    fn name(&self, i: usize) -> &str {
        self.outputs.get(i).map_or("", |o| o.name)
    }

    fn put(&mut self, i: usize, rendered: Rendered) -> Result<bool, String> {
        let Some(output) = self.outputs.get(i) else {
            return Ok(false);
        };
        let written = files::write_atomic(output.destination, rendered.as_bytes(), output.mode)
            .map_err(|e| format!("cannot write {}: {e}", output.destination.display()))?;
        if written == files::Written::Unchanged {
            return Ok(false);
        }
        info!(name = output.name, destination = %output.destination.display(), written = written.label(), "rendered");
        Ok(true)
    }

    fn changed(&mut self, i: usize) {
        self.run_command(i);
    }
}

impl Files<'_> {
    /// Runs an output's change command in the background, with its timeout.
    fn run_command(&self, i: usize) {
        let Some(output) = self.outputs.get(i) else {
            return;
        };
        let Some(argv) = output.command.map(<[String]>::to_vec) else {
            return;
        };
        let timeout: Duration = output.command_timeout;
        let status = self.status.clone();
        let name = output.name.to_owned();
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
