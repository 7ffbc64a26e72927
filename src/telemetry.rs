//! Logging: `tracing` to stderr, filtered by `HYDRANT_LOG`, as plain lines or JSON.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::env::{Env, HYDRANT_LOG, HYDRANT_LOG_FORMAT, non_empty};

/// The filter when `HYDRANT_LOG` is unset. vaultrs and rustify log every Vault error response at
/// error level before hydrant has a chance to say what it means; hydrant reports them itself.
const DEFAULT_FILTER: &str = "info,vaultrs=off,rustify=off";

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
    EnvFilter::builder()
        .parse(value.unwrap_or(DEFAULT_FILTER))
        .map_err(|e| Error::Filter {
            value: value.unwrap_or_default().to_owned(),
            reason: e.to_string(),
        })
}

/// Installs the global subscriber. Call once, first thing.
pub fn init(env: &dyn Env) -> Result<(), Error> {
    let format = parse_format(non_empty(env, HYDRANT_LOG_FORMAT).as_deref())?;
    let filter = parse_filter(non_empty(env, HYDRANT_LOG).as_deref())?;
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
