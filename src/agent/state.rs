//! What an init container hands to the sidecar, in the agent's private memory volume: its token
//! and what it fetched (with lease details), so that the sidecar takes them over and renews them
//! instead of logging in again and fetching a second set of dynamic credentials (vault-k8s#125,
//! #162). The file is 0600 and never in a volume an app container mounts.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::files;
use crate::template::{Kind, Request};

/// The file in the state directory.
pub const STATE_FILE: &str = "state.json";

/// The file whose presence says every output was rendered once (native mode's probe).
pub const READY_FILE: &str = injector::names::READY_FILE_NAME;

const VERSION: u32 = 1;

/// The hand-over.
#[derive(Clone, Serialize, Deserialize)]
pub struct State {
    version: u32,
    /// The Vault token.
    pub token: String,
    /// When the token expires (Unix seconds); `None` when it does not.
    pub token_expires_at: Option<u64>,
    /// What was fetched.
    pub entries: Vec<Entry>,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("token", &"<redacted>")
            .field("token_expires_at", &self.token_expires_at)
            .field("entries", &self.entries.len())
            .finish()
    }
}

/// One fetched response.
#[derive(Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The Vault path.
    pub path: String,
    /// A write's parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, Value>>,
    /// What the request does (consul-template's reads, lists and certificates); absent for a
    /// plain read or write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    /// A read's query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// A certificate's destination file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<PathBuf>,
    /// The response's data.
    pub data: Value,
    /// When it was fetched (Unix seconds).
    pub fetched_at: u64,
    /// Its lease, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseRecord>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("path", &self.path)
            .field("data", &"<redacted>")
            .field("fetched_at", &self.fetched_at)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// A lease as fetched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The lease ID.
    pub id: String,
    /// Its duration when fetched, in seconds.
    pub seconds: u64,
    /// Whether it can be renewed.
    pub renewable: bool,
}

impl State {
    /// A hand-over of `token` and `entries`.
    pub fn new(token: String, token_expires_at: Option<u64>, entries: Vec<Entry>) -> State {
        State {
            version: VERSION,
            token,
            token_expires_at,
            entries,
        }
    }
}

/// One response as the agent holds it, for [`hand_over`]. Its `Debug` hides the data.
pub struct Held<'a> {
    /// What was asked.
    pub request: &'a Request,
    /// The response's data (secret: never logged; the hand-over file is private).
    pub data: &'a Value,
    /// When it was fetched.
    pub fetched_at: SystemTime,
    /// Its lease, if it has one.
    pub lease: Option<HeldLease<'a>>,
}

impl fmt::Debug for Held<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Held")
            .field("request", self.request)
            .field("data", &"<redacted>")
            .field("fetched_at", &self.fetched_at)
            .field("lease", &self.lease)
            .finish()
    }
}

/// A lease as the agent holds it.
#[derive(Debug)]
pub struct HeldLease<'a> {
    /// The lease ID.
    pub id: &'a str,
    /// Its life counted from when the response was fetched: its duration then, or the time
    /// since plus what is left now.
    pub lifetime: Duration,
    /// Whether it can be renewed.
    pub renewable: bool,
}

/// Writes the hand-over of `token` (expiring at `token_expires`, if ever) and `held` into
/// `dir`: the one place the init container and the sidecar build it.
pub fn hand_over<'a>(
    dir: &Path,
    token: &str,
    token_expires: Option<SystemTime>,
    held: impl IntoIterator<Item = Held<'a>>,
) -> std::io::Result<()> {
    let state = State::new(token.to_owned(), token_expires.map(unix), entries(held));
    save(dir, &state)
}

impl<'a> Held<'a> {
    /// A response as it was fetched at `at`, with its lease if it has one.
    pub fn of(request: &'a Request, secret: &'a crate::vault::Secret, at: SystemTime) -> Held<'a> {
        Held {
            request,
            data: &secret.data,
            fetched_at: at,
            lease: secret
                .lease
                .as_ref()
                .filter(|l| !l.id.is_empty())
                .map(|l| HeldLease {
                    id: &l.id,
                    lifetime: l.duration,
                    renewable: l.renewable,
                }),
        }
    }
}

/// The records of `held`, as the hand-over keeps them.
pub fn entries<'a>(held: impl IntoIterator<Item = Held<'a>>) -> Vec<Entry> {
    held.into_iter()
        .map(|held| Entry {
            path: held.request.path.clone(),
            params: held.request.params(),
            kind: Some(held.request.kind()).filter(|k| !matches!(k, Kind::Read | Kind::Write)),
            query: held.request.query().map(str::to_owned),
            destination: held.request.destination().map(Path::to_owned),
            data: held.data.clone(),
            fetched_at: unix(held.fetched_at),
            lease: held.lease.map(|lease| LeaseRecord {
                id: lease.id.to_owned(),
                seconds: lease.lifetime.as_secs(),
                renewable: lease.renewable,
            }),
        })
        .collect()
}

/// Seconds since the Unix epoch.
pub fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A Unix time in seconds.
pub fn system_time(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// Reads the hand-over, if there is one. A file that cannot be read is reported, and the
/// sidecar starts afresh.
pub fn load(dir: &Path) -> Result<Option<State>, String> {
    let path = dir.join(STATE_FILE);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    // The message never quotes the file: it holds the token.
    let state: State = serde_json::from_slice(&text)
        .map_err(|_| format!("{} is not a hydrant state file", path.display()))?;
    if state.version != VERSION {
        return Err(format!(
            "{} has version {}, not {VERSION}",
            path.display(),
            state.version
        ));
    }
    Ok(Some(state))
}

/// Writes the hand-over, atomically and readable by the agent alone, creating `dir` if need be.
pub fn save(dir: &Path, state: &State) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_vec(state).map_err(std::io::Error::other)?;
    files::write_atomic(&dir.join(STATE_FILE), &json, 0o600).map(drop)
}

/// Creates the ready file, and `dir` if need be.
pub fn mark_ready(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    files::write_atomic(&dir.join(READY_FILE), b"", 0o644).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn the_hand_over_round_trips_privately_and_never_shows_the_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = State::new(
            "hvs.secret-token".into(),
            Some(123),
            vec![Entry {
                path: "database/creds/ro".into(),
                params: None,
                kind: None,
                query: None,
                destination: None,
                data: serde_json::json!({"username": "u", "password": "p"}),
                fetched_at: 100,
                lease: Some(LeaseRecord {
                    id: "database/creds/ro/x".into(),
                    seconds: 60,
                    renewable: true,
                }),
            }],
        );
        save(dir.path(), &state).expect("saves");
        let mode = std::fs::metadata(dir.path().join(STATE_FILE))
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = load(dir.path()).expect("loads").expect("present");
        assert_eq!(back.token, "hvs.secret-token");
        assert_eq!(back.entries[0].lease, state.entries[0].lease);
        assert!(!format!("{back:?}").contains("secret-token"));
    }

    /// The init container and the sidecar both leave it through [`hand_over`]: a write keeps
    /// its parameters, a lease its life counted from the fetch, the token its expiry.
    #[test]
    fn a_hand_over_records_each_response_with_its_parameters_and_lease() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state_dir = dir.path().join("not-yet");
        let fetched_at = system_time(1_000);
        let params = serde_json::json!({"common_name": "a.example"});
        let write = Request::from_parts("pki/issue/web", params.as_object());
        let read = Request::read("secret/data/app");
        let (cert, kv) = (
            serde_json::json!({"certificate": "c"}),
            serde_json::json!({"k": "v"}),
        );
        let held = [
            Held {
                request: &write,
                data: &cert,
                fetched_at,
                lease: Some(HeldLease {
                    id: "pki/issue/web/1",
                    lifetime: Duration::from_secs(90),
                    renewable: false,
                }),
            },
            Held {
                request: &read,
                data: &kv,
                fetched_at,
                lease: None,
            },
        ];
        hand_over(&state_dir, "hvs.t", Some(system_time(5_000)), held).expect("saves");
        let back = load(&state_dir).expect("loads").expect("present");
        assert_eq!(back.token_expires_at, Some(5_000));
        let [issued, value] = &back.entries[..] else {
            panic!("two entries: {back:?}")
        };
        assert_eq!(issued.path, "pki/issue/web");
        assert_eq!(issued.params.as_ref(), params.as_object());
        assert_eq!(issued.fetched_at, 1_000);
        assert_eq!(
            issued.lease,
            Some(LeaseRecord {
                id: "pki/issue/web/1".into(),
                seconds: 90,
                renewable: false,
            })
        );
        assert_eq!((value.params.as_ref(), &value.lease), (None, &None));
        assert_eq!(value.data, kv);
    }

    /// consul-template's requests come back as what they were: a certificate with its
    /// destination (so that the sidecar reuses it), a read with its version, a list.
    #[test]
    fn a_hand_over_keeps_each_request_s_kind_query_and_destination() {
        let dir = tempfile::tempdir().expect("tempdir");
        let requests = [
            Request::certificate(
                "pki/issue/web",
                &Default::default(),
                Some(Path::new("/vault/secrets/tls")),
            ),
            Request::read_consul("secret/data/app?version=2"),
            Request::read_consul("secret/app"),
            Request::list("secret/metadata/app"),
            Request::write("auth/approle/login", &Default::default()),
            Request::read("secret/data/app"),
        ];
        let data = serde_json::json!({});
        let held = requests.iter().map(|request| Held {
            request,
            data: &data,
            fetched_at: system_time(1),
            lease: None,
        });
        hand_over(dir.path(), "t", None, held).expect("saved");
        let back = load(dir.path()).expect("loads").expect("present");
        let restored: Vec<Request> = back
            .entries
            .iter()
            .map(|e| {
                Request::restore(
                    &e.path,
                    e.kind,
                    e.params.as_ref(),
                    e.query.as_deref(),
                    e.destination.as_deref(),
                )
            })
            .collect();
        assert_eq!(restored, requests);
    }

    #[test]
    fn a_missing_file_is_none_and_a_bad_one_an_error_that_quotes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(load(dir.path()).expect("fine").is_none());
        std::fs::write(dir.path().join(STATE_FILE), "{\"token\": \"hvs.leak\"").expect("write");
        let err = load(dir.path()).expect_err("corrupt");
        assert!(err.ends_with("is not a hydrant state file"), "{err}");
        assert!(!err.contains("hvs.leak"));
    }
}
