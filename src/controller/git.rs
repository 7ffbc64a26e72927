//! The policy repository's git remote: a bare clone kept up to date with gix (pure Rust; `https`,
//! `git://` and `file://`), and the tree of one commit written out as files for
//! [`crate::policy::repo::load`]. Blocking: run it on a blocking thread.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::bstr::ByteSlice as _;
use gix::progress::Discard;
use gix::remote::Direction;

use crate::vault::chain;

/// Why fetching or reading the repository failed. Messages name the remote and the branch.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Cloning or fetching failed.
    #[error("fetching {url}: {message}")]
    Fetch {
        /// The remote.
        url: String,
        /// gix's error chain.
        message: String,
    },
    /// The branch is not on the remote.
    #[error("{url} has no branch {branch:?}; set --branch to one it has")]
    NoBranch {
        /// The remote.
        url: String,
        /// The branch asked for.
        branch: String,
    },
    /// Reading a commit's files failed.
    #[error("reading commit {commit}: {message}")]
    Read {
        /// The commit.
        commit: String,
        /// What failed.
        message: String,
    },
}

/// Credentials for an `https://` remote: a user name and a file holding the password or token.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The user name (`x-access-token` for GitHub tokens, `oauth2` for GitLab's).
    pub username: String,
    /// The file with the password or token.
    pub password_file: PathBuf,
}

impl Credentials {
    fn account(&self) -> Result<gix::sec::identity::Account, String> {
        let password = std::fs::read_to_string(&self.password_file).map_err(|e| {
            format!(
                "cannot read the git password file {}: {e}; mount the credentials Secret there",
                self.password_file.display()
            )
        })?;
        Ok(gix::sec::identity::Account {
            username: self.username.clone(),
            password: password.trim().to_owned(),
            oauth_refresh_token: None,
        })
    }
}

/// A remote and the branch of it that is applied, mirrored into a bare repository on disk.
#[derive(Debug)]
pub struct Remote {
    url: String,
    branch: String,
    dir: PathBuf,
}

impl Remote {
    /// The remote at `url`; its objects are kept in `dir` (created on the first fetch).
    pub fn new(url: String, branch: String, dir: PathBuf) -> Remote {
        Remote { url, branch, dir }
    }

    /// The remote's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Fetches the branch (into a new bare repository on the first call); returns the commit
    /// it points at. The password file, when given, is read at every fetch (a mounted Secret
    /// may be rotated) and given only when the server asks for credentials.
    pub fn fetch(&self, credentials: Option<&Credentials>) -> Result<String, Error> {
        let fetch_error = |e: &(dyn std::error::Error + 'static)| Error::Fetch {
            url: self.url.clone(),
            message: chain(e),
        };
        let interrupt = AtomicBool::new(false);
        let repo = if self.dir.join("HEAD").exists() {
            gix::open(&self.dir).map_err(|e| fetch_error(&e))?
        } else {
            std::fs::create_dir_all(&self.dir).map_err(|e| fetch_error(&e))?;
            gix::init_bare(&self.dir).map_err(|e| fetch_error(&e))?
        };
        let account = match credentials {
            Some(c) => Some(c.account().map_err(|e| Error::Fetch {
                url: self.url.clone(),
                message: e,
            })?),
            None => None,
        };
        // The branch alone, into refs/remotes/origin.
        let spec = format!("+refs/heads/{0}:refs/remotes/origin/{0}", self.branch);
        let remote = repo
            .remote_at(self.url.as_str())
            .map_err(|e| fetch_error(&e))?
            .with_refspecs([spec.as_str()], Direction::Fetch)
            .map_err(|e| fetch_error(&e))?;
        let connection = remote
            .connect(Direction::Fetch)
            .map_err(|e| fetch_error(&e))?
            .with_credentials(move |action| match (action, &account) {
                (gix::credentials::helper::Action::Get(context), Some(account)) => {
                    Ok(Some(gix::credentials::protocol::Outcome {
                        identity: account.clone(),
                        next: context.into(),
                    }))
                }
                _ => Ok(None),
            });
        connection
            .prepare_fetch(Discard, Default::default())
            .map_err(|e| fetch_error(&e))?
            .receive(Discard, &interrupt)
            .map_err(|e| fetch_error(&e))?;
        for name in [
            format!("refs/remotes/origin/{}", self.branch),
            format!("refs/heads/{}", self.branch),
        ] {
            if let Ok(mut reference) = repo.find_reference(name.as_str()) {
                let id = reference.peel_to_id().map_err(|e| fetch_error(&e))?;
                return Ok(id.to_string());
            }
        }
        Err(Error::NoBranch {
            url: self.url.clone(),
            branch: self.branch.clone(),
        })
    }

    /// Writes the files of `commit` under `into` (which must not exist yet); returns the paths
    /// of entries that are not files, which are not written: symlinks (a link could point
    /// anywhere on this machine) and submodules.
    pub fn checkout(&self, commit: &str, into: &Path) -> Result<Vec<PathBuf>, Error> {
        let read_error = |message: String| Error::Read {
            commit: commit.to_owned(),
            message,
        };
        let repo = gix::open(&self.dir).map_err(|e| read_error(chain(&e)))?;
        let id = gix::ObjectId::from_hex(commit.as_bytes()).map_err(|e| read_error(chain(&e)))?;
        let tree = repo
            .find_commit(id)
            .map_err(|e| read_error(chain(&e)))?
            .tree()
            .map_err(|e| read_error(chain(&e)))?;
        let mut recorder = gix::traverse::tree::Recorder::default();
        tree.traverse()
            .breadthfirst(&mut recorder)
            .map_err(|e| read_error(chain(&e)))?;
        std::fs::create_dir_all(into).map_err(|e| read_error(e.to_string()))?;
        let mut not_written = Vec::new();
        for entry in recorder.records {
            if entry.mode.is_tree() {
                continue;
            }
            let relative = entry
                .filepath
                .to_path()
                .map_err(|_| read_error(format!("{} is not a valid path", entry.filepath)))?;
            if !entry.mode.is_blob() {
                not_written.push(relative.to_owned());
                continue;
            }
            // Tree entries never hold `..` or absolute names (git refuses them), but the
            // files come from the network: check anyway.
            if relative
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(read_error(format!(
                    "{} escapes the repository",
                    entry.filepath
                )));
            }
            let path = into.join(relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| read_error(e.to_string()))?;
            }
            let blob = repo
                .find_object(entry.oid)
                .map_err(|e| read_error(chain(&e)))?;
            std::fs::write(&path, &blob.data)
                .map_err(|e| read_error(format!("{}: {e}", path.display())))?;
        }
        Ok(not_written)
    }
}
