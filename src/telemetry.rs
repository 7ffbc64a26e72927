//! Logging: `tracing` to stderr, filtered by `HYDRANT_LOG`, as plain lines or JSON.

use std::io::IsTerminal as _;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

use crate::env::{Env, HYDRANT_LOG, HYDRANT_LOG_FORMAT, non_empty};

/// The filter when `HYDRANT_LOG` is unset.
const DEFAULT_FILTER: &str = "info";

/// The target of hydrant's own events (the library and the binary share the crate name): a
/// bare level applies to it alone.
const OWN_TARGET: &str = "hydrant";

/// The most other crates (hyper, reqwest, kube, rustls) log under a bare level: their debug lines
/// are noise to someone asking for hydrant's.
const OTHERS_AT_MOST: tracing::Level = tracing::Level::WARN;

/// Always added unless `HYDRANT_LOG` names these targets itself: vaultrs and rustify log every
/// Vault error response at error level (multi-line) before hydrant can say what it means, and
/// hydrant reports each failure itself.
const QUIET_TARGETS: [&str; 2] = ["vaultrs", "rustify"];

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// A log setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `HYDRANT_LOG_FORMAT` is neither `plain` nor `json`.
    #[error("{HYDRANT_LOG_FORMAT}={0:?} is not a log format; use plain or json")]
    Format(String),
    /// `HYDRANT_LOG` does not parse.
    #[error(
        "{HYDRANT_LOG}={value:?} is not a valid filter ({reason}); use a level such as info or debug, or target=level pairs"
    )]
    Filter {
        /// The value given.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
}

/// Parses `HYDRANT_LOG_FORMAT`: `plain` (also `text`, and vault-k8s's `standard`) or `json`.
pub fn parse_format(value: Option<&str>) -> Result<LogFormat, Error> {
    match value.map(str::trim) {
        None | Some("") => Ok(LogFormat::Plain),
        Some(v)
            if ["plain", "text", "standard"]
                .iter()
                .any(|p| v.eq_ignore_ascii_case(p)) =>
        {
            Ok(LogFormat::Plain)
        }
        Some(v) if v.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
        Some(v) => Err(Error::Format(v.to_owned())),
    }
}

/// A level as vault-k8s and Vault spell it (`warning`, `err`, any case), as `EnvFilter` spells
/// it; `None` for a word that is not a level.
fn level_alias(word: &str) -> Option<&'static str> {
    Some(match word.trim().to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        "err" | "error" => "error",
        "off" => "off",
        _ => return None,
    })
}

/// `HYDRANT_LOG` in `EnvFilter` syntax. A bare level (`debug`, `warning`, `err`) is for hydrant's
/// own events, other crates staying at warn at most; `EnvFilter` would take `warning` or `err`
/// for a target's name and turn every other line off. In target=level pairs the vault-k8s
/// spellings are accepted too; anything else is passed on as written.
pub fn normalise_filter(text: &str) -> String {
    if let Some(level) = level_alias(text) {
        let others = match level.parse::<tracing::level_filters::LevelFilter>() {
            Ok(filter) if filter > OTHERS_AT_MOST => OTHERS_AT_MOST.as_str().to_ascii_lowercase(),
            _ => level.to_owned(),
        };
        return format!("{others},{OWN_TARGET}={level}");
    }
    text.split(',')
        .map(|directive| match directive.rsplit_once('=') {
            Some((target, level)) => match level_alias(level) {
                Some(level) => format!("{target}={level}"),
                None => directive.to_owned(),
            },
            None => directive.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses `HYDRANT_LOG`.
pub fn parse_filter(value: Option<&str>) -> Result<EnvFilter, Error> {
    let value = value.map(str::trim).filter(|v| !v.is_empty());
    let text = normalise_filter(value.unwrap_or(DEFAULT_FILTER));
    let text = text.as_str();
    let mut filter = EnvFilter::builder()
        .parse(text)
        .map_err(|e| Error::Filter {
            value: value.unwrap_or_default().to_owned(),
            reason: e.to_string(),
        })?;
    for target in QUIET_TARGETS {
        if !text.contains(target)
            && let Ok(directive) = format!("{target}=off").parse()
        {
            filter = filter.add_directive(directive);
        }
    }
    Ok(filter)
}

/// A duration as seconds rounded to the millisecond, for log fields: `1.5`, not
/// `1.499999871`.
pub fn seconds(duration: Duration) -> f64 {
    // Far below f64's exact integer range for any pause hydrant takes.
    Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)).as_secs_f64()
}

/// Installs the global subscriber. Call once, first thing. Reports every bad variable.
pub fn init(env: &dyn Env) -> Result<(), Vec<Error>> {
    let format = parse_format(non_empty(env, HYDRANT_LOG_FORMAT).as_deref());
    let filter = parse_filter(non_empty(env, HYDRANT_LOG).as_deref());
    let (format, filter) = match (format, filter) {
        (Ok(format), Ok(filter)) => (format, filter),
        (format, filter) => {
            return Err([format.err(), filter.err()].into_iter().flatten().collect());
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Plain => builder
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_case_insensitively_and_default_to_plain() {
        let cases = [
            (None, Some(LogFormat::Plain)),
            (Some(""), Some(LogFormat::Plain)),
            (Some("plain"), Some(LogFormat::Plain)),
            (Some(" JSON "), Some(LogFormat::Json)),
            (Some("xml"), None),
        ];
        for (value, want) in cases {
            assert_eq!(parse_format(value).ok(), want, "{value:?}");
        }
        let message = parse_format(Some("xml")).expect_err("refused").to_string();
        assert_eq!(
            message,
            "HYDRANT_LOG_FORMAT=\"xml\" is not a log format; use plain or json"
        );
    }

    #[test]
    fn library_noise_is_off_unless_named() {
        let quiet = parse_filter(Some("trace")).expect("parses").to_string();
        assert!(
            quiet.contains("vaultrs=off") && quiet.contains("rustify=off"),
            "{quiet}"
        );
        let named = parse_filter(Some("trace,vaultrs=debug"))
            .expect("parses")
            .to_string();
        assert!(
            named.contains("vaultrs=debug") && !named.contains("vaultrs=off"),
            "{named}"
        );
    }

    #[test]
    fn every_bad_variable_is_reported() {
        let env: std::collections::HashMap<String, String> = [
            (HYDRANT_LOG_FORMAT.to_string(), "xml".to_string()),
            (HYDRANT_LOG.to_string(), "a=loud".to_string()),
        ]
        .into();
        let errors = init(&env).expect_err("both are bad");
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn a_bare_level_in_any_spelling_is_for_hydrants_own_events() {
        let cases = [
            ("info", "warn,hydrant=info"),
            ("DEBUG", "warn,hydrant=debug"),
            ("trace", "warn,hydrant=trace"),
            ("warning", "warn,hydrant=warn"),
            ("Warn", "warn,hydrant=warn"),
            ("err", "error,hydrant=error"),
            ("error", "error,hydrant=error"),
            ("off", "off,hydrant=off"),
            ("hydrant=debug,hyper=warning", "hydrant=debug,hyper=warn"),
            ("hydrant::agent=err,info", "hydrant::agent=error,info"),
            ("hydrant=loud", "hydrant=loud"),
        ];
        for (value, want) in cases {
            assert_eq!(normalise_filter(value), want, "{value}");
        }
    }

    #[test]
    fn warning_and_err_keep_warnings_and_errors_and_drop_info() {
        use tracing::level_filters::LevelFilter;
        for value in ["warning", "err", "WARNING"] {
            let filter = parse_filter(Some(value)).expect("parses");
            assert!(
                filter.max_level_hint() >= Some(LevelFilter::ERROR),
                "{value}: {filter}"
            );
            assert!(
                filter.max_level_hint() <= Some(LevelFilter::WARN),
                "{value}: {filter}"
            );
        }
    }

    #[test]
    fn log_seconds_are_rounded_to_the_millisecond() {
        assert_eq!(seconds(Duration::from_nanos(1_499_999_871)), 1.499);
        assert_eq!(seconds(Duration::from_millis(250)), 0.25);
        assert_eq!(seconds(Duration::ZERO), 0.0);
    }

    #[test]
    fn vault_k8s_standard_format_is_plain() {
        assert_eq!(parse_format(Some("standard")).ok(), Some(LogFormat::Plain));
    }

    #[test]
    fn filters_parse_and_bad_ones_are_named() {
        assert!(parse_filter(None).is_ok());
        assert!(parse_filter(Some("hydrant=trace,warn")).is_ok());
        let message = parse_filter(Some("hydrant=loud"))
            .expect_err("refused")
            .to_string();
        assert!(
            message.starts_with("HYDRANT_LOG=\"hydrant=loud\" is not a valid filter"),
            "{message}"
        );
    }
}
