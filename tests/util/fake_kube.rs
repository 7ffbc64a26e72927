//! A small fake Kubernetes API service: no kube-apiserver can run on these machines. It keeps
//! objects as JSON in collections (`/api/v1/namespaces`,
//! `/apis/coordination.k8s.io/v1/namespaces/NS/leases` ...) and speaks what hydrant's `kube`
//! client uses: GET (object, list with `labelSelector`, `watch=true` streams), POST (409 when
//! the name exists), PUT (409 when `metadata.resourceVersion` is stale: optimistic concurrency,
//! as the real server), JSON merge PATCH and DELETE, with `Status` bodies for errors. Every
//! write bumps one resourceVersion counter and is kept as a watch event.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// Resource names: a path ending in one is a collection, otherwise it ends in an object's name.
const RESOURCES: [&str; 5] = [
    "namespaces",
    "leases",
    "secrets",
    "mutatingwebhookconfigurations",
    "events",
];

#[derive(Clone, Debug)]
struct Event {
    collection: String,
    kind: &'static str,
    object: Value,
    version: u64,
}

#[derive(Default)]
struct Store {
    collections: BTreeMap<String, BTreeMap<String, Value>>,
    version: u64,
    history: Vec<Event>,
    requests: Vec<String>,
}

struct Shared {
    store: Mutex<Store>,
    events: broadcast::Sender<Event>,
}

/// A running fake API server; it stops with the test process.
pub struct FakeKube {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    shared: Arc<Shared>,
}

impl FakeKube {
    /// Starts serving on a free loopback port.
    pub fn start() -> FakeKube {
        let (events, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            events,
        });
        let url =
            super::serve_in_background(Router::new().fallback(handle).with_state(shared.clone()));
        FakeKube { url, shared }
    }

    /// A kubeconfig naming this server, written into `dir`.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\nusers:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\n",
            self.url
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Creates or replaces an object in a collection, as a client with a fresh read would.
    pub fn put(&self, collection: &str, object: Value) {
        let name = object["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_owned();
        let mut store = self.shared.store.lock().expect("lock");
        let kind = if store
            .collections
            .get(collection)
            .is_some_and(|c| c.contains_key(&name))
        {
            "MODIFIED"
        } else {
            "ADDED"
        };
        store_write(&self.shared, &mut store, collection, kind, object);
    }

    /// Deletes an object; a watch sees DELETED.
    pub fn delete(&self, collection: &str, name: &str) {
        let mut store = self.shared.store.lock().expect("lock");
        let object = store
            .collections
            .get_mut(collection)
            .and_then(|c| c.remove(name))
            .expect("object to delete");
        store_write(&self.shared, &mut store, collection, "DELETED", object);
    }

    /// An object, when it exists.
    pub fn get(&self, collection: &str, name: &str) -> Option<Value> {
        let store = self.shared.store.lock().expect("lock");
        store.collections.get(collection)?.get(name).cloned()
    }

    /// Every object of a collection, in name order.
    pub fn list(&self, collection: &str) -> Vec<Value> {
        let store = self.shared.store.lock().expect("lock");
        store
            .collections
            .get(collection)
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every request so far, as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.shared.store.lock().expect("lock").requests.clone()
    }
}

/// Records a write: a new resourceVersion on the object, and an event for watches.
fn store_write(
    shared: &Shared,
    store: &mut Store,
    collection: &str,
    kind: &'static str,
    mut object: Value,
) -> Value {
    store.version += 1;
    let version = store.version;
    object["metadata"]["resourceVersion"] = json!(version.to_string());
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let items = store.collections.entry(collection.to_owned()).or_default();
    if kind == "DELETED" {
        items.remove(&name);
    } else {
        items.insert(name, object.clone());
    }
    let event = Event {
        collection: collection.to_owned(),
        kind,
        object: object.clone(),
        version,
    };
    store.history.push(event.clone());
    let _ = shared.events.send(event);
    object
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    (
        code,
        axum::Json(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code.as_u16(),
        })),
    )
        .into_response()
}

/// `k=v,k2=v2,k3` against an object's labels.
fn matches(selector: Option<&String>, object: &Value) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    let labels = &object["metadata"]["labels"];
    selector.split(',').all(|term| match term.split_once('=') {
        Some((k, v)) => labels[k.trim()].as_str() == Some(v.trim_start_matches('=').trim()),
        None => !labels[term.trim()].is_null(),
    })
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<BTreeMap<String, String>>,
    request: Request,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default();
    let (collection, name) = if RESOURCES.contains(&last) {
        (path.clone(), None)
    } else {
        let (collection, name) = path.rsplit_once('/').unwrap_or_default();
        (collection.to_owned(), Some(name.to_owned()))
    };
    let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let mut store = shared.store.lock().expect("lock");
    let query_text = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    store.requests.push(format!("{method} {path}?{query_text}"));
    let parsed = || serde_json::from_slice::<Value>(&body);
    match (method, name) {
        (Method::GET, None) if watch => {
            let since: u64 = query
                .get("resourceVersion")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let selector = query.get("labelSelector").cloned();
            let receiver = shared.events.subscribe();
            let backlog: Vec<Event> = store
                .history
                .iter()
                .filter(|e| e.collection == collection && e.version > since)
                .cloned()
                .collect();
            drop(store);
            let line = move |e: &Event| -> Bytes {
                let mut text = json!({"type": e.kind, "object": e.object}).to_string();
                text.push('\n');
                Bytes::from(text)
            };
            let selector2 = selector.clone();
            let backlog = stream::iter(
                backlog
                    .into_iter()
                    .filter(move |e| matches(selector.as_ref(), &e.object))
                    .map(move |e| Ok::<_, std::io::Error>(line(&e))),
            );
            let timeout = query
                .get("timeoutSeconds")
                .and_then(|t| t.parse().ok())
                .unwrap_or(290u64);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
            let live = stream::unfold(receiver, move |mut receiver| {
                let collection = collection.clone();
                let selector = selector2.clone();
                async move {
                    loop {
                        let next = tokio::time::timeout_at(deadline, receiver.recv()).await;
                        match next {
                            Ok(Ok(e)) if e.collection == collection && e.version > since => {
                                if matches(selector.as_ref(), &e.object) {
                                    return Some((Ok(line(&e)), receiver));
                                }
                            }
                            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                            _ => return None,
                        }
                    }
                }
            });
            Response::new(Body::from_stream(futures_util::StreamExt::chain(
                backlog, live,
            )))
        }
        (Method::GET, None) => {
            let selector = query.get("labelSelector");
            let items: Vec<Value> = store
                .collections
                .get(&collection)
                .map(|c| {
                    c.values()
                        .filter(|o| matches(selector, o))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            axum::Json(json!({
                "apiVersion": "v1", "kind": "List",
                "metadata": {"resourceVersion": store.version.to_string()},
                "items": items,
            }))
            .into_response()
        }
        (Method::GET, Some(name)) => match store
            .collections
            .get(&collection)
            .and_then(|c| c.get(&name))
        {
            Some(object) => axum::Json(object.clone()).into_response(),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{name} not found"),
            ),
        },
        (Method::POST, None) => {
            let Ok(object) = parsed() else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "not JSON".to_owned());
            };
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if store
                .collections
                .get(&collection)
                .is_some_and(|c| c.contains_key(&name))
            {
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    format!("{name} already exists"),
                );
            }
            let written = store_write(&shared, &mut store, &collection, "ADDED", object);
            (StatusCode::CREATED, axum::Json(written)).into_response()
        }
        (Method::PUT, Some(name)) => {
            let Ok(object) = parsed() else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "not JSON".to_owned());
            };
            let Some(current) = store
                .collections
                .get(&collection)
                .and_then(|c| c.get(&name))
            else {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("{name} not found"),
                );
            };
            if object["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
                return status(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!(
                        "the object has been modified; please apply your changes to the latest version ({name})"
                    ),
                );
            }
            let written = store_write(&shared, &mut store, &collection, "MODIFIED", object);
            axum::Json(written).into_response()
        }
        (Method::PATCH, Some(name)) => {
            let Ok(patch) = parsed() else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "not JSON".to_owned());
            };
            let Some(mut object) = store
                .collections
                .get(&collection)
                .and_then(|c| c.get(&name))
                .cloned()
            else {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("{name} not found"),
                );
            };
            json_patch::merge(&mut object, &patch);
            let written = store_write(&shared, &mut store, &collection, "MODIFIED", object);
            axum::Json(written).into_response()
        }
        (Method::DELETE, Some(name)) => {
            match store
                .collections
                .get_mut(&collection)
                .and_then(|c| c.remove(&name))
            {
                Some(object) => {
                    let written = store_write(&shared, &mut store, &collection, "DELETED", object);
                    axum::Json(written).into_response()
                }
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("{name} not found"),
                ),
            }
        }
        (method, _) => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} {path} is not served by the fake API"),
        ),
    }
}
