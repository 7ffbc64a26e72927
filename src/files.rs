//! Writing files atomically (temporary file in the same directory, fsync, rename), with the
//! requested mode, and only when the content changed: the agent's outputs and hand-over,
//! `render --out`, and the webhook's self-managed certificates.

use std::fs::{self, File, Permissions};
use std::io::{self, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// The file did not exist.
    Created,
    /// The file existed with other content.
    Updated,
    /// The file already held this content; at most its mode was corrected.
    Unchanged,
}

impl Written {
    /// A fixed lowercase word for logs and metrics: `created`, `updated` or `unchanged`.
    pub fn label(self) -> &'static str {
        match self {
            Written::Created => "created",
            Written::Updated => "updated",
            Written::Unchanged => "unchanged",
        }
    }
}

/// One file to write. Its `Debug` shows the path and size, never the contents.
#[derive(Clone, Copy)]
pub struct FileWrite<'a> {
    /// Where.
    pub path: &'a Path,
    /// What (secrets: never logged).
    pub contents: &'a [u8],
    /// Permission bits.
    pub mode: u32,
}

impl std::fmt::Debug for FileWrite<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWrite")
            .field("path", &self.path)
            .field(
                "contents",
                &format_args!("<{} bytes redacted>", self.contents.len()),
            )
            .field("mode", &format_args!("{:04o}", self.mode))
            .finish()
    }
}

/// Writes `contents` to `path` so that a reader sees the old file or the new one, never a part.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<Written> {
    let file = FileWrite {
        path,
        contents,
        mode,
    };
    write_all(&[file]).map(|w| w[0]).map_err(|(_, e)| e)
}

/// Writes several files, all or nothing: every changed file is first written beside its
/// destination and synced, and only when all of them are staged are they renamed into place
/// (the init container stages its files in parallel itself, each as its output is final). A
/// failure while staging leaves every file as it was; the error comes with the index of the file
/// that failed.
// vault-k8s#711: the app must never see a half-written file, nor half of its files updated.
pub fn write_all(files: &[FileWrite<'_>]) -> Result<Vec<Written>, (usize, io::Error)> {
    let staged = files
        .iter()
        .enumerate()
        .map(|(i, f)| stage(f).map_err(|e| (i, e)))
        .collect::<Result<Vec<_>, _>>()?;
    commit(staged)
}

/// A file's new version, written and synced beside its destination but not renamed into place
/// yet ([`stage`]); [`commit`] puts it in place. Dropping it removes the temporary file.
pub struct Staged {
    path: PathBuf,
    mode: u32,
    stage: Stage,
}

impl std::fmt::Debug for Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staged")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Writes `file`'s new version beside it and syncs it, or finds it unchanged; nothing is
/// renamed into place until [`commit`].
pub fn stage(file: &FileWrite<'_>) -> io::Result<Staged> {
    Ok(Staged {
        path: file.path.to_owned(),
        mode: file.mode,
        stage: stage_in_place(file)?,
    })
}

/// Puts every staged file in place (renames), then makes the renames durable once per
/// directory; says what each write did, in order. Renames do not fail for want of space, so
/// a failure here is rare; the error comes with the index of the file that failed.
pub fn commit(staged: Vec<Staged>) -> Result<Vec<Written>, (usize, io::Error)> {
    let mut written = Vec::with_capacity(staged.len());
    let mut dirs: Vec<(PathBuf, usize)> = Vec::new();
    for (i, Staged { path, mode, stage }) in staged.into_iter().enumerate() {
        written.push(match stage {
            Stage::Unchanged { fix_mode } => {
                if fix_mode {
                    fs::set_permissions(&path, Permissions::from_mode(mode)).map_err(|e| (i, e))?;
                }
                Written::Unchanged
            }
            Stage::Staged { tmp, existed } => {
                tmp.persist(&path).map_err(|e| (i, e.error))?;
                let dir = parent(&path);
                if !dirs.iter().any(|(d, _)| d == dir) {
                    dirs.push((dir.to_owned(), i));
                }
                if existed {
                    Written::Updated
                } else {
                    Written::Created
                }
            }
        });
    }
    // Make the renames durable, once per directory; on the memory volumes pods use this is free.
    for (dir, first) in dirs {
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| (first, e))?;
    }
    Ok(written)
}

/// A file's new version, synced beside it but not renamed into place yet. Dropping it removes
/// the temporary file.
enum Stage {
    /// Same content; the mode is corrected when everything is staged.
    Unchanged { fix_mode: bool },
    Staged {
        /// Closed once synced: an init container stages every output before it renames any, and
        /// an open descriptor per output would grow the process's descriptor table past its
        /// first 64 slots. Linux grows the table of a process with threads only after an RCU
        /// grace period (`expand_fdtable`), 10-20 ms on an idle VM, and every thread opening a
        /// file waits for it: that stall was most of hydrant's lag behind the floor at 50
        /// secrets. It also keeps any number of outputs clear of the descriptor limit.
        tmp: tempfile::TempPath,
        existed: bool,
    },
}

fn stage_in_place(file: &FileWrite<'_>) -> io::Result<Stage> {
    let FileWrite {
        path,
        contents,
        mode,
    } = *file;
    let existing = match fs::read(path) {
        Ok(existing) => Some(existing),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if existing.as_deref() == Some(contents) {
        let fix_mode = fs::metadata(path)?.permissions().mode() & 0o7777 != mode;
        return Ok(Stage::Unchanged { fix_mode });
    }
    let dir = parent(path);
    fs::create_dir_all(dir).map_err(|e| explain_mkdir(dir, e))?;
    // Created 0600; removed if anything below fails.
    let mut tmp = tempfile::Builder::new()
        .prefix(".hydrant-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(contents)?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    Ok(Stage::Staged {
        tmp: tmp.into_temp_path(),
        existed: existing.is_some(),
    })
}

/// Checks, before anything is fetched, that files can be created in `dir`: creates it if needed
/// and a temporary file in it. Removes temporary files an earlier run left behind when it was
/// killed between writing and renaming: they hold secrets, and nothing else would remove them.
pub fn check_writable(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir).map_err(|e| explain_mkdir(dir, e))?;
    tempfile::Builder::new()
        .prefix(".hydrant-check-")
        .tempfile_in(dir)
        .map(drop)?;
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".hydrant-") && name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// `create_dir_all` says only "File exists" or "Not a directory" when a file stands where a
/// directory should be; this names the file.
fn explain_mkdir(dir: &Path, e: io::Error) -> io::Error {
    if !matches!(
        e.kind(),
        io::ErrorKind::AlreadyExists | io::ErrorKind::NotADirectory
    ) {
        return e;
    }
    let blocker = dir.ancestors().find(|a| a.is_file()).unwrap_or(dir);
    io::Error::new(
        io::ErrorKind::NotADirectory,
        format!("{} is a file, not a directory", blocker.display()),
    )
}

/// The directory a file is written in; `.` for a bare file name.
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
    }

    #[test]
    fn creates_parents_writes_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a/b/db.env");
        assert_eq!(
            write_atomic(&path, b"x=1\n", 0o640).expect("writes"),
            Written::Created
        );
        assert_eq!(fs::read(&path).expect("reads"), b"x=1\n");
        assert_eq!(mode_of(&path), 0o640);
        let entries: Vec<_> = fs::read_dir(path.parent().expect("parent"))
            .expect("lists")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(entries, ["db.env"]);
    }

    #[test]
    fn unchanged_content_is_not_rewritten_but_mode_is_corrected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        write_atomic(&path, b"same", 0o644).expect("writes");
        let inode = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&path).expect("metadata"));
        assert_eq!(
            write_atomic(&path, b"same", 0o600).expect("writes"),
            Written::Unchanged
        );
        let after = fs::metadata(&path).expect("metadata");
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&after),
            inode,
            "same file, not replaced"
        );
        assert_eq!(mode_of(&path), 0o600);
    }

    #[test]
    fn changed_content_replaces_the_file_by_rename() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        write_atomic(&path, b"old", 0o644).expect("writes");
        let inode = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&path).expect("metadata"));
        assert_eq!(
            write_atomic(&path, b"new", 0o644).expect("writes"),
            Written::Updated
        );
        let after = fs::metadata(&path).expect("metadata");
        assert_ne!(
            std::os::unix::fs::MetadataExt::ino(&after),
            inode,
            "a new file was renamed in"
        );
        assert_eq!(fs::read(&path).expect("reads"), b"new");
    }

    #[test]
    fn staged_files_hold_no_descriptor_until_they_are_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let open_in_dir = || {
            fs::read_dir("/proc/self/fd")
                .expect("lists descriptors")
                .filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
                .filter(|target| target.starts_with(dir.path()))
                .count()
        };
        let staged: Vec<Staged> = (0..100)
            .map(|i| {
                stage(&FileWrite {
                    path: &dir.path().join(format!("s{i}.env")),
                    contents: format!("k={i}\n").as_bytes(),
                    mode: 0o644,
                })
                .expect("stages")
            })
            .collect();
        assert_eq!(open_in_dir(), 0, "a staged file kept its descriptor");
        commit(staged).expect("commits");
        assert_eq!(
            fs::read(dir.path().join("s99.env")).expect("reads"),
            b"k=99\n"
        );
    }

    #[test]
    fn a_failure_while_staging_leaves_every_file_as_it_was() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good");
        write_atomic(&good, b"old", 0o644).expect("writes");
        let blocker = dir.path().join("blocker");
        fs::write(&blocker, "x").expect("write");
        let bad = blocker.join("under-a-file");
        let files: Vec<FileWrite<'_>> = (0..20)
            .map(|i| FileWrite {
                path: if i == 13 { &bad } else { &good },
                contents: b"new",
                mode: 0o644,
            })
            .collect();
        let (index, _) = write_all(&files).expect_err("one cannot be staged");
        assert_eq!(index, 13);
        assert_eq!(
            fs::read(&good).expect("reads"),
            b"old",
            "nothing was renamed into place"
        );
        let leftovers = fs::read_dir(dir.path())
            .expect("lists")
            .filter(|e| {
                e.as_ref()
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count();
        assert_eq!(leftovers, 0, "staged temporary files are removed");
    }

    #[test]
    fn many_files_are_written_in_order_with_their_own_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths: Vec<_> = (0..30)
            .map(|i| dir.path().join(format!("d{}/f{i}", i % 3)))
            .collect();
        let contents: Vec<Vec<u8>> = (0..30).map(|i| format!("v{i}").into_bytes()).collect();
        let files: Vec<FileWrite<'_>> = paths
            .iter()
            .zip(&contents)
            .enumerate()
            .map(|(i, (path, contents))| FileWrite {
                path,
                contents,
                mode: if i % 2 == 0 { 0o600 } else { 0o640 },
            })
            .collect();
        let written = write_all(&files).expect("writes");
        assert!(written.iter().all(|w| *w == Written::Created));
        for (i, path) in paths.iter().enumerate() {
            assert_eq!(fs::read(path).expect("reads"), format!("v{i}").into_bytes());
            assert_eq!(mode_of(path), if i % 2 == 0 { 0o600 } else { 0o640 });
        }
    }

    #[test]
    fn check_writable_fails_for_a_directory_under_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("plain-file");
        fs::write(&file, "x").expect("write");
        let err = check_writable(&file.join("sub")).expect_err("a file is in the way");
        assert_eq!(
            err.to_string(),
            format!("{} is a file, not a directory", file.display())
        );
        assert!(check_writable(&dir.path().join("new")).is_ok());
    }

    #[test]
    fn check_writable_removes_temporary_files_a_killed_run_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stale = dir.path().join(".hydrant-AbC123.tmp");
        fs::write(&stale, "secret").expect("write");
        let other = dir.path().join("app.tmp");
        fs::write(&other, "theirs").expect("write");
        check_writable(dir.path()).expect("writable");
        assert!(!stale.exists());
        assert!(
            other.exists(),
            "only hydrant's own temporary files are removed"
        );
    }

    #[test]
    fn file_write_debug_output_hides_contents() {
        let debug = format!(
            "{:?}",
            FileWrite {
                path: Path::new("/a"),
                contents: b"hunter2",
                mode: 0o600
            }
        );
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("0600"), "{debug}");
    }
}
