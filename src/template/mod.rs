//! Rendering: minijinja templates and `secrets` shorthands into file contents, fetching each
//! distinct Vault request once per render, concurrently.
//!
//! minijinja calls functions synchronously, so an output is rendered in attempts, as
//! consul-template does: `secret(...)` answers from what is fetched already and records what is
//! not, returning a placeholder. What was recorded is fetched (each distinct request once, a bound
//! on requests in flight), and the output is attempted again when what it waits for comes back.
//! An output whose attempt met no placeholder is final and handed over at once.
//!
//! Until a template has met its first placeholder, it runs exactly as it will with real data, so
//! the requests it makes are certain. After that it may take branches the real data would not
//! take, so a request made then is fetched ahead only when it cannot have side effects: a KV v2
//! read (`<mount>/data/...`). Anything else (dynamic credentials, certificates, any write) waits
//! for the attempt in which the template reaches it with real data. Most outputs take two
//! attempts.
//!
//! Templates come from whoever may create a pod, so every attempt is bounded: a number of steps
//! (minijinja's fuel) and a size of output, and it runs on a blocking thread so that the
//! sidecar's endpoints, signals and renewals go on while it does. One bound is missing:
//! minijinja 3.0 offers no hook on `~` and no limit on the size of a string it builds, so a
//! template that doubles a string in a loop can take memory the output limit never sees (`*`
//! on a string is capped by minijinja itself at 100 MB). Only the output is bounded here; the
//! container's memory limit is the bound on the rest.

mod consul;
pub(crate) mod formats;
pub(crate) mod functions;
pub(crate) mod pki;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Poll;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt as _, StreamExt as _};
use injector::agent_config::{
    DEFAULT_MAX_FILE_BYTES, DEFAULT_RENDER_STEPS, SecretFormat, TemplateConfig, TemplateSyntax,
};
use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde_json::{Map, Value as Json};

use crate::env::Env;
use crate::vault;

pub use self::consul::Options as ConsulOptions;
pub use self::formats::format_secret;

/// Attempts at one output after which a render gives up. An output is attempted again only when
/// a request it waits for comes back, and every unfinished attempt asks for at least one new
/// request, so only a template that keeps asking for new secrets, one after another, gets here.
const MAX_ROUNDS: usize = 256;

/// What one attempt at one output may cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest output, in bytes (`limits.file_bytes`).
    pub file_bytes: u64,
    /// The steps one attempt at a template may take (`limits.render_steps`).
    pub render_steps: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            file_bytes: DEFAULT_MAX_FILE_BYTES,
            render_steps: DEFAULT_RENDER_STEPS,
        }
    }
}

/// One Vault request a template made: a read, a write with parameters, a list, or a
/// certificate. Its `Debug` hides the parameters: they can be secrets.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Request {
    /// The Vault path, without surrounding slashes.
    pub path: String,
    kind: Kind,
    /// For a write or a certificate, the parameters as canonical JSON (sorted keys).
    params: Option<String>,
    /// A read's query string (`version=2`), as the template gave it.
    query: Option<String>,
    /// A certificate's destination file, whose certificate is used while it is good.
    destination: Option<PathBuf>,
}

/// What a [`Request`] does.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `GET` the path as it is.
    Read,
    /// consul-template's read of a path that does not say `data/`: if the path is on a KV v2
    /// mount, `data/` is put after the mount (`secret/app` reads `secret/data/app`).
    ReadKv,
    /// `POST` the parameters.
    Write,
    /// `LIST` the keys under the path (on a KV v2 mount, under `metadata/`).
    List,
    /// consul-template's `pkiCert`: the certificate in the destination file while it is good,
    /// otherwise a new one issued by writing the parameters.
    Certificate,
}

impl Request {
    fn new(path: &str, kind: Kind) -> Request {
        Request {
            path: path.trim_matches('/').to_owned(),
            kind,
            params: None,
            query: None,
            destination: None,
        }
    }

    /// A read of `path`.
    pub fn read(path: &str) -> Request {
        Request::new(path, Kind::Read)
    }

    /// A write of `params` to `path`.
    pub fn write(path: &str, params: &BTreeMap<String, Json>) -> Request {
        Request {
            params: Some(serde_json::to_string(params).unwrap_or_default()),
            ..Request::new(path, Kind::Write)
        }
    }

    /// consul-template's `secret` read: `path` may carry a query (`?version=2`), and a path
    /// whose second segment is not `data`, `metadata` or `subkeys` may be on a KV v2 mount,
    /// which Vault is asked when the request is sent.
    pub fn read_consul(path: &str) -> Request {
        let (path, query) = match path.trim().split_once('?') {
            Some((path, query)) => (path, Some(query.to_owned()).filter(|q| !q.is_empty())),
            None => (path.trim(), None),
        };
        let path = path.trim_matches('/');
        let kind = match path.split('/').nth(1) {
            Some("data" | "metadata" | "subkeys") => Kind::Read,
            _ => Kind::ReadKv,
        };
        Request {
            query,
            ..Request::new(path, kind)
        }
    }

    /// consul-template's `secrets`: the keys under `path`.
    pub fn list(path: &str) -> Request {
        Request::new(path, Kind::List)
    }

    /// consul-template's `pkiCert`: a certificate from `path` (`pki/issue/<role>`) with
    /// `params`, kept in `destination`.
    pub fn certificate(
        path: &str,
        params: &BTreeMap<String, Json>,
        destination: Option<&Path>,
    ) -> Request {
        Request {
            params: Some(serde_json::to_string(params).unwrap_or_default()),
            destination: destination.map(Path::to_owned),
            ..Request::new(path, Kind::Certificate)
        }
    }

    /// The request from a path and, for a write, its parameters.
    pub fn from_parts(path: &str, params: Option<&Map<String, Json>>) -> Request {
        match params {
            None => Request::read(path),
            Some(params) => {
                let params: BTreeMap<String, Json> =
                    params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                Request::write(path, &params)
            }
        }
    }

    /// A request as the hand-over records it: its path, kind, parameters, query and
    /// destination. A record without a kind (from before kinds) is a read, or a write when it
    /// has parameters.
    pub fn restore(
        path: &str,
        kind: Option<Kind>,
        params: Option<&Map<String, Json>>,
        query: Option<&str>,
        destination: Option<&Path>,
    ) -> Request {
        let mut request = Request::from_parts(path, params);
        if let Some(kind) = kind {
            request.kind = kind;
        }
        request.query = query.map(str::to_owned);
        request.destination = destination.map(Path::to_owned);
        request
    }

    /// What the request does.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// A certificate's destination file.
    pub fn destination(&self) -> Option<&Path> {
        self.destination.as_deref()
    }

    /// A read's query string.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// Whether this request writes: sending it twice may give two different answers (a write,
    /// a certificate).
    pub fn is_write(&self) -> bool {
        matches!(self.kind, Kind::Write | Kind::Certificate)
    }

    /// The parameters of a write or a certificate.
    pub fn params(&self) -> Option<Map<String, Json>> {
        self.params
            .as_deref()
            .map(|p| serde_json::from_str(p).unwrap_or_default())
    }

    /// Whether sending this request can change nothing in Vault: a KV v2 read, or a list.
    /// Reads elsewhere may create leases (`database/creds/...`).
    pub fn is_side_effect_free(&self) -> bool {
        match self.kind {
            Kind::Read => self.path.split('/').nth(1) == Some("data"),
            Kind::List => true,
            Kind::ReadKv | Kind::Write | Kind::Certificate => false,
        }
    }

    /// Sends the request. A certificate is taken from its destination file when `reuse` is
    /// set and the file holds one that is good for a while yet (consul-template's `pkiCert`:
    /// an init container and its sidecar share one certificate); otherwise one is issued.
    pub async fn send(
        &self,
        client: &vault::Client,
        reuse: bool,
    ) -> Result<vault::Secret, vault::Error> {
        let path = self.path.as_str();
        match self.kind {
            Kind::Read => client.read_with_query(path, self.query()).await,
            Kind::ReadKv => {
                let path = match client.mount_of(path).await {
                    Ok(Some(mount)) if mount.kv_v2 => kv_v2_data_path(path, &mount.path),
                    // consul-template reads the path as it is when the lookup fails.
                    _ => path.to_owned(),
                };
                let secret = client.read_with_query(&path, self.query()).await?;
                deleted_kv_v2(&secret, &path)?;
                Ok(secret)
            }
            Kind::Write => client.write(path, &self.params().unwrap_or_default()).await,
            Kind::List => {
                let path = match path.split('/').nth(1) {
                    Some("metadata") => path.to_owned(),
                    _ => match client.mount_of(path).await {
                        Ok(Some(mount)) if mount.kv_v2 => kv_v2_list_path(path, &mount.path),
                        _ => path.to_owned(),
                    },
                };
                client.list_response(&path).await
            }
            Kind::Certificate => {
                if reuse
                    && let Some(destination) = &self.destination
                    && let Some(secret) = pki::reusable(destination)
                {
                    return Ok(secret);
                }
                client.write(path, &self.params().unwrap_or_default()).await
            }
        }
    }
}

/// The path consul-template reads for `path` on the KV v2 mount `mount` (`shimKVv2Path`).
fn kv_v2_data_path(path: &str, mount: &str) -> String {
    let mount = mount.trim_end_matches('/');
    if path == mount {
        return format!("{mount}/data");
    }
    let rest = path
        .strip_prefix(mount)
        .unwrap_or(path)
        .trim_start_matches('/');
    if ["data/", "metadata/", "subkeys/"]
        .iter()
        .any(|p| rest.starts_with(p))
    {
        return path.to_owned();
    }
    format!("{mount}/data/{rest}")
}

/// The path consul-template lists for `path` on the KV v2 mount `mount` (`shimKvV2ListPath`).
fn kv_v2_list_path(path: &str, mount: &str) -> String {
    let mount = mount.trim_end_matches('/');
    let rest = path
        .strip_prefix(mount)
        .unwrap_or(path)
        .trim_start_matches('/');
    if rest.is_empty() {
        format!("{mount}/metadata")
    } else {
        format!("{mount}/metadata/{rest}")
    }
}

/// consul-template treats a KV v2 version whose deletion time has passed as absent.
fn deleted_kv_v2(secret: &vault::Secret, path: &str) -> Result<(), vault::Error> {
    let deleted = secret
        .data
        .get("metadata")
        .and_then(|m| m.get("deletion_time"))
        .and_then(Json::as_str)
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .is_some_and(|t| t <= std::time::SystemTime::now());
    if deleted || secret.data.is_null() {
        return Err(vault::Error::NotFound {
            path: path.to_owned(),
        });
    }
    Ok(())
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Request");
        d.field("path", &self.path).field("kind", &self.kind);
        if self.params.is_some() {
            d.field("params", &"<redacted>");
        }
        if let Some(query) = &self.query {
            d.field("query", query);
        }
        d.finish()
    }
}

/// Where a render gets its secrets: Vault, or a file in CI.
pub trait Fetch {
    /// Performs one request and returns the response.
    fn fetch(&self, request: &Request)
    -> impl Future<Output = Result<vault::Secret, vault::Error>>;
}

/// A response as templates see it: fetched once, turned into each template language's values
/// the first time one asks.
pub(crate) struct Response {
    secret: vault::Secret,
    jinja: OnceLock<minijinja::Value>,
    consul: OnceLock<gotmpl::Value>,
}

impl Response {
    fn new(secret: vault::Secret) -> Arc<Response> {
        Arc::new(Response {
            secret,
            jinja: OnceLock::new(),
            consul: OnceLock::new(),
        })
    }

    /// The response.
    pub(crate) fn secret(&self) -> &vault::Secret {
        &self.secret
    }

    /// Its `data`, as minijinja sees it.
    pub(crate) fn jinja(&self) -> &minijinja::Value {
        self.jinja
            .get_or_init(|| minijinja::Value::from(minijinja::value::Serde(&self.secret.data)))
    }

    /// The value consul-template's functions return for it, made by `make` once.
    pub(crate) fn consul(
        &self,
        make: impl FnOnce(&vault::Secret) -> gotmpl::Value,
    ) -> &gotmpl::Value {
        self.consul.get_or_init(|| make(&self.secret))
    }
}

/// What to render into one file.
#[derive(Clone, Debug)]
pub enum Source {
    /// A minijinja template.
    Template(String),
    /// A consul-template template (Go's text/template with consul-template's functions).
    ConsulTemplate {
        /// The template text.
        text: String,
        /// Its delimiters, missing-key rule and destination.
        options: ConsulOptions,
    },
    /// The `secrets` shorthand: one path, one format.
    Secret {
        /// The Vault path.
        path: String,
        /// How to write its data.
        format: SecretFormat,
    },
}

impl Source {
    /// What a configured template renders from, given its text.
    pub fn of_template(template: &TemplateConfig, text: String) -> Source {
        match template.syntax {
            TemplateSyntax::Jinja => Source::Template(text),
            TemplateSyntax::ConsulTemplate => Source::ConsulTemplate {
                text,
                options: ConsulOptions {
                    left_delimiter: template.left_delimiter.clone().unwrap_or_default(),
                    right_delimiter: template.right_delimiter.clone().unwrap_or_default(),
                    error_on_missing_key: template.error_on_missing_key.unwrap_or(false),
                    destination: Some(template.destination.clone()),
                },
            },
        }
    }
}

/// Rendered file contents. Holds secrets: its `Debug` shows only the length.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendered(Vec<u8>);

impl Rendered {
    /// The bytes to write.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rendered(<{} bytes redacted>)", self.0.len())
    }
}

/// Why one output could not be rendered. Never holds a secret value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The template does not parse.
    #[error("template {template}{at}: syntax error: {message}", at = at(*.line, *.column))]
    Syntax {
        /// Template name.
        template: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// What minijinja says.
        message: String,
    },
    /// Strict rendering met a value that does not exist.
    #[error("template {template}{at}: key missing: {key} (in `{expression}`)", at = at(*.line, *.column))]
    KeyMissing {
        /// Template name.
        template: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// The missing key or variable.
        key: String,
        /// The template text of the failing expression.
        expression: String,
    },
    /// Any other failure while rendering.
    #[error("template {template}{at}: {message}", at = at(*.line, *.column))]
    Render {
        /// Template name.
        template: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// What went wrong.
        message: String,
    },
    /// A Vault request the output needs failed.
    #[error("template {template}: {error}")]
    Vault {
        /// Template name.
        template: String,
        /// The Vault failure (shared: several outputs may need the same request).
        error: Arc<vault::Error>,
    },
    /// A `secrets` shorthand cannot write its data in the format asked.
    #[error("secret {name}: {message}")]
    Format {
        /// Secret name.
        name: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A Vault request whose path the template computes failed. The path is not shown: it is
    /// made from values, which may be secrets; the expression shown is the template's own text.
    #[error(
        "template {template}{at}: vault request failed ({kind}) for a path computed while rendering (not shown: it may hold a secret), in `{expression}`",
        at = at(*.line, *.column),
        kind = .error.kind()
    )]
    VaultComputed {
        /// Template name.
        template: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// The template text of the failing call.
        expression: String,
        /// The Vault failure.
        error: Arc<vault::Error>,
    },
    /// The template took more steps than one render may.
    #[error(
        "template {template}: stopped after {steps} steps, the limit of one render (limits.render_steps); does a loop never end?"
    )]
    OutOfSteps {
        /// Template name.
        template: String,
        /// The limit.
        steps: u64,
    },
    /// The output is larger than a file may be.
    #[error(
        "template {template}: the output is larger than {limit} bytes, the limit of one file (limits.file_bytes); the file keeps what it had"
    )]
    TooLarge {
        /// Template or secret name.
        template: String,
        /// The limit.
        limit: u64,
    },
    /// The chain of secrets whose paths depend on other secrets is too long.
    #[error(
        "template {template}: gave up after {MAX_ROUNDS} rounds of secrets that depend on other secrets"
    )]
    TooManyRounds {
        /// Template name.
        template: String,
    },
}

impl Error {
    /// The Vault failure behind this error, if that is what it is.
    pub fn vault_error(&self) -> Option<&vault::Error> {
        match self {
            Error::Vault { error, .. } | Error::VaultComputed { error, .. } => Some(error),
            _ => None,
        }
    }
}

fn at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" line {line} column {column}"),
        (Some(line), None) => format!(" line {line}"),
        _ => String::new(),
    }
}

/// What the functions know and learn during one attempt at an output.
#[derive(Default)]
struct Lookups {
    /// Requests fetched, with their data or failure: for one render (`render_all`), or kept
    /// between renders by a sidecar (`render_some`).
    fetched: HashMap<Request, Result<Arc<Response>, Arc<vault::Error>>>,
    /// Requests the attempt asked for that are not fetched yet.
    missing: BTreeSet<Request>,
    /// Every request the attempt asked for, fetched or not.
    touched: BTreeSet<Request>,
    /// Every file the attempt read with `file()`.
    files: BTreeSet<PathBuf>,
    /// The paths `file()` may read: the config's `watch` list.
    readable: Vec<PathBuf>,
    /// The largest file `file()` reads (`limits.file_bytes`); `None` until limits are set.
    file_limit: Option<u64>,
    /// How many times the template being rendered got a placeholder.
    placeholders: usize,
    /// The Vault failure behind a consul-template function's error, in the attempt that met it.
    failure: Option<Arc<vault::Error>>,
    /// consul-template's `scratch`, for the template being rendered.
    scratch: BTreeMap<String, gotmpl::Value>,
    /// consul-template's `writeToFile` calls, written once the attempt is final.
    writes: Vec<consul::PendingWrite>,
    /// consul-template's `executeTemplate`: calls in this attempt, and how deep they nest now.
    executions: usize,
    execute_depth: usize,
}

/// A render under way ([`Engine::begin`]): what each output waits for, what is still to be
/// fetched, and which outputs are to be attempted (again).
#[derive(Debug)]
pub struct Render {
    /// For each output, the requests it waits for; `None` once its result is final.
    waiting: Vec<Option<BTreeSet<Request>>>,
    /// Attempts at each output.
    attempts: Vec<usize>,
    /// Every request queued or fetched in this render.
    requested: HashSet<Request>,
    /// Requests not sent yet.
    queue: VecDeque<Request>,
    /// Outputs to attempt, first or again (a request they waited for came back).
    again: VecDeque<usize>,
}

/// Sends queued requests while fewer than `max` are in flight.
fn top_up<F: Future>(
    in_flight: &mut FuturesUnordered<F>,
    queue: &mut VecDeque<Request>,
    max: usize,
    send: impl Fn(Request) -> F,
) {
    while in_flight.len() < max {
        let Some(request) = queue.pop_front() else {
            break;
        };
        in_flight.push(send(request));
    }
}

/// What an output read in its last final attempt: what a change must re-render.
#[derive(Clone, Debug, Default)]
pub struct Dependencies {
    /// Vault requests.
    pub requests: BTreeSet<Request>,
    /// Files read with `file()`.
    pub files: BTreeSet<PathBuf>,
    /// A key a consul-template template looked up that does not exist: it rendered
    /// `<no value>`, as Vault Agent renders it, and the agent warns. The key is the template's
    /// own text (a field name), never a value.
    pub missing_key: Option<String>,
}

/// What logs and errors show in place of a Vault path no template spells: a path built while
/// rendering may hold a secret.
pub const COMPUTED_PATH: &str = "<a path computed while rendering>";

/// Decides which Vault paths logs, errors and metrics may show: those a template's source (or a
/// `secrets` shorthand) spells literally. A path computed from data may hold a secret.
#[derive(Clone, Debug, Default)]
pub struct Shown {
    sources: Arc<Vec<String>>,
}

impl Shown {
    /// Whether a source spells `path`.
    pub fn is_literal(&self, path: &str) -> bool {
        !path.is_empty() && self.sources.iter().any(|source| source.contains(path))
    }

    /// `path` when a source spells it, [`COMPUTED_PATH`] when not.
    pub fn path<'a>(&self, path: &'a str) -> &'a str {
        if self.is_literal(path) {
            path
        } else {
            COMPUTED_PATH
        }
    }
}

/// Compiled templates and the functions they may call.
pub struct Engine {
    /// Shared with the thread an attempt runs on.
    env: Arc<Environment<'static>>,
    /// The consul-template templates, one set for all of them.
    consul: Arc<consul::Set>,
    limits: Limits,
    outputs: Arc<Vec<(String, Source)>>,
    lookups: Arc<Mutex<Lookups>>,
    dependencies: Mutex<Vec<Dependencies>>,
    max_in_flight: usize,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field(
                "outputs",
                &self.outputs.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Which paths may be shown, for the templates as they are now.
    pub fn shown(&self) -> Shown {
        let sources = self
            .outputs
            .iter()
            .map(|(_, source)| match source {
                Source::Template(text) | Source::ConsulTemplate { text, .. } => text.clone(),
                Source::Secret { path, .. } => path.clone(),
            })
            .collect();
        Shown {
            sources: Arc::new(sources),
        }
    }

    /// Compiles every template; reports every syntax error at once.
    pub fn new(
        outputs: Vec<(String, Source)>,
        env: Arc<dyn Env>,
        max_in_flight: usize,
    ) -> Result<Engine, Vec<Error>> {
        let lookups = Arc::new(Mutex::new(Lookups::default()));
        let mut jinja = Environment::new();
        jinja.set_undefined_behavior(UndefinedBehavior::Strict);
        // Files end with the newline their template ends with (Jinja drops it by default).
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .unwrap_or_default();
        jinja.set_syntax(syntax);
        jinja.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        // Debug mode records spans, which give errors their column. It also records variables,
        // but minijinja errors are never displayed as they are: see `render_error`.
        jinja.set_debug(true);
        jinja.set_fuel(Some(Limits::default().render_steps));
        functions::register(&mut jinja, lookups.clone(), env.clone());
        let mut errors = Vec::new();
        for (name, source) in &outputs {
            if let Source::Template(text) = source
                && let Err(e) = jinja.add_template_owned(name.clone(), text.clone())
            {
                errors.push(template_error(name, text, &e));
            }
        }
        let consul = consul::Set::new(&outputs, Limits::default(), &lookups, &env)
            .map_err(|consul_errors| errors.extend(consul_errors));
        if !errors.is_empty() {
            return Err(errors);
        }
        let Ok(consul) = consul else {
            return Err(errors);
        };
        let dependencies = Mutex::new(vec![Dependencies::default(); outputs.len()]);
        Ok(Engine {
            env: Arc::new(jinja),
            consul: Arc::new(consul),
            limits: Limits::default(),
            outputs: Arc::new(outputs),
            lookups,
            dependencies,
            max_in_flight: max_in_flight.max(1),
        })
    }

    /// Makes `value` visible to every template as `name` (`config`, `snapshot`).
    pub fn set_global(&mut self, name: &'static str, value: minijinja::Value) {
        // Shared only while an attempt runs, or with one abandoned by a stop; then it is cloned.
        Arc::make_mut(&mut self.env).add_global(name, value);
    }

    /// Bounds every attempt at an output from now on.
    pub fn set_limits(&mut self, limits: Limits) {
        if limits == self.limits {
            // What everything was compiled with: nothing to do (compiling again costs time).
            return;
        }
        Arc::make_mut(&mut self.env).set_fuel(Some(limits.render_steps));
        self.lock().file_limit = Some(limits.file_bytes);
        self.limits = limits;
        self.consul = Arc::new(self.consul.with_limits(limits));
    }

    /// Replaces output `i`'s template with `text` (its source file changed). On a syntax error
    /// the old template stays.
    pub fn set_template(&mut self, i: usize, text: &str) -> Result<(), Error> {
        let Some((name, source)) = Arc::make_mut(&mut self.outputs).get_mut(i) else {
            return Ok(());
        };
        match source {
            Source::Template(current) => {
                Arc::make_mut(&mut self.env)
                    .add_template_owned(name.clone(), text.to_owned())
                    .map_err(|e| template_error(name, text, &e))?;
                *current = text.to_owned();
            }
            Source::ConsulTemplate { text: current, .. } => {
                self.consul = Arc::new(self.consul.with_template(i, name, text)?);
                *current = text.to_owned();
            }
            Source::Secret { .. } => {}
        }
        Ok(())
    }

    /// Lets `file(path)` read under these paths (the config's `watch` list).
    pub fn allow_files(&self, paths: Vec<PathBuf>) {
        self.lock().readable = paths;
    }

    /// The number of outputs.
    pub fn len(&self) -> usize {
        self.outputs.len()
    }

    /// Whether there are no outputs.
    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }

    /// What output `i` read in its last final attempt.
    pub fn dependencies(&self, i: usize) -> Dependencies {
        self.dependencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(i)
            .cloned()
            .unwrap_or_default()
    }

    /// The outputs whose last final attempt read `request`.
    pub fn using(&self, request: &Request) -> Vec<usize> {
        let deps = self.dependencies.lock().unwrap_or_else(|p| p.into_inner());
        (0..deps.len())
            .filter(|i| deps[*i].requests.contains(request))
            .collect()
    }

    /// The outputs whose last final attempt read a file at or under `path`.
    pub fn using_file(&self, path: &Path) -> Vec<usize> {
        let deps = self.dependencies.lock().unwrap_or_else(|p| p.into_inner());
        (0..deps.len())
            .filter(|i| deps[*i].files.iter().any(|f| f.starts_with(path)))
            .collect()
    }

    /// Puts a request's data in the cache a sidecar keeps between renders.
    pub fn store(&self, request: Request, data: &Json) {
        let secret = vault::Secret {
            data: data.clone(),
            ..vault::Secret::default()
        };
        self.store_secret(request, secret);
    }

    /// Puts a response in the cache a sidecar keeps between renders.
    pub fn store_secret(&self, request: Request, secret: vault::Secret) {
        self.lock()
            .fetched
            .insert(request, Ok(Response::new(secret)));
    }

    /// Drops everything fetched: after a one-off render, only the rendered files keep secrets.
    pub fn forget_all(&self) {
        self.lock().fetched.clear();
    }

    /// Drops a request from the cache: the next render that needs it fetches it again.
    pub fn forget(&self, request: &Request) {
        self.lock().fetched.remove(request);
    }

    /// Whether the cache holds a request, fetched or failed.
    pub fn cached(&self, request: &Request) -> bool {
        self.lock().fetched.contains_key(request)
    }

    /// The outputs' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.outputs.iter().map(|(name, _)| name.as_str())
    }

    /// Renders every output, fetching what they need. Results come in the outputs' order; one
    /// output's failure does not stop the others.
    pub async fn render_all(&self, fetcher: &impl Fetch) -> Vec<Result<Rendered, Error>> {
        let mut results: Vec<Option<Result<Rendered, Error>>> =
            self.outputs.iter().map(|_| None).collect();
        self.render_each(fetcher, |i, result| results[i] = Some(result))
            .await;
        self.forget_all();
        results
            .into_iter()
            .map(|r| r.expect("render_each calls back once for every output"))
            .collect()
    }

    /// Renders every output, fetching what they need, and hands each result to `done` (with
    /// the output's index) as soon as it is final, so that the caller can write it while other
    /// outputs still wait for Vault. Each output is rendered again whenever a request it waits
    /// for comes back.
    pub async fn render_each(
        &self,
        fetcher: &impl Fetch,
        done: impl FnMut(usize, Result<Rendered, Error>),
    ) {
        let render = self.begin_all();
        self.finish(render, fetcher, done).await;
    }

    /// Renders the outputs `which` with the cache as it is (a sidecar's, kept between renders),
    /// fetching only what it lacks, and hands each result to `done`. Must run in a tokio
    /// runtime (any flavour): each attempt at a template runs on its blocking pool.
    pub async fn render_some(
        &self,
        which: &[usize],
        fetcher: &impl Fetch,
        done: impl FnMut(usize, Result<Rendered, Error>),
    ) {
        let render = self.begin(which);
        self.finish(render, fetcher, done).await;
    }

    /// A render of every output with nothing fetched yet (the cache is cleared). Nothing runs
    /// until [`Engine::discover`] or [`Engine::finish`].
    pub fn begin_all(&self) -> Render {
        self.lock().fetched.clear();
        let all: Vec<usize> = (0..self.outputs.len()).collect();
        self.begin(&all)
    }

    /// A render of the outputs `which` with the cache as it is.
    pub fn begin(&self, which: &[usize]) -> Render {
        Render {
            waiting: vec![None; self.outputs.len()],
            attempts: vec![0; self.outputs.len()],
            requested: HashSet::new(),
            queue: VecDeque::new(),
            again: which.iter().copied().collect(),
        }
    }

    /// Attempts every output of `render` that is due, with what is fetched so far and without
    /// fetching: the outputs that need nothing from Vault are handed to `done`, the requests
    /// of the others are queued. Needs no token, so the init container runs it while it logs in.
    pub async fn discover(
        &self,
        render: &mut Render,
        mut done: impl FnMut(usize, Result<Rendered, Error>),
    ) {
        let which: Vec<usize> = render.again.drain(..).collect();
        self.attempt(which, render, &mut done).await;
    }

    /// Finishes `render`: fetches what the outputs wait for (at most `max_in_flight` at once)
    /// and attempts each output again as the requests it waits for come back, handing each
    /// final result to `done`. The fetches go on while an attempt renders.
    pub async fn finish(
        &self,
        mut render: Render,
        fetcher: &impl Fetch,
        mut done: impl FnMut(usize, Result<Rendered, Error>),
    ) {
        let send = |request: Request| async move {
            let result = fetcher.fetch(&request).await;
            (request, result)
        };
        let mut in_flight = FuturesUnordered::new();
        let mut arrived = VecDeque::new();
        loop {
            top_up(&mut in_flight, &mut render.queue, self.max_in_flight, send);
            if render.again.is_empty() {
                let next = match arrived.pop_front() {
                    Some(next) => Some(next),
                    None => in_flight.next().await,
                };
                let Some((request, result)) = next else {
                    break;
                };
                self.take_in(&mut render, request, result);
            }
            // Everything back by now is taken in first: the outputs it completes are attempted
            // together.
            while let Some((request, result)) = arrived
                .pop_front()
                .or_else(|| in_flight.next().now_or_never().flatten())
            {
                self.take_in(&mut render, request, result);
            }
            let which: Vec<usize> = render.again.drain(..).collect();
            let due = self.due(which, &mut render, &mut done);
            // The fetches go on, and the queue is sent as they free their places, while the
            // batch renders.
            let mut batch = std::pin::pin!(self.render_batch(due.clone()));
            let outcomes = std::future::poll_fn(|cx| {
                if let Poll::Ready(outcomes) = batch.as_mut().poll(cx) {
                    return Poll::Ready(outcomes);
                }
                loop {
                    top_up(&mut in_flight, &mut render.queue, self.max_in_flight, send);
                    match in_flight.poll_next_unpin(cx) {
                        Poll::Ready(Some(back)) => arrived.push_back(back),
                        _ => return Poll::Pending,
                    }
                }
            })
            .await;
            self.apply(due, outcomes, &mut render, &mut done);
        }
        // Every request an output waited for has come back and caused another attempt, so no
        // output is left waiting; this only guards the invariant.
        for (i, waiting) in render.waiting.iter().enumerate() {
            if waiting.is_some() {
                done(i, Err(self.too_many_rounds(i)));
            }
        }
    }

    /// Keeps a response, and marks the outputs that waited for it to be attempted again.
    fn take_in(
        &self,
        render: &mut Render,
        request: Request,
        result: Result<vault::Secret, vault::Error>,
    ) {
        let value = result.map(Response::new).map_err(Arc::new);
        self.lock().fetched.insert(request.clone(), value);
        for i in 0..self.outputs.len() {
            if render.waiting[i]
                .as_ref()
                .is_some_and(|w| w.contains(&request))
                && !render.again.contains(&i)
            {
                render.again.push_back(i);
            }
        }
    }

    /// Attempts the outputs `which` with what is fetched so far; hands the final ones to
    /// `done` and queues what the others still need.
    async fn attempt(
        &self,
        which: Vec<usize>,
        state: &mut Render,
        done: &mut impl FnMut(usize, Result<Rendered, Error>),
    ) {
        let due = self.due(which, state, done);
        let outcomes = self.render_batch(due.clone()).await;
        self.apply(due, outcomes, state, done);
    }

    /// Counts an attempt at each of `which`; fails those attempted too often. The rest are due.
    fn due(
        &self,
        which: Vec<usize>,
        state: &mut Render,
        done: &mut impl FnMut(usize, Result<Rendered, Error>),
    ) -> Vec<usize> {
        let mut due = Vec::with_capacity(which.len());
        for i in which {
            state.attempts[i] += 1;
            if state.attempts[i] > MAX_ROUNDS {
                state.waiting[i] = None;
                done(i, Err(self.too_many_rounds(i)));
            } else {
                due.push(i);
            }
        }
        due
    }

    /// Renders the outputs `due` with what is fetched so far, all in one trip to the blocking
    /// pool: a long attempt (up to its steps) must not stop the runtime that answers /healthz,
    /// takes signals and renews leases. A stop while it runs abandons it; its steps end it soon
    /// after.
    fn render_batch(&self, due: Vec<usize>) -> impl Future<Output = Vec<Outcome>> + 'static {
        let renderer = self.renderer();
        let names: Vec<String> = due.iter().map(|&i| self.outputs[i].0.clone()).collect();
        let batch = (!due.is_empty()).then(|| {
            tokio::task::spawn_blocking(move || {
                due.into_iter()
                    .map(|i| renderer.attempt(i))
                    .collect::<Vec<_>>()
            })
        });
        async move {
            let Some(batch) = batch else {
                return Vec::new();
            };
            batch.await.unwrap_or_else(|_| {
                names
                    .into_iter()
                    .map(|template| Outcome::Final {
                        result: Err(Error::Render {
                            template,
                            line: None,
                            column: None,
                            message: "the render stopped unexpectedly".to_owned(),
                        }),
                        dependencies: Dependencies::default(),
                    })
                    .collect()
            })
        }
    }

    /// Takes in the outcomes of attempts at `due`: final results go to `done`, what the others
    /// still need is queued.
    fn apply(
        &self,
        due: Vec<usize>,
        outcomes: Vec<Outcome>,
        state: &mut Render,
        done: &mut impl FnMut(usize, Result<Rendered, Error>),
    ) {
        for (i, outcome) in due.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Final {
                    result,
                    dependencies,
                } => {
                    state.waiting[i] = None;
                    if let Some(deps) = self
                        .dependencies
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(i)
                    {
                        *deps = dependencies;
                    }
                    done(i, result);
                }
                Outcome::Needs(missing) => {
                    for request in &missing {
                        if state.requested.insert(request.clone()) {
                            state.queue.push_back(request.clone());
                        }
                    }
                    state.waiting[i] = Some(missing);
                }
            }
        }
    }

    /// What an attempt needs, owned: it runs on the blocking pool.
    fn renderer(&self) -> Renderer {
        Renderer {
            env: self.env.clone(),
            consul: self.consul.clone(),
            limits: self.limits,
            outputs: self.outputs.clone(),
            lookups: self.lookups.clone(),
        }
    }

    /// The error of an output that never became final.
    pub(crate) fn too_many_rounds(&self, i: usize) -> Error {
        Error::TooManyRounds {
            template: self.outputs[i].0.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Lookups> {
        // A panic while rendering cannot leave the lookups half-updated in a way that matters:
        // the next render clears them.
        self.lookups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One attempt's outcome.
enum Outcome {
    /// The output's result, and what it read.
    Final {
        result: Result<Rendered, Error>,
        dependencies: Dependencies,
    },
    /// The requests it still needs.
    Needs(BTreeSet<Request>),
}

/// What attempts at outputs need, owned, so that they run on the blocking pool.
struct Renderer {
    env: Arc<Environment<'static>>,
    consul: Arc<consul::Set>,
    limits: Limits,
    outputs: Arc<Vec<(String, Source)>>,
    lookups: Arc<Mutex<Lookups>>,
}

impl Renderer {
    /// Renders output `i` with what is fetched so far.
    fn attempt(&self, i: usize) -> Outcome {
        let (name, source) = &self.outputs[i];
        {
            let mut lookups = self.lock();
            lookups.missing.clear();
            lookups.touched.clear();
            lookups.files.clear();
            lookups.scratch.clear();
            lookups.failure = None;
            lookups.writes.clear();
            lookups.executions = 0;
            lookups.execute_depth = 0;
        }
        match self.try_render(i, name, source) {
            Some((result, missing_key)) => {
                let mut lookups = self.lock();
                Outcome::Final {
                    result,
                    dependencies: Dependencies {
                        requests: std::mem::take(&mut lookups.touched),
                        files: std::mem::take(&mut lookups.files),
                        missing_key,
                    },
                }
            }
            None => Outcome::Needs(std::mem::take(&mut self.lock().missing)),
        }
    }

    /// Renders one output with what is fetched so far, with the key a consul-template template
    /// found missing; `None` when it needs more.
    fn try_render(
        &self,
        i: usize,
        name: &str,
        source: &Source,
    ) -> Option<(Result<Rendered, Error>, Option<String>)> {
        match source {
            Source::ConsulTemplate { text, .. } => {
                self.lock().placeholders = 0;
                let outcome = self.consul.render(i);
                let (failure, writes) = {
                    let mut lookups = self.lock();
                    if lookups.placeholders > 0 {
                        return None;
                    }
                    (lookups.failure.take(), std::mem::take(&mut lookups.writes))
                };
                let template = name.to_owned();
                let (result, missing_key) = match outcome {
                    Ok(rendered) => {
                        let written = writes.iter().try_for_each(|write| {
                            write.apply().map_err(|message| {
                                let path = write.path.display().to_string();
                                let shown = if text.contains(&path) {
                                    path
                                } else {
                                    COMPUTED_PATH.to_owned()
                                };
                                Error::Render {
                                    template: template.clone(),
                                    line: None,
                                    column: None,
                                    message: format!("writeToFile {shown}: {message}"),
                                }
                            })
                        });
                        (
                            written.map(|()| Rendered(rendered.bytes)),
                            rendered.missing_key,
                        )
                    }
                    Err(consul::Failure::TooLarge) => (
                        Err(Error::TooLarge {
                            template,
                            limit: self.limits.file_bytes,
                        }),
                        None,
                    ),
                    Err(consul::Failure::OutOfSteps) => (
                        Err(Error::OutOfSteps {
                            template,
                            steps: self.limits.render_steps,
                        }),
                        None,
                    ),
                    Err(consul::Failure::Failed(e)) => {
                        (Err(consul_error(name, text, &e, failure)), None)
                    }
                };
                Some((result, missing_key))
            }
            other => self.try_render_jinja(name, other).map(|r| (r, None)),
        }
    }

    /// Renders a Jinja template or a `secrets` shorthand with what is fetched so far; `None`
    /// when it needs more.
    fn try_render_jinja(&self, name: &str, source: &Source) -> Option<Result<Rendered, Error>> {
        match source {
            Source::ConsulTemplate { .. } => None,
            Source::Secret { path, format } => {
                let request = Request::read(path);
                let mut lookups = self.lock();
                lookups.touched.insert(request.clone());
                match lookups.fetched.get(&request) {
                    Some(Ok(response)) if response.secret().data.is_null() => {
                        Some(Err(Error::Format {
                            name: name.to_owned(),
                            message: format!("vault returned no data for {path}"),
                        }))
                    }
                    Some(Ok(response)) => Some(
                        format_secret(name, response.jinja(), *format)
                            .and_then(|r| self.within_limit(name, r)),
                    ),
                    Some(Err(e)) => Some(Err(Error::Vault {
                        template: name.to_owned(),
                        error: e.clone(),
                    })),
                    None => {
                        lookups.missing.insert(request);
                        None
                    }
                }
            }
            Source::Template(text) => {
                self.lock().placeholders = 0;
                let outcome = render_bounded(&self.env, name, self.limits.file_bytes);
                if self.lock().placeholders > 0 {
                    // Some secret was not fetched yet: whatever this round produced, including
                    // an error caused by a placeholder, is discarded.
                    return None;
                }
                let template = name.to_owned();
                Some(match outcome {
                    Ok(text) => Ok(Rendered(text.into_bytes())),
                    Err(Bounded::TooLarge) => Err(Error::TooLarge {
                        template,
                        limit: self.limits.file_bytes,
                    }),
                    Err(Bounded::Failed(e)) if e.kind() == ErrorKind::OutOfFuel => {
                        Err(Error::OutOfSteps {
                            template,
                            steps: self.limits.render_steps,
                        })
                    }
                    Err(Bounded::Failed(e)) => Err(template_error(name, text, &e)),
                })
            }
        }
    }

    /// Refuses a rendered secret larger than a file may be.
    fn within_limit(&self, name: &str, rendered: Rendered) -> Result<Rendered, Error> {
        if rendered.0.len() as u64 > self.limits.file_bytes {
            return Err(Error::TooLarge {
                template: name.to_owned(),
                limit: self.limits.file_bytes,
            });
        }
        Ok(rendered)
    }

    fn lock(&self) -> MutexGuard<'_, Lookups> {
        self.lookups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Why a bounded render failed.
enum Bounded {
    /// The output passed the limit.
    TooLarge,
    /// minijinja failed (running out of steps included).
    Failed(minijinja::Error),
}

/// Renders template `name` into memory, stopping as soon as the output passes `limit` bytes.
fn render_bounded(env: &Environment<'static>, name: &str, limit: u64) -> Result<String, Bounded> {
    let template = env.get_template(name).map_err(Bounded::Failed)?;
    let mut out = LimitedWriter {
        buffer: Vec::new(),
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
        exceeded: false,
    };
    let result = template.render_captured_to(minijinja::context! {}, &mut out);
    if out.exceeded {
        return Err(Bounded::TooLarge);
    }
    result.map_err(Bounded::Failed)?;
    // minijinja writes whole `str`s and a refused write adds nothing, so this is UTF-8.
    String::from_utf8(out.buffer).map_err(|_| {
        Bounded::Failed(minijinja::Error::new(
            ErrorKind::WriteFailure,
            "the output is not UTF-8",
        ))
    })
}

/// Collects output up to a limit; a write past it fails, which ends the render.
pub(crate) struct LimitedWriter {
    pub(crate) buffer: Vec<u8>,
    pub(crate) limit: usize,
    pub(crate) exceeded: bool,
}

impl std::io::Write for LimitedWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.buffer.len().saturating_add(bytes.len()) > self.limit {
            self.exceeded = true;
            return Err(std::io::Error::other("output limit reached"));
        }
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Turns a minijinja error into ours, built from its kind, detail and position only: minijinja's
/// own `Display` may show the values of variables, which hold secrets. An error may quote what
/// the template's source spells, never a value computed while rendering (hardening #9): the
/// failing expression is shown as written, and details that quote values are replaced.
fn template_error(name: &str, text: &str, e: &minijinja::Error) -> Error {
    let line = e.line();
    // A position in another template (an included one) does not index this text.
    let range = e
        .range()
        .filter(|r| r.end <= text.len() && r.start < r.end)
        .filter(|_| e.name().is_none_or(|n| n == name));
    let column = range.as_ref().map(|r| column_of(text, r.start));
    let template = name.to_owned();
    if let Some(failure) = functions::vault_failure(e) {
        let expression = range.and_then(|r| text.get(r)).map(str::trim);
        // Vault's errors name the path; that is the template's own text only when the path is
        // a literal.
        if expression.and_then(literal_path).is_some() {
            return Error::Vault {
                template,
                error: failure,
            };
        }
        return Error::VaultComputed {
            template,
            line,
            column,
            expression: excerpt(expression.unwrap_or("?")),
            error: failure,
        };
    }
    match e.kind() {
        ErrorKind::SyntaxError => Error::Syntax {
            template,
            line,
            column,
            message: e.detail().unwrap_or("invalid syntax").to_owned(),
        },
        ErrorKind::UndefinedError => {
            let expression = range.and_then(|r| text.get(r)).unwrap_or("?").trim();
            Error::KeyMissing {
                template,
                line,
                column,
                key: last_key(expression).to_owned(),
                expression: expression.to_owned(),
            }
        }
        kind => {
            let mut message = match shown_detail(e) {
                Some(detail) => format!("{kind}: {detail}"),
                None => kind.to_string(),
            };
            if let Some(expression) = range.and_then(|r| text.get(r)).map(str::trim) {
                message.push_str(&format!(" (in `{}`)", excerpt(expression)));
            }
            Error::Render {
                template,
                line,
                column,
                message,
            }
        }
    }
}

/// Turns a consul-template template's failure into ours: a Vault failure as the request's,
/// with the path shown only when the template spells it.
fn consul_error(
    name: &str,
    text: &str,
    e: &gotmpl::TemplateError,
    failure: Option<Arc<vault::Error>>,
) -> Error {
    let template = name.to_owned();
    if let Some(error) = failure {
        let path = match error.as_ref() {
            vault::Error::NotFound { path } => Some(path.as_str()),
            _ => None,
        };
        if path.is_none_or(|p| text.contains(p)) {
            return Error::Vault { template, error };
        }
        return Error::VaultComputed {
            template,
            line: None,
            column: None,
            expression: "a secret function".to_owned(),
            error,
        };
    }
    match e {
        gotmpl::TemplateError::MissingKey { key } => Error::KeyMissing {
            template,
            line: None,
            column: None,
            key: key.clone(),
            expression: format!(".{key}"),
        },
        other => Error::Render {
            template,
            line: None,
            column: None,
            message: consul::message(other),
        },
    }
}

/// minijinja's detail of an error, unless it quotes values (template names, operands, format
/// strings, keys), which may be secrets; then a description without them.
fn shown_detail(e: &minijinja::Error) -> Option<String> {
    match e.kind() {
        ErrorKind::TemplateNotFound => {
            return Some(
                "no template of that name (the name is not shown: it may be computed); only the agent's own templates can be included".to_owned(),
            );
        }
        ErrorKind::BadInclude => {
            let inner = std::error::Error::source(e)
                .and_then(|s| s.downcast_ref::<minijinja::Error>())
                .map(|inner| match shown_detail(inner) {
                    Some(detail) => format!("{}: {detail}", inner.kind()),
                    None => inner.kind().to_string(),
                });
            return Some(format!(
                "in an included template: {}",
                inner.unwrap_or_else(|| "it failed".to_owned())
            ));
        }
        _ => {}
    }
    let detail = e.detail()?;
    const QUOTING: &[(&str, &str)] = &[
        (
            "unable to calculate",
            "unable to calculate the result (the operands are not shown)",
        ),
        (
            "cycle in template inheritance",
            "cycle in template inheritance",
        ),
        ("unknown keyword argument", "unknown keyword argument"),
        ("invalid format spec", "the format string is invalid"),
        ("invalid conversion type", "the format string is invalid"),
        ("incomplete format", "the format string is invalid"),
        (
            "missing an argument for format",
            "the format string is invalid",
        ),
        (
            "invalid integer in the format",
            "the format string is invalid",
        ),
        ("missing attribute name", "the format string is invalid"),
    ];
    Some(
        QUOTING
            .iter()
            .find(|(prefix, _)| detail.starts_with(prefix))
            .map_or(detail, |(_, replacement)| replacement)
            .to_owned(),
    )
}

/// The path of `secret('...')` when the call spells it as a literal.
fn literal_path(expression: &str) -> Option<&str> {
    let rest = expression
        .strip_prefix("secret")?
        .trim_start()
        .strip_prefix('(')?
        .trim_start();
    let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = &rest[1..];
    let end = body.find(quote)?;
    let (literal, after) = (&body[..end], body[end + 1..].trim_start());
    let closes = after.starts_with(')') || after.starts_with(',');
    (closes && !literal.contains('\\')).then_some(literal)
}

/// An expression on one line, shortened past 120 characters.
fn excerpt(expression: &str) -> String {
    let line: String = expression.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(120) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line,
    }
}

/// The last key an expression looks up: `password` in `.data.password`, `other` in `x['other']`.
fn last_key(expression: &str) -> &str {
    if let Some(inner) = expression.strip_suffix(']')
        && let Some(open) = inner.rfind('[')
    {
        return inner[open + 1..]
            .trim()
            .trim_matches(|c| c == '\'' || c == '"');
    }
    expression.rsplit('.').next().unwrap_or(expression).trim()
}

/// The 1-based column (in characters) of a byte offset.
fn column_of(text: &str, offset: usize) -> usize {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    text[line_start..offset].chars().count() + 1
}

#[cfg(test)]
mod tests;
