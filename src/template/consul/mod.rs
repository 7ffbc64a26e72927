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
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

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

/// Every consul-template template of an engine, compiled into one Go template set that shares
/// one function map: each template's top level and `{{define}}`s live under names of their own
/// (`prefix(i)`), so that two templates may define the same name.
pub(crate) struct Set {
    /// The templates as prepared, by the engine's output index (`None` for other outputs).
    outputs: Vec<Option<Output>>,
    context: Context,
    /// Missing keys are errors.
    strict: Arc<Template>,
    /// Missing keys render `<no value>`: built the first time a template that allows them
    /// meets one (most renders never do, and building a set copies the function map).
    lenient: OnceLock<Arc<Template>>,
    limits: super::Limits,
}

/// One template of a [`Set`].
#[derive(Clone)]
struct Output {
    prepared: Prepared,
    text: Arc<str>,
    options: Options,
}

impl fmt::Debug for Set {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Set")
            .field("templates", &self.outputs.iter().flatten().count())
            .finish_non_exhaustive()
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

/// The prefix of output `i`'s names (its definitions and its top level) in the set.
fn prefix(i: usize) -> String {
    format!("\u{0}{i}\u{0}")
}

/// Checks a template, naming it in the error.
fn prepare(name: &str, text: &str, options: &Options) -> Result<Prepared, Error> {
    checks::prepare(text, &options.left_delimiter, &options.right_delimiter).map_err(|p| {
        Error::Syntax {
            template: name.to_owned(),
            line: (p.line > 0).then_some(p.line),
            column: (p.column > 0).then_some(p.column),
            message: p.message,
        }
    })
}

impl Set {
    /// Checks and compiles the consul-template templates among `sources` (the engine's outputs,
    /// in order); every error is reported. `lookups` is where their functions find fetched data.
    pub(crate) fn new(
        sources: &[(String, super::Source)],
        limits: super::Limits,
        lookups: &Arc<Mutex<Lookups>>,
        env: &Arc<dyn Env>,
    ) -> Result<Set, Vec<Error>> {
        let mut errors = Vec::new();
        let mut outputs = Vec::with_capacity(sources.len());
        for (i, (name, source)) in sources.iter().enumerate() {
            let super::Source::ConsulTemplate { text, options } = source else {
                outputs.push(None);
                continue;
            };
            match prepare(name, text, options) {
                Ok(prepared) => outputs.push(Some(Output {
                    prepared: prepared.with_prefix(&prefix(i)),
                    text: Arc::from(text.as_str()),
                    options: options.clone(),
                })),
                Err(e) => {
                    errors.push(e);
                    outputs.push(None);
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let context = Context {
            running: Arc::new(Mutex::new(None)),
            lookups: lookups.clone(),
            env: env.clone(),
            limit: limits.file_bytes,
            costs: Arc::default(),
        };
        Ok(Set::build(outputs, context, limits))
    }

    /// The same set under other limits.
    pub(crate) fn with_limits(&self, limits: super::Limits) -> Set {
        let context = Context {
            limit: limits.file_bytes,
            ..self.context.clone()
        };
        Set::build(self.outputs.clone(), context, limits)
    }

    /// The same set with output `i`'s template replaced by `text`; an error leaves it as it was.
    pub(crate) fn with_template(&self, i: usize, name: &str, text: &str) -> Result<Set, Error> {
        let mut outputs = self.outputs.clone();
        if let Some(Some(output)) = outputs.get_mut(i) {
            output.prepared = prepare(name, text, &output.options)?.with_prefix(&prefix(i));
            output.text = Arc::from(text);
        }
        Ok(Set::build(outputs, self.context.clone(), self.limits))
    }

    fn build(outputs: Vec<Option<Output>>, context: Context, limits: super::Limits) -> Set {
        Set {
            strict: Set::template(&outputs, &context, limits, MissingKey::Error),
            lenient: OnceLock::new(),
            outputs,
            context,
            limits,
        }
    }

    /// One Go template set holding every template, with one function map.
    fn template(
        outputs: &[Option<Output>],
        context: &Context,
        limits: super::Limits,
        missing: MissingKey,
    ) -> Arc<Template> {
        // Iterations times the largest body they run stay within the steps a render may take.
        let largest = outputs
            .iter()
            .flatten()
            .map(|o| o.prepared.largest_range_body)
            .max()
            .unwrap_or(0);
        let iterations = (limits.render_steps / largest.max(1)).max(1);
        let mut template = Template::new("")
            .missing_key(missing)
            .max_range_iters(iterations)
            .funcs(functions::all(context));
        for (i, output) in outputs.iter().enumerate() {
            let Some(output) = output else { continue };
            for (name, body) in &output.prepared.defines {
                template = template.add_parse_tree(name, body.clone());
            }
            let top = format!("{}{TOP_LEVEL}", prefix(i));
            template = template.add_parse_tree(&top, output.prepared.top.clone());
        }
        Arc::new(template)
    }

    /// The set in which missing keys render `<no value>`.
    fn lenient(&self) -> &Arc<Template> {
        self.lenient.get_or_init(|| {
            Set::template(
                &self.outputs,
                &self.context,
                self.limits,
                MissingKey::ZeroValue,
            )
        })
    }

    /// Renders output `i` once into memory, within the set's limits.
    pub(crate) fn render(&self, i: usize) -> Result<Rendered, Failure> {
        let Some(Some(output)) = self.outputs.get(i) else {
            return Err(Failure::Failed(TemplateError::Exec(
                "no such consul-template template".into(),
            )));
        };
        match self.run(i, output, &self.strict) {
            Err(Failure::Failed(TemplateError::MissingKey { key }))
                if !output.options.error_on_missing_key =>
            {
                self.run(i, output, self.lenient()).map(|text| Rendered {
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

    fn run(&self, i: usize, output: &Output, template: &Arc<Template>) -> Result<String, Failure> {
        let running = Running {
            prefix: prefix(i),
            text: output.text.clone(),
            destination: output.options.destination.clone(),
            template: template.clone(),
        };
        *self
            .context
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(running);
        self.context.costs.reset();
        let top = format!("{}{TOP_LEVEL}", prefix(i));
        let result = run(template, &top, self.limits.file_bytes);
        *self
            .context
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        result
    }
}

fn run(template: &Template, top: &str, limit: u64) -> Result<String, Failure> {
    let mut out = super::LimitedWriter {
        buffer: Vec::new(),
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
        exceeded: false,
    };
    // consul-template executes with nil data: `{{ . }}` at the top prints `<no value>`.
    let result = template.execute_template(&mut out, top, &Value::Nil);
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

/// The template being rendered, as its functions see it.
#[derive(Clone)]
pub(crate) struct Running {
    /// The prefix of its names in the set (for `executeTemplate`).
    prefix: String,
    /// Its own text: which paths it spells.
    text: Arc<str>,
    /// The file it renders into (`pkiCert`, `writeToFile`).
    destination: Option<PathBuf>,
    /// The Go template set it runs in (strict or lenient), for `executeTemplate`.
    template: Arc<Template>,
}

/// What the functions of every template share: the engine's lookups, the environment, the
/// bound on what they build, and which template is running (renders are one at a time).
#[derive(Clone)]
pub(crate) struct Context {
    running: Arc<Mutex<Option<Running>>>,
    lookups: Arc<Mutex<Lookups>>,
    env: Arc<dyn Env>,
    /// The longest text a function may build (`limits.file_bytes`).
    limit: u64,
    /// What the running attempt has spent on Sprig's slow functions.
    costs: Arc<helpers::Costs>,
}

impl Context {
    fn lock(&self) -> MutexGuard<'_, Lookups> {
        self.lookups.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn running(&self) -> Option<Running> {
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
                let spelled = || {
                    self.running()
                        .is_some_and(|r| r.text.contains(request.path.as_str()))
                };
                if lookups.placeholders == 0 || (request.is_side_effect_free() && spelled()) {
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
