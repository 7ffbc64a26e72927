//! Prometheus exposition shared by the webhook, the agent and the controller: one registry per
//! subcommand with `hydrant_build_info` and the process metrics, and `/metrics` answered in
//! OpenMetrics or, to a client that prefers it (promtool, Prometheus told to), the text format
//! 0.0.4.

use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The content type of OpenMetrics 1.0.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of Prometheus's text format 0.0.4.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A registry holding `hydrant_build_info` and the `process_*` metrics; a subcommand registers
/// its own under `sub_registry_with_prefix("hydrant_<subcommand>")`.
pub fn registry() -> Registry {
    let mut registry = Registry::default();
    registry.register(
        "hydrant_build",
        "hydrant's version and the commit it was built from; the value is 1",
        Info::new(vec![
            ("version", env!("CARGO_PKG_VERSION")),
            ("revision", env!("HYDRANT_REVISION")),
        ]),
    );
    registry.register_collector(Box::new(Process));
    registry
}

/// The `/metrics` answer for a request with these headers.
pub fn respond(headers: &HeaderMap, registry: &Registry) -> Response {
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if prefers_prometheus_text(accept) {
        (
            [(header::CONTENT_TYPE, PROMETHEUS_TEXT)],
            prometheus_text(&text),
        )
            .into_response()
    } else {
        ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response()
    }
}

/// Whether an `Accept` header ranks `text/plain` (0.0.4) above OpenMetrics. Without a preference
/// (no header, `*/*`), OpenMetrics.
pub fn prefers_prometheus_text(accept: &str) -> bool {
    let mut openmetrics = 0.0_f32;
    let mut text = 0.0_f32;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut q = 1.0_f32;
        let mut version = None;
        for parameter in parts {
            match parameter.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                Some(("q", v)) => q = v.parse().unwrap_or(0.0),
                Some(("version", v)) => version = Some(v.to_owned()),
                _ => {}
            }
        }
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(q),
            "text/plain" if version.as_deref().is_none_or(|v| v == "0.0.4") => text = text.max(q),
            _ => {}
        }
    }
    text > openmetrics
}

/// OpenMetrics text as the text format 0.0.4: a counter's family is named after its `_total`
/// samples, an info metric is a gauge named `<name>_info`, `unknown` is `untyped`, and `# UNIT`,
/// `# EOF` and `_created` samples (which 0.0.4 does not have) are left out.
pub fn prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // (family, its name in 0.0.4) of the family being written.
    let mut renamed: Option<(String, String)> = None;
    let mut counter = false;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            // HELP comes before TYPE; the type is looked up on the TYPE line that follows.
            let kind = type_of(openmetrics, name);
            counter = kind == "counter";
            let new = match kind {
                "counter" => format!("{name}_total"),
                "info" => format!("{name}_info"),
                _ => name.to_owned(),
            };
            out.push_str(&format!("# HELP {new} {}\n", unescape_help(help)));
            renamed = Some((name.to_owned(), new));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let new = match &renamed {
                Some((family, new)) if family == name => new.clone(),
                _ => name.to_owned(),
            };
            let kind = match kind {
                "info" => "gauge",
                "unknown" => "untyped",
                other => other,
            };
            out.push_str(&format!("# TYPE {new} {kind}\n"));
            continue;
        }
        if counter {
            let name = line.split(['{', ' ']).next().unwrap_or("");
            if name.ends_with("_created") {
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The declared type of a family, from its `# TYPE` line.
fn type_of<'a>(text: &'a str, family: &str) -> &'a str {
    let prefix = format!("# TYPE {family} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or("")
}

/// OpenMetrics escapes `"` in HELP; 0.0.4 escapes only `\` and newlines.
fn unescape_help(help: &str) -> String {
    help.replace("\\\"", "\"")
}

/// The standard `process_*` metrics of this process, read from `/proc` at each scrape (absent
/// where there is no `/proc`).
#[derive(Debug)]
struct Process;

/// What `/proc/self` says, in the units the metrics use.
#[derive(Debug, Default, PartialEq)]
struct ProcessFacts {
    cpu_seconds: f64,
    resident_bytes: i64,
    virtual_bytes: i64,
    threads: i64,
    start_time_seconds: f64,
    open_fds: Option<i64>,
    max_fds: Option<i64>,
}

/// Parses `/proc/self/stat` (after the command name, which may hold spaces and parentheses) and
/// the boot time from `/proc/stat`.
fn parse_stat(stat: &str, boot_time: f64, ticks: f64, page_size: i64) -> Option<ProcessFacts> {
    let after = &stat[stat.rfind(')')? + 2..];
    // Fields from the third (state) on: utime is the 14th field, so index 11 here.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    Some(ProcessFacts {
        cpu_seconds: (field(14)? + field(15)?) / ticks,
        threads: field(20)? as i64,
        start_time_seconds: boot_time + field(22)? / ticks,
        virtual_bytes: field(23)? as i64,
        resident_bytes: field(24)? as i64 * page_size,
        open_fds: None,
        max_fds: None,
    })
}

fn boot_time(proc_stat: &str) -> Option<f64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn max_fds(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn read_process() -> Option<ProcessFacts> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot = boot_time(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let page = i64::try_from(rustix::param::page_size()).unwrap_or(4096);
    let mut facts = parse_stat(&stat, boot, ticks, page)?;
    facts.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| i64::try_from(d.count()).unwrap_or(i64::MAX));
    facts.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .as_deref()
        .and_then(max_fds);
    Some(facts)
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(facts) = read_process() else {
            return Ok(());
        };
        let counter = ConstCounter::new(facts.cpu_seconds);
        counter.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            counter.metric_type(),
        )?)?;
        let mut gauge = |name: &str, help: &str, value: i64| -> Result<(), std::fmt::Error> {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
        };
        gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            facts.resident_bytes,
        )?;
        gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            facts.virtual_bytes,
        )?;
        gauge("process_threads", "Number of OS threads", facts.threads)?;
        if let Some(open) = facts.open_fds {
            gauge("process_open_fds", "Number of open file descriptors", open)?;
        }
        if let Some(max) = facts.max_fds {
            gauge(
                "process_max_fds",
                "Maximum number of open file descriptors",
                max,
            )?;
        }
        let start = ConstGauge::new(facts.start_time_seconds);
        start.encode(encoder.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            None,
            start.metric_type(),
        )?)
    }
}

/// Unix time of `at` (a `tokio::time::Instant`), in seconds, for timestamp gauges.
pub fn unix_seconds(at: tokio::time::Instant) -> f64 {
    let now = tokio::time::Instant::now();
    let wall = if at >= now {
        std::time::SystemTime::now() + (at - now)
    } else {
        std::time::SystemTime::now() - (now - at)
    };
    wall.duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_choose_the_format() {
        let cases = [
            ("", false),
            ("*/*", false),
            ("text/plain", true),
            ("text/plain;version=0.0.4", true),
            ("text/plain; version=1.0.0", false),
            ("application/openmetrics-text", false),
            // Prometheus's default: OpenMetrics first.
            (
                "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
                false,
            ),
            // Prometheus with scrape_protocols: [PrometheusText0.0.4, OpenMetricsText1.0.0].
            (
                "text/plain;version=0.0.4;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,*/*;q=0.3",
                true,
            ),
        ];
        for (accept, want) in cases {
            assert_eq!(prefers_prometheus_text(accept), want, "{accept}");
        }
    }

    #[test]
    fn openmetrics_becomes_text_0_0_4() {
        let openmetrics = "\
# HELP hydrant_build hydrant's \\\"version\\\".
# TYPE hydrant_build info
hydrant_build_info{version=\"0.1.0\"} 1
# HELP hydrant_webhook_requests Requests.
# TYPE hydrant_webhook_requests counter
hydrant_webhook_requests_total{result=\"ok\"} 2
hydrant_webhook_requests_created{result=\"ok\"} 1700000000.0
# HELP hydrant_webhook_size Size.
# TYPE hydrant_webhook_size gauge
# UNIT hydrant_webhook_size bytes
hydrant_webhook_size 5
# EOF
";
        let want = "\
# HELP hydrant_build_info hydrant's \"version\".
# TYPE hydrant_build_info gauge
hydrant_build_info{version=\"0.1.0\"} 1
# HELP hydrant_webhook_requests_total Requests.
# TYPE hydrant_webhook_requests_total counter
hydrant_webhook_requests_total{result=\"ok\"} 2
# HELP hydrant_webhook_size Size.
# TYPE hydrant_webhook_size gauge
hydrant_webhook_size 5
";
        assert_eq!(prometheus_text(openmetrics), want);
    }

    #[test]
    fn proc_stat_is_read_past_a_command_name_with_spaces() {
        let stat = "4242 (hydrant (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 150 50 0 0 20 0 7 0 12000 104857600 2560 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let facts = parse_stat(stat, 1_700_000_000.0, 100.0, 4096).expect("parses");
        assert_eq!(
            facts,
            ProcessFacts {
                cpu_seconds: 2.0,
                resident_bytes: 2560 * 4096,
                virtual_bytes: 104_857_600,
                threads: 7,
                start_time_seconds: 1_700_000_120.0,
                open_fds: None,
                max_fds: None,
            }
        );
        assert_eq!(
            boot_time("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000.0)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(max_fds(limits), Some(1024));
    }

    #[test]
    fn the_registry_has_build_info_and_process_metrics() {
        let registry = registry();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains(&format!(
                "hydrant_build_info{{version=\"{}\",revision=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION"),
                env!("HYDRANT_REVISION")
            )),
            "{text}"
        );
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(name), "{name} in {text}");
        }
    }
}
