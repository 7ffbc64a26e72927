//! `hydrant install --to DIR`: copies this very binary into a directory. The webhook's
//! `hydrant-install` init container runs it to put hydrant into the memory volume from which the
//! app's containers run `hydrant exec` (hydrant's image has no `cp`, nor a shell).

use std::path::{Path, PathBuf};

use tracing::info;

/// `hydrant install`'s flags.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// The directory the binary is copied into, as `hydrant` (mode 0755), replacing one there.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
}

/// Why the binary could not be copied.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The running binary cannot be found.
    #[error("cannot find the running binary: {0}")]
    Locate(std::io::Error),
    /// The copy failed.
    #[error("cannot copy hydrant to {}: {error}; mount a writable volume there", to.display())]
    Copy {
        /// Where it was going.
        to: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
}

/// The name of the copy in the directory.
pub const INSTALLED_NAME: &str = "hydrant";

/// `hydrant install`: copies the running binary to `DIR/hydrant`, through a temporary file and
/// a rename, so that a container never sees half a binary.
pub fn command(args: &InstallArgs) -> Result<(), InstallError> {
    let from = std::env::current_exe().map_err(InstallError::Locate)?;
    let to = args.to.join(INSTALLED_NAME);
    copy(&from, &args.to, &to).map_err(|error| InstallError::Copy {
        to: to.clone(),
        error,
    })?;
    info!(to = %to.display(), "hydrant installed");
    Ok(())
}

fn copy(from: &Path, dir: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let temporary = dir.join(format!(".{INSTALLED_NAME}.{}", std::process::id()));
    let result = std::fs::copy(from, &temporary)
        .and_then(|_| std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o755)))
        .and_then(|()| std::fs::rename(&temporary, to));
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}
