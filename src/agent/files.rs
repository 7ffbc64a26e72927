//! Writing rendered files: atomically (temporary file in the same directory, fsync, rename), with
//! the requested mode, and only when the content changed.

use std::fs::{self, File, Permissions};
use std::io::{self, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

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

/// Writes `contents` to `path` so that a reader sees the old file or the new one, never a part.
// vault-k8s#711: the app must never see a half-written file.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<Written> {
    let existing = match fs::read(path) {
        Ok(existing) => Some(existing),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if existing.as_deref() == Some(contents) {
        if fs::metadata(path)?.permissions().mode() & 0o7777 != mode {
            fs::set_permissions(path, Permissions::from_mode(mode))?;
        }
        return Ok(Written::Unchanged);
    }
    let dir = parent(path);
    fs::create_dir_all(dir).map_err(|e| explain_mkdir(dir, e))?;
    // The temporary file is created 0600 and is removed if anything below fails.
    let mut tmp = tempfile::Builder::new()
        .prefix(".hydrant-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(contents)?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // Make the rename itself durable; on the memory volumes pods use this costs nothing.
    File::open(dir)?.sync_all()?;
    Ok(if existing.is_some() {
        Written::Updated
    } else {
        Written::Created
    })
}

/// Checks, before anything is fetched, that files can be created in `path`'s directory: creates
/// the directory if needed and a temporary file in it.
pub fn check_writable(path: &Path) -> io::Result<()> {
    let dir = parent(path);
    fs::create_dir_all(dir).map_err(|e| explain_mkdir(dir, e))?;
    tempfile::Builder::new()
        .prefix(".hydrant-check-")
        .tempfile_in(dir)
        .map(drop)
}

/// `create_dir_all` says only "File exists" when a file stands where a directory should be.
fn explain_mkdir(dir: &Path, e: io::Error) -> io::Error {
    if e.kind() != io::ErrorKind::AlreadyExists {
        return e;
    }
    let blocker = dir.ancestors().find(|a| a.is_file()).unwrap_or(dir);
    io::Error::new(
        io::ErrorKind::NotADirectory,
        format!("{} is a file, not a directory", blocker.display()),
    )
}

fn parent(path: &Path) -> &Path {
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
    fn check_writable_fails_for_a_path_under_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("plain-file");
        fs::write(&file, "x").expect("write");
        assert!(check_writable(&file.join("sub/out")).is_err());
        assert!(check_writable(&dir.path().join("new/out")).is_ok());
    }
}
