//! The functions and filters templates may call besides minijinja's built-ins: `secret`, `env`,
//! `toyaml`, `b64encode`, `b64decode` (`tojson` is built in).
//!
//! Their errors never quote an argument: an argument may be computed from a secret. The error
//! names the position, and shows the call as the template spells it (see `template_error`).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read as _;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};
use serde_json::Value as Json;

use injector::agent_config::DEFAULT_MAX_FILE_BYTES;

use super::{Lookups, Request};
use crate::env::Env;
use crate::vault;

/// What a placeholder looks like inside strings: no letters, so no filter changes it, and no
/// Vault path or parameter ever contains it.
const PLACEHOLDER_TEXT: &str = "\u{0}\u{1}\u{0}";

/// Registers everything on the environment.
pub(super) fn register(
    jinja: &mut Environment<'static>,
    lookups: Arc<Mutex<Lookups>>,
    env: Arc<dyn Env>,
) {
    let files = lookups.clone();
    jinja.add_function(
        "secret",
        move |path: String, params: Kwargs| -> Result<Value, Error> {
            secret(&lookups, &path, &params)
        },
    );
    jinja.add_function("file", move |path: String| file(&files, &path));
    jinja.add_function("env", move |name: String, default: Option<String>| {
        match (env.var(&name), default) {
            (Some(value), _) => Ok(value),
            (None, Some(default)) => Ok(default),
            (None, None) => Err(Error::new(
                ErrorKind::InvalidOperation,
                "env(): the environment variable is not set; set it or give env() a default, as in env('NAME', 'value')",
            )),
        }
    });
    // `int` and `float` are common on secret values (ports, limits); on a placeholder the
    // built-ins fail, which would end the round's render before it records later requests.
    jinja.add_filter(
        "int",
        |state: &State<'_, '_>,
         value: &Value,
         default: Option<Value>,
         base: Option<u32>,
         kwargs: Kwargs| {
            if is_placeholder(value) {
                return Ok(value.clone());
            }
            minijinja::filters::int(state, value, default, base, kwargs)
        },
    );
    jinja.add_filter(
        "float",
        |state: &State<'_, '_>, value: &Value, default: Option<Value>, kwargs: Kwargs| {
            if is_placeholder(value) {
                return Ok(value.clone());
            }
            minijinja::filters::float(state, value, default, kwargs)
        },
    );
    jinja.add_filter("toyaml", toyaml);
    jinja.add_filter("fromjson", fromjson);
    jinja.add_filter("b64encode", b64encode);
    jinja.add_filter("b64decode", b64decode);
}

/// `secret(path)` reads, `secret(path, key=value, ...)` writes; both return the response's `data`.
fn secret(lookups: &Mutex<Lookups>, path: &str, params: &Kwargs) -> Result<Value, Error> {
    let mut lookups = lookups.lock().unwrap_or_else(|p| p.into_inner());
    let mut written = BTreeMap::new();
    let mut depends_on_placeholder = path.contains(PLACEHOLDER_TEXT);
    for key in params.args() {
        let value: Value = params.get(key)?;
        depends_on_placeholder |= contains_placeholder(&value);
        let json = serde_json::to_value(&value).map_err(|_| {
            Error::new(
                ErrorKind::InvalidOperation,
                "secret(): a parameter cannot be sent to Vault (it is not a string, number, boolean, list or map)",
            )
        })?;
        written.insert(key.to_owned(), json);
    }
    if depends_on_placeholder {
        // Built from a secret not fetched yet: its real path is known only next round.
        lookups.placeholders += 1;
        return Ok(Value::from_object(Placeholder));
    }
    if path.trim_matches('/').is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "secret() needs a Vault path, as in secret('secret/data/app/db')",
        ));
    }
    let request = if written.is_empty() {
        Request::read(path)
    } else {
        Request::write(path, &written)
    };
    lookups.touched.insert(request.clone());
    match lookups.fetched.get(&request) {
        Some(Ok(response)) if response.secret().data.is_null() => Err(Error::new(
            ErrorKind::InvalidOperation,
            "secret(): vault returned no data",
        )),
        Some(Ok(response)) => Ok(response.jinja().clone()),
        Some(Err(failure)) => Err(
            Error::new(ErrorKind::InvalidOperation, "vault request failed")
                .with_source(VaultFailure(failure.clone())),
        ),
        None => {
            // Before the template's first placeholder the request is certain; after it, only
            // a request without side effects is fetched ahead (see the module's doc).
            if lookups.placeholders == 0 || request.is_side_effect_free() {
                lookups.missing.insert(request);
            }
            lookups.placeholders += 1;
            Ok(Value::from_object(Placeholder))
        }
    }
}

/// Whether a value is, or holds anywhere inside, a placeholder or text made from one.
fn contains_placeholder(value: &Value) -> bool {
    if is_placeholder(value) {
        return true;
    }
    if let Some(text) = value.as_str() {
        return text.contains(PLACEHOLDER_TEXT);
    }
    let Ok(items) = value.try_iter() else {
        return false;
    };
    match value.kind() {
        ValueKind::Map => items.into_iter().any(|key| {
            contains_placeholder(&key)
                || value.get_item(&key).is_ok_and(|v| contains_placeholder(&v))
        }),
        ValueKind::Seq | ValueKind::Iterable => {
            items.into_iter().any(|item| contains_placeholder(&item))
        }
        _ => false,
    }
}

/// `file(path)`: a file's text, for paths under the config's `watch` list; the template is
/// rendered again when the file changes.
fn file(lookups: &Mutex<Lookups>, path: &str) -> Result<Value, Error> {
    let mut lookups = lookups.lock().unwrap_or_else(|p| p.into_inner());
    read_watched(&mut lookups, path)
        .map(Value::from)
        .map_err(|message| Error::new(ErrorKind::InvalidOperation, format!("file(): {message}")))
}

/// A file's text, for paths under the config's `watch` list (both languages' `file`); the file
/// becomes a dependency of the template being rendered. The error quotes no part of the path.
pub(super) fn read_watched(lookups: &mut Lookups, path: &str) -> Result<String, String> {
    let wanted = std::path::Path::new(path);
    let watched: Vec<String> = lookups
        .readable
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let watched = watched.join(", ");
    if wanted
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(
            "a path with `..` may leave the watched directories; give it without".to_owned(),
        );
    }
    if !lookups
        .readable
        .iter()
        .any(|allowed| wanted.starts_with(allowed))
    {
        return Err(format!(
            "only files under the config's watch list may be read (now: [{watched}]); add the path to watch"
        ));
    }
    // A dependency even when it cannot be read yet: its arrival re-renders the template.
    lookups.files.insert(wanted.to_owned());
    // hardening #11: a link planted in a watched directory could point at the agent's own
    // token. What is read must be under a listed path once every link is resolved; a
    // ConfigMap volume's links (`key -> ..data/key`, `..data -> ..2024_...`) stay inside.
    let cannot_read = |e: std::io::Error| format!("cannot read it: {e}");
    let allowed: Vec<PathBuf> = lookups
        .readable
        .iter()
        .filter_map(|allowed| std::fs::canonicalize(allowed).ok())
        .collect();
    let outside = || {
        format!(
            "refused: the path goes through a link to a file outside the watched directories [{watched}]; only links that stay inside them are followed"
        )
    };
    let real = std::fs::canonicalize(wanted).map_err(cannot_read)?;
    if !allowed.iter().any(|a| real.starts_with(a)) {
        return Err(outside());
    }
    // The resolved path, not following a last link (one swapped in since), and not blocking
    // on a FIFO, which would hold the render up for ever.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&real)
        .map_err(cannot_read)?;
    // A directory swapped for a link since canonicalize: what was opened is what counts.
    if let Ok(opened) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        && !allowed.iter().any(|a| opened.starts_with(a))
    {
        return Err(outside());
    }
    if !file.metadata().map_err(cannot_read)?.is_file() {
        return Err("refused: not a regular file".to_owned());
    }
    let limit = lookups.file_limit.unwrap_or(DEFAULT_MAX_FILE_BYTES);
    let mut text = String::new();
    file.take(limit.saturating_add(1))
        .read_to_string(&mut text)
        .map_err(cannot_read)?;
    if text.len() as u64 > limit {
        return Err(format!(
            "refused: larger than {limit} bytes, the limit of one file (limits.file_bytes)"
        ));
    }
    Ok(text)
}

/// The Vault failure carried by a template error, if any.
pub(super) fn vault_failure(e: &Error) -> Option<Arc<vault::Error>> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(VaultFailure(failure)) = s.downcast_ref::<VaultFailure>() {
            return Some(failure.clone());
        }
        source = s.source();
    }
    None
}

/// Carries a Vault failure through minijinja to the template error.
#[derive(Debug)]
struct VaultFailure(Arc<vault::Error>);

impl fmt::Display for VaultFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for VaultFailure {}

/// Stands for a secret not fetched yet. Whatever a template does with it yields another
/// placeholder or nothing, so the round runs to the end and records every request it can.
#[derive(Debug)]
struct Placeholder;

impl Object for Placeholder {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, _key: &Value) -> Option<Value> {
        Some(Value::from_object(Placeholder))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Empty
    }

    fn is_true(self: &Arc<Self>) -> bool {
        false
    }

    fn call(self: &Arc<Self>, _state: &mut State<'_, '_>, _args: &[Value]) -> Result<Value, Error> {
        Ok(Value::from_object(Placeholder))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        _method: &str,
        _args: &[Value],
    ) -> Result<Value, Error> {
        Ok(Value::from_object(Placeholder))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PLACEHOLDER_TEXT)
    }
}

fn is_placeholder(value: &Value) -> bool {
    value.downcast_object_ref::<Placeholder>().is_some()
}

fn toyaml(value: Value) -> Result<Value, Error> {
    if is_placeholder(&value) {
        return Ok(value);
    }
    let json: Json = serde_json::to_value(&value).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            "toyaml: the value cannot be written as YAML",
        )
    })?;
    serde_saphyr::to_string(&json)
        .map(Value::from)
        .map_err(|_| {
            Error::new(
                ErrorKind::InvalidOperation,
                "toyaml: the value cannot be written as YAML",
            )
        })
}

/// Parses JSON text (a file a ConfigMap holds, a secret value holding JSON). The message never
/// quotes the text: it may be a secret.
fn fromjson(value: Value) -> Result<Value, Error> {
    if is_placeholder(&value) {
        return Ok(value);
    }
    let text = value.as_str().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            "fromjson: expects a string of JSON text",
        )
    })?;
    serde_json::from_str::<Json>(text)
        .map(|json| Value::from(minijinja::value::Serde(&json)))
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "fromjson: not valid JSON (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })
}

fn b64encode(value: Value) -> Result<Value, Error> {
    if is_placeholder(&value) {
        return Ok(value);
    }
    let text = value.as_str().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("b64encode needs a string, not {}", value.kind()),
        )
    })?;
    Ok(Value::from(BASE64.encode(text)))
}

fn b64decode(value: Value) -> Result<Value, Error> {
    if is_placeholder(&value) {
        return Ok(value);
    }
    let text = value.as_str().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("b64decode needs a string, not {}", value.kind()),
        )
    })?;
    // The message never includes the input: it is usually a secret.
    let bytes = BASE64.decode(text.trim()).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            "b64decode: the input is not valid base64",
        )
    })?;
    String::from_utf8(bytes).map(Value::from).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            "b64decode: the decoded bytes are not UTF-8 text",
        )
    })
}
