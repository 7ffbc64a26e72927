//! Checks of one annotation's value that both families share: paths, file names, commands,
//! ports, durations, log settings and JSON patches. Each error names the annotation.

use crate::Denial;
use crate::values::Duration;

pub(super) fn duration(key: &str, value: &str) -> Result<Duration, Denial> {
    Duration::parse(value).map_err(|e| Denial::bad(key, e))
}

pub(super) fn port(key: &str, value: &str) -> Result<u16, Denial> {
    value
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| Denial::bad(key, format!("{value:?} is not a port number, such as 8200")))
}

/// A command written the way a shell would split it. hydrant's image has no shell, so the usual
/// signalling commands (`kill -HUP $(pidof nginx)`, `pkill -HUP nginx`, `kill -s HUP 1`, each
/// also inside `sh -c`) become `hydrant signal`; another command with shell syntax (pipes, `&&`,
/// redirections, variables) or a shell of its own becomes `/bin/sh -c <command>`, which only the
/// image variant with a shell can run (the mutation refuses it otherwise). An empty value means
/// no command.
pub(super) fn command(key: &str, value: &str) -> Result<Option<Vec<String>>, Denial> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    let argv = shlex::split(value)
        .ok_or_else(|| Denial::bad(key, format!("{value:?} has an unclosed quote")))?;
    if let Some((signal, target)) = crate::commands::translate(&argv) {
        return Ok(Some(crate::commands::signal_argv(&signal, &target)));
    }
    let shell = argv.iter().any(|arg| {
        matches!(
            arg.as_str(),
            "|" | "||" | "&&" | "&" | ";" | ">" | ">>" | "<"
        ) || arg.contains('$')
            || arg.contains('`')
    }) || argv
        .first()
        .is_some_and(|p| matches!(p.rsplit('/').next(), Some("sh" | "bash" | "ash" | "dash")));
    if shell {
        return Ok(Some(
            [SHELL, "-c", value.trim()].map(str::to_owned).to_vec(),
        ));
    }
    Ok(Some(argv))
}

/// The shell of the image variant that has one (`Dockerfile`, stage `shell`).
pub const SHELL: &str = "/bin/sh";

pub(super) fn non_empty(value: &str) -> Option<String> {
    let v = value.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

/// A mount path: absolute, on one line, without `.`, `..` or empty segments, and not the
/// container's root (`/`, `//`, `/.` and `/./` all are). A trailing `/` is dropped.
pub(super) fn absolute_path(key: &str, value: &str) -> Result<String, Denial> {
    let trimmed = value.trim();
    no_control(key, trimmed)?;
    let path = trimmed.trim_end_matches('/');
    if trimmed.starts_with('/') && path.split('/').skip(1).all(|s| s.is_empty() || s == ".") {
        return Err(Denial::bad(
            key,
            format!(
                "{value:?} is the container's root directory; mount the files in a directory of their own, such as /vault/secrets"
            ),
        ));
    }
    if !path.starts_with('/')
        || path
            .split('/')
            .skip(1)
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(Denial::bad(
            key,
            format!(
                "{value:?} is not an absolute path without '..', '.' or '//', such as /vault/secrets"
            ),
        ));
    }
    Ok(path.to_owned())
}

/// A file's name under its mount path (`db.env`, `conf/db.env`): on one line, without `.`,
/// `..` or empty segments. A leading `/` is allowed, as vault-k8s joins even an absolute name
/// under the mount path; the value is returned trimmed, otherwise as given.
pub(crate) fn file_name(key: &str, value: &str) -> Result<String, Denial> {
    let file = value.trim();
    no_control(key, file)?;
    let relative = file.trim_start_matches('/');
    if relative.is_empty()
        || relative
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(Denial::bad(
            key,
            format!(
                "{value:?} is not a file name; use a name such as db.env or conf/db.env, without '..', '.', '//' or a trailing '/'"
            ),
        ));
    }
    Ok(file.to_owned())
}

/// A file the agent reads in its own container (a CA bundle, a token, an AppRole ID): on one
/// line, and a file rather than the root directory. Empty means none.
pub(super) fn file_path(key: &str, value: &str) -> Result<Option<String>, Denial> {
    no_control(key, value.trim())?;
    let Some(path) = non_empty(value) else {
        return Ok(None);
    };
    if path
        .split('/')
        .all(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(Denial::bad(
            key,
            format!(
                "{value:?} names a directory, not a file; give the file's path, such as /vault/tls/ca.crt"
            ),
        ));
    }
    Ok(Some(path))
}

/// Paths and file names hold no control characters: a NUL or a newline would cut or split
/// the name where the agent, the kubelet or a log reads it.
pub(super) fn no_control(key: &str, value: &str) -> Result<(), Denial> {
    if value.chars().any(char::is_control) {
        return Err(Denial::bad(
            key,
            format!(
                "{value:?} holds a control character (such as a NUL, a tab or a newline); write the path on one line with printable characters"
            ),
        ));
    }
    Ok(())
}

pub(super) fn log_level(key: &str, value: &str) -> Result<String, Denial> {
    crate::values::parse_log_level(value)
        .map(str::to_owned)
        .map_err(|e| Denial::bad(key, e))
}

pub(super) fn log_format(key: &str, value: &str) -> Result<String, Denial> {
    crate::values::parse_log_format(value)
        .map(str::to_owned)
        .map_err(|e| Denial::bad(key, e))
}

pub(super) fn json_patch_of(key: &str, value: &str) -> Result<Option<json_patch::Patch>, Denial> {
    let text = value.trim();
    if text.is_empty() || text == "null" || text == "[]" {
        return Ok(None);
    }
    let patch: json_patch::Patch = serde_json::from_str(text).map_err(|e| {
        Denial::bad(
            key,
            format!("is not an RFC 6902 JSON patch ({e}); write it like [{{\"op\": \"replace\", \"path\": \"/resources\", \"value\": {{}}}}]"),
        )
    })?;
    if patch.0.len() > MAX_PATCH_OPERATIONS {
        return Err(Denial::bad(
            key,
            format!(
                "has {} operations, over the {MAX_PATCH_OPERATIONS} hydrant applies from one annotation; patch only what you need, such as resources or securityContext",
                patch.0.len()
            ),
        ));
    }
    Ok(Some(patch))
}

/// The most operations one `agent-json-patch` or `agent-init-json-patch` may hold. Tweaking
/// the agent's container takes a handful; more only serves to blow it up.
pub const MAX_PATCH_OPERATIONS: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_absolute_printable_and_never_the_root() {
        let cases: [(&str, Result<&str, &str>); 19] = [
            ("/vault/secrets", Ok("/vault/secrets")),
            ("/etc/db/", Ok("/etc/db")),
            (" /etc/db \n", Ok("/etc/db")),
            ("/", Err("is the container's root directory")),
            ("//", Err("is the container's root directory")),
            ("///", Err("is the container's root directory")),
            ("/.", Err("is the container's root directory")),
            ("/./", Err("is the container's root directory")),
            ("/./.", Err("is the container's root directory")),
            ("/..", Err("without '..'")),
            ("/a/../b", Err("without '..'")),
            ("/a/./b", Err("without '..'")),
            ("/a//b", Err("without '..'")),
            ("relative/path", Err("is not an absolute path")),
            ("", Err("is not an absolute path")),
            ("/vault\nsecrets", Err("holds a control character")),
            ("/vault/\0", Err("holds a control character")),
            ("/a\tb", Err("holds a control character")),
            ("/a\u{7f}b", Err("holds a control character")),
        ];
        for (value, expected) in cases {
            let got = absolute_path("k", value);
            match expected {
                Ok(path) => assert_eq!(got, Ok(path.to_owned()), "{value:?}"),
                Err(text) => {
                    let message = got.expect_err(value).message;
                    assert!(message.starts_with("k: "), "{message}");
                    assert!(message.contains(text), "{value:?}: {message}");
                }
            }
        }
    }

    #[test]
    fn file_names_are_printable_relative_names() {
        let cases: [(&str, Result<&str, &str>); 15] = [
            ("db.env", Ok("db.env")),
            ("conf/db.env", Ok("conf/db.env")),
            ("/db.env", Ok("/db.env")),
            (" db.env ", Ok("db.env")),
            ("", Err("is not a file name")),
            ("/", Err("is not a file name")),
            ("conf/", Err("is not a file name")),
            ("conf//db.env", Err("is not a file name")),
            ("./db.env", Err("is not a file name")),
            ("conf/..", Err("is not a file name")),
            ("../../etc/passwd", Err("without '..'")),
            ("db\0.env", Err("holds a control character")),
            ("db\n.env", Err("holds a control character")),
            ("db\r.env", Err("holds a control character")),
            ("db\u{1b}[2J", Err("holds a control character")),
        ];
        for (value, expected) in cases {
            let got = file_name("k", value);
            match expected {
                Ok(name) => assert_eq!(got, Ok(name.to_owned()), "{value:?}"),
                Err(text) => {
                    let message = got.expect_err(value).message;
                    assert!(message.contains(text), "{value:?}: {message}");
                }
            }
        }
    }

    #[test]
    fn agent_file_paths_are_printable_files() {
        let cases: [(&str, Result<Option<&str>, &str>); 9] = [
            ("/vault/tls/ca.crt", Ok(Some("/vault/tls/ca.crt"))),
            ("token", Ok(Some("token"))),
            ("", Ok(None)),
            ("  ", Ok(None)),
            ("/", Err("names a directory, not a file")),
            ("/.", Err("names a directory, not a file")),
            ("//..", Err("names a directory, not a file")),
            ("/ca\n.crt", Err("holds a control character")),
            ("/ca.crt\0", Err("holds a control character")),
        ];
        for (value, expected) in cases {
            let got = file_path("k", value);
            match expected {
                Ok(path) => assert_eq!(got, Ok(path.map(str::to_owned)), "{value:?}"),
                Err(text) => {
                    let message = got.expect_err(value).message;
                    assert!(message.contains(text), "{value:?}: {message}");
                }
            }
        }
    }
}
