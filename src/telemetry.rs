//! Logging: `tracing` to stderr, filtered by `HYDRANT_LOG`, as plain lines or JSON.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::env::{Env, HYDRANT_LOG, HYDRANT_LOG_FORMAT, non_empty};

/// The filter when `HYDRANT_LOG` is unset.
const DEFAULT_FILTER: &str = "info";

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

/// Parses `HYDRANT_LOG_FORMAT`.
pub fn parse_format(value: Option<&str>) -> Result<LogFormat, Error> {
    match value.map(str::trim) {
        None | Some("") => Ok(LogFormat::Plain),
        Some(v) if v.eq_ignore_ascii_case("plain") || v.eq_ignore_ascii_case("text") => {
            Ok(LogFormat::Plain)
        }
        Some(v) if v.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
        Some(v) => Err(Error::Format(v.to_owned())),
    }
}

/// Parses `HYDRANT_LOG`.
pub fn parse_filter(value: Option<&str>) -> Result<EnvFilter, Error> {
    let value = value.map(str::trim).filter(|v| !v.is_empty());
    let text = value.unwrap_or(DEFAULT_FILTER);
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
