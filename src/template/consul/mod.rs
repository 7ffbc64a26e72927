//! consul-template templates: Go's text/template (the `gotmpl` crate) with consul-template's
//! functions, rendered through the same request engine as Jinja templates.
//!
//! consul-template renders a template in passes: a function whose data is not fetched yet
//! records what it needs and returns nil (so `{{ with secret "..." }}` skips its body), and the
//! template is rendered again once the data is there. hydrant's engine does the same, with its
//! own bound on what is fetched ahead: once an attempt has met missing data, a request is
//! queued only when it cannot have side effects and the template spells its path (see
//! `template::Request::is_side_effect_free`); anything else waits for an attempt that reaches
//! it with real data.
//!
//! A template comes from whoever may create a pod, so it is checked before it runs
//! (`injector::consul_template`: known functions, no recursion, a bounded size once expanded)
//! and every attempt is bounded: the `{{range}}` iterations it may make (so that iterations
//! times the largest body stay within `limits.render_steps`), the size of its output, and the
//! size of what functions build.

mod functions;
mod helpers;
mod json;
pub(crate) mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use gotmpl::{MissingKey, Template, TemplateError, Value};
use injector::consul_template::{self as checks, Prepared, TOP_LEVEL};
use serde_json::Value as Json;

use super::{Error, Lookups, Request};
use crate::env::Env;

/// How a consul-template template is run (the agent config's `templates[]` fields).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The left delimiter (`{{` when empty).
    pub left_delimiter: String,
    /// The right delimiter (`}}` when empty).
    pub right_delimiter: String,
    /// Whether a missing map key fails the render; when not, it renders `<no value>` (as Vault
    /// Agent does) and the agent warns.
    pub error_on_missing_key: bool,
    /// The file the template renders into: `pkiCert` takes a good certificate from it.
    pub destination: Option<PathBuf>,
}

/// A template ready to render.
pub(crate) struct Compiled {
    /// Missing keys are errors.
    strict: Arc<Template>,
    /// Missing keys render `<no value>` (absent when `error_on_missing_key` is set).
    lenient: Option<Arc<Template>>,
    /// Which of the two is running, for `executeTemplate`.
    running: Arc<Mutex<Option<Arc<Template>>>>,
    /// The largest output.
    limit: u64,
}

impl fmt::Debug for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compiled").finish_non_exhaustive()
    }
}

/// What an attempt produced.
pub(crate) struct Rendered {
    /// The output: text, and the bytes of binary values (see `values::bytes`).
    pub(crate) bytes: Vec<u8>,
    /// A key the template looked up that did not exist (it rendered `<no value>`).
    pub(crate) missing_key: Option<String>,
}

/// Why an attempt failed.
pub(crate) enum Failure {
    /// The output passed the limit.
    TooLarge,
    /// It ran out of `{{range}}` iterations.
    OutOfSteps,
    /// Anything else; the message quotes no value computed while rendering.
    Failed(TemplateError),
}

/// Checks and compiles `text`; `lookups` is where its functions find fetched data.
pub(crate) fn compile(
    name: &str,
    text: &str,
    options: &Options,
    limits: super::Limits,
    lookups: &Arc<Mutex<Lookups>>,
    env: &Arc<dyn Env>,
) -> Result<Compiled, Error> {
    let prepared = checks::prepare(text, &options.left_delimiter, &options.right_delimiter)
        .map_err(|p| Error::Syntax {
            template: name.to_owned(),
            line: (p.line > 0).then_some(p.line),
            column: (p.column > 0).then_some(p.column),
            message: p.message,
        })?;
    let context = Context {
        running: Arc::new(Mutex::new(None)),
        lookups: lookups.clone(),
        text: Arc::from(text),
        destination: options.destination.clone(),
        env: env.clone(),
        limit: limits.file_bytes,
    };
    // Iterations times the largest body they run stay within the steps a render may take.
    let iterations = (limits.render_steps / prepared.largest_range_body.max(1)).max(1);
    let build = |missing: MissingKey| Arc::new(build(&prepared, &context, missing, iterations));
    Ok(Compiled {
        strict: build(MissingKey::Error),
        lenient: (!options.error_on_missing_key).then(|| build(MissingKey::ZeroValue)),
        limit: limits.file_bytes,
        running: context.running.clone(),
    })
}

fn build(prepared: &Prepared, context: &Context, missing: MissingKey, iterations: u64) -> Template {
    let mut template = Template::new("")
        .missing_key(missing)
        .max_range_iters(iterations)
        .funcs(functions::all(context));
    for (name, body) in &prepared.defines {
        template = template.add_parse_tree(name, body.clone());
    }
    template.add_parse_tree(TOP_LEVEL, prepared.top.clone())
}

impl Compiled {
    /// Renders once into memory, within the limits it was compiled with.
    pub(crate) fn render(&self) -> Result<Rendered, Failure> {
        match self.run(&self.strict) {
            Err(Failure::Failed(TemplateError::MissingKey { key })) if self.lenient.is_some() => {
                let lenient = self.lenient.as_ref().unwrap_or(&self.strict);
                self.run(lenient).map(|text| Rendered {
                    bytes: values::unmark_bytes(text),
                    missing_key: Some(key),
                })
            }
            other => other.map(|text| Rendered {
                bytes: values::unmark_bytes(text),
                missing_key: None,
            }),
        }
    }

    fn run(&self, template: &Arc<Template>) -> Result<String, Failure> {
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = Some(template.clone());
        let result = run(template, self.limit);
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = None;
        result
    }
}

fn run(template: &Template, limit: u64) -> Result<String, Failure> {
    let mut out = super::LimitedWriter {
        buffer: Vec::new(),
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
        exceeded: false,
    };
    // consul-template executes with nil data: `{{ . }}` at the top prints `<no value>`.
    let result = template.execute_template(&mut out, TOP_LEVEL, &Value::Nil);
    if out.exceeded {
        return Err(Failure::TooLarge);
    }
    match result {
        Ok(()) => String::from_utf8(out.buffer)
            .map_err(|_| Failure::Failed(TemplateError::Exec("the output is not UTF-8".into()))),
        Err(TemplateError::RangeIterLimit) => Err(Failure::OutOfSteps),
        Err(e) => Err(Failure::Failed(e)),
    }
}

/// What the functions of one template share: the engine's lookups, the template's own text
/// (which paths it spells), its destination and the environment.
#[derive(Clone)]
pub(crate) struct Context {
    /// The template running, for `executeTemplate` (set by `Compiled::run`).
    running: Arc<Mutex<Option<Arc<Template>>>>,
    lookups: Arc<Mutex<Lookups>>,
    text: Arc<str>,
    destination: Option<PathBuf>,
    env: Arc<dyn Env>,
    /// The longest text a function may build (`limits.file_bytes`).
    limit: u64,
}

impl Context {
    fn lock(&self) -> MutexGuard<'_, Lookups> {
        self.lookups.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn running(&self) -> Option<Arc<Template>> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The value of a fetched request, or nil and a note of what to fetch.
    fn lookup(
        &self,
        request: Request,
        make: fn(&crate::vault::Secret) -> Value,
        missing: Value,
    ) -> gotmpl::Result<Value> {
        let mut lookups = self.lock();
        lookups.touched.insert(request.clone());
        match lookups.fetched.get(&request) {
            Some(Ok(response)) => Ok(response.consul(make).clone()),
            Some(Err(failure)) => {
                lookups.failure = Some(failure.clone());
                Err(TemplateError::Exec("vault request failed".into()))
            }
            None => {
                // Before the attempt's first missing data the request is certain; after it,
                // only a request without side effects whose path the template spells.
                if lookups.placeholders == 0
                    || (request.is_side_effect_free() && self.text.contains(&request.path))
                {
                    lookups.missing.insert(request);
                }
                lookups.placeholders += 1;
                Ok(missing)
            }
        }
    }
}

/// A file `writeToFile` asked for, written once the render is complete.
pub(crate) struct PendingWrite {
    pub(crate) path: PathBuf,
    /// The directory it must stay under once links are resolved.
    pub(crate) allowed: PathBuf,
    /// User and group names or ids; empty for the agent's own.
    pub(crate) owner: (String, String),
    pub(crate) mode: u32,
    pub(crate) append: bool,
    pub(crate) content: Vec<u8>,
}

impl fmt::Debug for PendingWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingWrite")
            .field("path", &self.path)
            .field("content", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl PendingWrite {
    /// Writes the file: atomically, or appended to; then its owner and mode. The directory is
    /// made if missing; a link out of the allowed directory is refused.
    pub(crate) fn apply(&self) -> Result<(), String> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let dir = self.path.parent().unwrap_or(&self.allowed);
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot make its directory: {e}"))?;
        let allowed = std::fs::canonicalize(&self.allowed)
            .map_err(|e| format!("cannot resolve {}: {e}", self.allowed.display()))?;
        let real_dir =
            std::fs::canonicalize(dir).map_err(|e| format!("cannot resolve its directory: {e}"))?;
        if !real_dir.starts_with(&allowed) {
            return Err(format!(
                "refused: its directory is a link out of {}",
                self.allowed.display()
            ));
        }
        let Some(name) = self.path.file_name() else {
            return Err("the path names no file".to_owned());
        };
        let path = real_dir.join(name);
        if self.append {
            use std::io::Write as _;
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(self.mode)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|e| format!("cannot open it: {e}"))?;
            file.write_all(&self.content)
                .map_err(|e| format!("cannot write it: {e}"))?;
        } else {
            crate::files::write_atomic(&path, &self.content, self.mode)
                .map_err(|e| format!("cannot write it: {e}"))?;
        }
        let (user, group) = (&self.owner.0, &self.owner.1);
        if !user.is_empty() || !group.is_empty() {
            let uid = id_of(user, "/etc/passwd")?;
            let gid = id_of(group, "/etc/group")?;
            std::os::unix::fs::lchown(&path, uid, gid)
                .map_err(|e| format!("cannot change its owner: {e}"))?;
        }
        std::fs::set_permissions(
            &path,
            std::os::unix::fs::PermissionsExt::from_mode(self.mode),
        )
        .map_err(|e| format!("cannot set its mode: {e}"))
    }
}

/// A user's or group's id from its name (looked up in `file`) or its number; `None` for empty.
fn id_of(name: &str, file: &str) -> Result<Option<u32>, String> {
    if name.is_empty() {
        return Ok(None);
    }
    if let Ok(id) = name.parse() {
        return Ok(Some(id));
    }
    let table = std::fs::read_to_string(file).unwrap_or_default();
    table
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&name))
        .and_then(|fields| fields.get(2)?.parse().ok())
        .map(Some)
        .ok_or_else(|| format!("no user or group of that name in {file}; give its number"))
}

/// The arguments after a path: `key=value` strings (empty ones skipped), as consul-template
/// parses them for `secret` and `pkiCert`.
fn key_values(function: &str, args: &[Value]) -> gotmpl::Result<BTreeMap<String, Json>> {
    let mut params = BTreeMap::new();
    for arg in args {
        let text = string_arg(function, arg)?;
        if text.is_empty() {
            continue;
        }
        let Some((key, value)) = text.split_once('=') else {
            return Err(TemplateError::Exec(format!(
                "{function}: an argument after the path is not a key=value pair"
            )));
        };
        params.insert(key.trim().to_owned(), Json::String(value.trim().to_owned()));
    }
    Ok(params)
}

fn string_arg<'a>(function: &str, value: &'a Value) -> gotmpl::Result<&'a str> {
    value.as_str().ok_or_else(|| {
        TemplateError::Exec(format!(
            "{function}: wrong type for value; expected string; got {}",
            value.type_name()
        ))
    })
}

/// Turns a gotmpl error into a message that quotes no value: gotmpl's own messages sometimes
/// print the value that failed, which may be a secret.
pub(crate) fn message(e: &TemplateError) -> String {
    const QUOTING: &[(&str, &str)] = &[
        (
            "can't use ",
            "a value that cannot be iterated was given to range (the value is not shown)",
        ),
        (
            "printf: first arg must be string",
            "printf: the first argument must be a string",
        ),
        (
            "len: cannot take length of",
            "len: this value has no length (the value is not shown)",
        ),
        ("slice: index out of range", "slice: index out of range"),
        ("slice: ", "slice: invalid indexes"),
    ];
    let text = match e {
        TemplateError::Exec(message) => message.clone(),
        other => other.to_string(),
    };
    QUOTING
        .iter()
        .find(|(prefix, _)| text.starts_with(prefix))
        .map_or(text.clone(), |(_, replacement)| (*replacement).to_owned())
}

#[cfg(test)]
mod tests;
