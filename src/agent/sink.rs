//! Token sinks (Vault Agent's `sink "file"`): the token in use, written to files for apps that
//! call Vault themselves, after every login and take-over. A renewal keeps the same token, so
//! the files stay current without a write.

use injector::AgentConfig;
use injector::agent_config::TokenSinkConfig;
use tracing::{info, warn};

use super::Error;
use crate::files;
use crate::vault::Token;

/// Writes the token to every sink, each atomically with its mode.
pub(super) fn write(config: &AgentConfig, token: &Token) -> Result<(), Error> {
    write_to(&config.token_sinks, token)
}

/// Writes the token to each of `sinks`, atomically with its mode.
pub(super) fn write_to(sinks: &[TokenSinkConfig], token: &Token) -> Result<(), Error> {
    for sink in sinks {
        files::write_atomic(&sink.path, token.expose().as_bytes(), sink.mode()).map_err(
            |error| Error::Write {
                name: "token sink".to_owned(),
                path: sink.path.clone(),
                error,
            },
        )?;
        info!(path = %sink.path.display(), "wrote the token to its sink");
    }
    Ok(())
}

/// [`write`] where a failure must not stop the agent (the sidecar): it is logged, and the
/// next login writes again.
pub(super) fn write_or_warn(config: &AgentConfig, token: &Token) {
    if let Err(error) = write(config, token) {
        warn!(%error, "cannot write the token sink");
    }
}

/// The process ID in `pid_file` while the agent runs (Vault Agent's `pid_file`): written at
/// start, removed when dropped.
#[derive(Debug)]
pub(crate) struct PidFile(std::path::PathBuf);

impl PidFile {
    /// Writes the file, as Vault Agent does: the ID alone, mode 0600.
    pub(crate) fn create(path: &std::path::Path) -> Result<PidFile, Error> {
        let id = std::process::id().to_string();
        files::write_atomic(path, id.as_bytes(), 0o600).map_err(|error| Error::Write {
            name: "pid_file".to_owned(),
            path: path.to_owned(),
            error,
        })?;
        Ok(PidFile(path.to_owned()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
