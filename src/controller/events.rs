//! Kubernetes Events (`events.k8s.io/v1`) about what the controller did, regarding its own Pod:
//! `kubectl describe pod` and `kubectl get events` show applied and refused commits and drift
//! beside the pod's own events. Publishing never holds up the controller: each Event is sent in
//! the background, and a failure is logged, not retried.
//!
//! The same reason with the same note again (a failure that persists, a commit refused at every
//! re-apply) is one Event whose count grows (an `EventSeries`); a different note is a new Event.
//! kube's recorder groups by reason alone and would keep the first note, hiding a new cause.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tracing::warn;

/// The reporting controller's name on every Event.
const CONTROLLER: &str = "hydrant-controller";

/// An Event's note is at most 1 kB (the API refuses longer ones).
const MAX_NOTE: usize = 1024;

/// How long one Event may take to publish before it is given up.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// The Pod the Events are about.
#[derive(Clone, Debug)]
pub struct Regarding {
    /// The Pod's namespace.
    pub namespace: String,
    /// The Pod's name.
    pub name: String,
    /// The Pod's uid: `kubectl describe pod` finds Events by it.
    pub uid: Option<String>,
}

/// Publishes the controller's Events.
pub struct Events {
    client: kube::Client,
    reporter: Reporter,
    pod: ObjectReference,
    /// Per reason, the last note and the recorder that published it: the same note again goes
    /// through that recorder, which counts it in the first Event's series.
    last: Mutex<HashMap<Reason, (String, Recorder)>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("pod", &self.pod)
            .finish_non_exhaustive()
    }
}

/// Why an Event is published; its reason, type and action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A commit (or a change of namespaces) is now in Vault.
    Applied,
    /// A commit broke a rule or could not be read: nothing of it is applied.
    CommitRefused,
    /// The plan deletes more than `max_deletions`: nothing is applied.
    TooManyDeletions,
    /// Vault differed from the applied commit and was put back.
    DriftCorrected,
    /// Vault differs from the applied commit; report mode leaves it.
    DriftFound,
    /// Fetching the remote failed; the last applied commit stays.
    FetchFailed,
    /// Vault refused or failed the apply; retried at the next interval.
    ApplyFailed,
}

impl Reason {
    fn name(self) -> &'static str {
        match self {
            Reason::Applied => "Applied",
            Reason::CommitRefused => "CommitRefused",
            Reason::TooManyDeletions => "TooManyDeletions",
            Reason::DriftCorrected => "DriftCorrected",
            Reason::DriftFound => "DriftFound",
            Reason::FetchFailed => "FetchFailed",
            Reason::ApplyFailed => "ApplyFailed",
        }
    }

    fn event_type(self) -> EventType {
        match self {
            Reason::Applied | Reason::DriftCorrected => EventType::Normal,
            _ => EventType::Warning,
        }
    }

    fn action(self) -> &'static str {
        match self {
            Reason::FetchFailed => "Fetch",
            Reason::DriftCorrected | Reason::DriftFound => "CompareWithVault",
            _ => "Apply",
        }
    }
}

impl Events {
    /// Events regarding `pod`, published through `client`.
    pub fn new(client: kube::Client, pod: &Regarding) -> Events {
        let reporter = Reporter {
            controller: CONTROLLER.to_owned(),
            instance: Some(pod.name.clone()),
        };
        Events {
            last: Mutex::default(),
            client,
            reporter,
            pod: ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                namespace: Some(pod.namespace.clone()),
                name: Some(pod.name.clone()),
                uid: pod.uid.clone(),
                ..ObjectReference::default()
            },
        }
    }

    /// Publishes an Event in the background; `note` is cut to the API's 1 kB.
    pub fn publish(&self, reason: Reason, note: &str) {
        let note = truncate(note, MAX_NOTE).into_owned();
        let recorder = {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            match last.get(&reason) {
                Some((previous, recorder)) if *previous == note => recorder.clone(),
                _ => {
                    // A fresh recorder has no cache: its first Event is a new one.
                    let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
                    last.insert(reason, (note.clone(), recorder.clone()));
                    recorder
                }
            }
        };
        let event = Event {
            type_: reason.event_type(),
            reason: reason.name().to_owned(),
            note: Some(note),
            action: reason.action().to_owned(),
            secondary: None,
        };
        let pod = self.pod.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(PUBLISH_TIMEOUT, recorder.publish(&event, &pod)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(reason = %event.reason, error = %e, "cannot publish the Event"),
                Err(_) => warn!(reason = %event.reason, "publishing the Event timed out"),
            }
        });
    }
}

/// `text` cut to at most `max` bytes at a character boundary, marked with `…` when cut.
fn truncate(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end]).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_to_the_api_limit_at_a_character_boundary() {
        assert_eq!(truncate("short", 1024), "short");
        let long = "é".repeat(600);
        let cut = truncate(&long, MAX_NOTE);
        assert!(cut.len() <= MAX_NOTE, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert!(cut.starts_with("éé"));
    }

    #[test]
    fn outcomes_are_normal_and_problems_warnings() {
        assert_eq!(Reason::Applied.event_type(), EventType::Normal);
        assert_eq!(Reason::DriftCorrected.event_type(), EventType::Normal);
        assert_eq!(Reason::TooManyDeletions.event_type(), EventType::Warning);
        assert_eq!(Reason::CommitRefused.event_type(), EventType::Warning);
    }
}
