//! The webhook's Prometheus metrics, prefixed `hydrant_webhook_` (beside `hydrant_build_info` and
//! the process metrics). Labels are fixed strings, every one present at zero from the start.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use injector::Reason;

use super::review::Outcome;

/// Every result of a request to /mutate.
const RESULTS: [&str; 5] = ["patched", "allowed", "denied", "invalid", "busy"];

/// Every kind of denial.
const REASONS: [Reason; 12] = [
    Reason::BadAnnotation,
    Reason::UnsupportedAnnotation,
    Reason::MixedFamilies,
    Reason::ExcludedNamespace,
    Reason::InvalidTemplate,
    Reason::InvalidConfig,
    Reason::MissingAnnotation,
    Reason::Conflict,
    Reason::NoSpec,
    Reason::TooLarge,
    Reason::Internal,
    Reason::UnknownCommand,
];

// Stops compiling when the injector gains a kind of denial, so that REASONS gets it too.
const _: fn(Reason) = |reason| match reason {
    Reason::BadAnnotation
    | Reason::UnsupportedAnnotation
    | Reason::MixedFamilies
    | Reason::ExcludedNamespace
    | Reason::InvalidTemplate
    | Reason::InvalidConfig
    | Reason::MissingAnnotation
    | Reason::Conflict
    | Reason::NoSpec
    | Reason::TooLarge
    | Reason::Internal
    | Reason::UnknownCommand => {}
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Requests by result, denials by reason, latency.
pub struct Metrics {
    registry: Registry,
    requests: Family<ResultLabel, Counter>,
    denials: Family<ReasonLabel, Counter>,
    duration: Histogram,
    reloads: Counter,
    accept_errors: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Metrics {
        let mut root = crate::metrics::registry();
        let registry = root.sub_registry_with_prefix("hydrant_webhook");
        let requests = Family::<ResultLabel, Counter>::default();
        let denials = Family::<ReasonLabel, Counter>::default();
        for result in RESULTS {
            drop(requests.get_or_create(&ResultLabel { result }));
        }
        for reason in REASONS {
            drop(denials.get_or_create(&ReasonLabel {
                reason: reason.label(),
            }));
        }
        // 50 µs to about 1.6 s.
        let duration = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "requests",
            "Requests to /mutate answered, by result (patched, allowed, denied, invalid; busy: refused 503 because the body budget was spent)",
            requests.clone(),
        );
        registry.register("denials", "Pods refused, by reason", denials.clone());
        registry.register(
            "request_duration_seconds",
            "Time to answer one admission review",
            duration.clone(),
        );
        let reloads = Counter::default();
        registry.register(
            "certificate_reads",
            "Times the serving certificate files were read again (changed or not)",
            reloads.clone(),
        );
        let accept_errors = Counter::default();
        registry.register(
            "accept_errors",
            "Connections that could not be accepted (such as too many open files)",
            accept_errors.clone(),
        );
        Metrics {
            registry: root,
            requests,
            denials,
            duration,
            reloads,
            accept_errors,
        }
    }

    /// Counts one answered review.
    pub fn answered(&self, outcome: &Outcome, seconds: f64) {
        self.requests
            .get_or_create(&ResultLabel {
                result: outcome.label(),
            })
            .inc();
        if let Outcome::Denied(reason) = outcome {
            self.denials.get_or_create(&ReasonLabel { reason }).inc();
        }
        self.duration.observe(seconds);
    }

    /// Counts one read of the certificate files.
    pub fn certificate_read(&self) {
        self.reloads.inc();
    }

    /// Counts a body that was not an AdmissionReview.
    pub fn invalid(&self) {
        self.requests
            .get_or_create(&ResultLabel { result: "invalid" })
            .inc();
    }

    /// Counts a request refused because the in-flight body budget was spent.
    pub fn busy(&self) {
        self.requests
            .get_or_create(&ResultLabel { result: "busy" })
            .inc();
    }

    /// Counts a failed accept.
    pub fn accept_failed(&self) {
        self.accept_errors.inc();
    }

    /// The `/metrics` answer, in the format the request's `Accept` header prefers.
    pub fn respond(&self, headers: &axum::http::HeaderMap) -> axum::response::Response {
        crate::metrics::respond(headers, &self.registry)
    }
}
