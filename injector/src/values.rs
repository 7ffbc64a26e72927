//! Values people write, parsed: booleans as vault-k8s reads them, Kubernetes quantities, lists
//! and IDs in annotations, and the [`Duration`] and [`FileMode`] of the agent configuration and
//! the command line. Each parser is a small pure function; errors say what a valid value looks
//! like.

use std::fmt;
use std::time;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Parses a boolean the way vault-k8s does (Go's `strconv.ParseBool`): `1 t T TRUE true True` and
/// `0 f F FALSE false False`; the empty string is false.
pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "" | "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        other => Err(format!(
            "{other:?} is not a boolean; use \"true\" or \"false\""
        )),
    }
}

/// Checks a Kubernetes resource quantity (`250m`, `64Mi`, `1.5`, `1e3`) and returns it trimmed.
/// Negative values are refused: they are never valid requests or limits.
pub fn parse_quantity(value: &str) -> Result<String, String> {
    let text = value.trim();
    let invalid =
        || format!("{value:?} is not a Kubernetes quantity such as 250m, 0.5, 64Mi or 1Gi");
    let unsigned = text.strip_prefix('+').unwrap_or(text);
    if unsigned.starts_with('-') {
        return Err(format!(
            "{value:?} is negative; a request or limit is 0 or more"
        ));
    }
    let number_len = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_len);
    let valid_number = !number.is_empty() && number != "." && number.matches('.').count() <= 1;
    let valid_suffix = match suffix {
        "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => true,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => true,
        exp if exp.starts_with(['e', 'E']) => {
            let digits = exp[1..].strip_prefix(['+', '-']).unwrap_or(&exp[1..]);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    };
    if valid_number && valid_suffix {
        Ok(text.to_owned())
    } else {
        Err(invalid())
    }
}

/// Parses a log level as vault-k8s and hydrant spell them (`trace`, `debug`, `info`, `warn` or
/// `warning`, `err` or `error`, any case) into the one `HYDRANT_LOG` takes; empty is `info`.
pub fn parse_log_level(value: &str) -> Result<&'static str, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "trace" => Ok("trace"),
        "debug" => Ok("debug"),
        "info" | "" => Ok("info"),
        "warn" | "warning" => Ok("warn"),
        "err" | "error" => Ok("error"),
        other => Err(format!(
            "{other:?} is not a log level; use trace, debug, info, warn or error"
        )),
    }
}

/// Parses a log format as vault-k8s and hydrant spell them (`standard` or `plain`, `json`, any
/// case) into the one `HYDRANT_LOG_FORMAT` takes; empty is `plain`.
pub fn parse_log_format(value: &str) -> Result<&'static str, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "standard" | "plain" | "" => Ok("plain"),
        "json" => Ok("json"),
        other => Err(format!(
            "{other:?} is not a log format; use standard or json"
        )),
    }
}

/// An auth mount as vault-k8s's `auth-path` takes it: with or without `auth/` and slashes
/// (`auth/kubernetes`, `/kubernetes/` and `kubernetes` are one mount); `None` when empty.
pub fn auth_mount(value: &str) -> Option<String> {
    let mount = value.trim().trim_matches('/');
    let mount = mount
        .strip_prefix("auth/")
        .unwrap_or(mount)
        .trim_matches('/');
    (!mount.is_empty()).then(|| mount.to_owned())
}

/// Checks Vault's address: an `http://` or `https://` URL with a host, such as
/// `https://vault.vault.svc:8200`; returned trimmed.
pub fn vault_address(value: &str) -> Result<String, String> {
    let address = value.trim();
    let rest = address
        .strip_prefix("https://")
        .or_else(|| address.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with(['/', ':']) => Ok(address.to_owned()),
        Some(_) => Err(format!(
            "{value:?} names no host; write it like https://vault.vault.svc:8200"
        )),
        None => Err(format!(
            "{value:?} has no scheme; write https://{} (or http:// for a Vault without TLS)",
            address.split("://").last().unwrap_or(address)
        )),
    }
}

/// The amount a quantity [`parse_quantity`] accepts stands for, in billionths of its unit
/// (`250m` is 250,000,000; `1Ki` is 1,024,000,000,000), so that two quantities compare exactly
/// whatever their suffixes. Digits past the billionth are dropped; an amount past `u128`
/// saturates. `None` for what is not a quantity.
pub fn quantity_nanos(value: &str) -> Option<u128> {
    let text = parse_quantity(value).ok()?;
    let unsigned = text.strip_prefix('+').unwrap_or(&text);
    let number_len = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits: String = [whole, fraction].concat();
    // The amount is digits × 10^(exponent) × 2^(binary), in billionths.
    let (exponent, binary): (i32, u32) = match suffix {
        "" => (0, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        exp => (exp[1..].parse::<i32>().ok()?.clamp(-64, 64), 0),
    };
    let exponent = exponent + 9 - i32::try_from(fraction.len()).ok()?;
    let mut amount: u128 = 0;
    for digit in digits.bytes() {
        amount = amount
            .saturating_mul(10)
            .saturating_add(u128::from(digit - b'0'));
    }
    amount = amount.saturating_mul(1u128 << binary);
    if exponent >= 0 {
        for _ in 0..exponent {
            amount = amount.saturating_mul(10);
        }
    } else {
        for _ in 0..-exponent {
            amount /= 10;
        }
    }
    Some(amount)
}

/// Parses a comma-separated list, trimming each item and dropping empty ones.
pub fn parse_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses a user or group ID.
pub fn parse_id(value: &str) -> Result<i64, String> {
    value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| format!("{value:?} is not a user or group ID (a number, 0 or more)"))
}

/// A span of time written the way people write it: `90s`, `2m`, `1h30m`; a bare number is seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub time::Duration);

impl Duration {
    /// Parses `2m`, `1h 30m`, `500ms` or a number of seconds.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty duration; write it like 90s, 2m or 1h".to_owned());
        }
        if let Ok(secs) = text.parse::<u64>() {
            return Ok(Duration(time::Duration::from_secs(secs)));
        }
        humantime::parse_duration(text)
            .map(Duration)
            .map_err(|e| format!("invalid duration {text:?} ({e}); write it like 90s, 2m or 1h"))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 90s, 2m or 1h, or a number of seconds")
            }
            fn visit_u64<E: serde::de::Error>(self, secs: u64) -> Result<Duration, E> {
                Ok(Duration(time::Duration::from_secs(secs)))
            }
            fn visit_i64<E: serde::de::Error>(self, secs: i64) -> Result<Duration, E> {
                u64::try_from(secs)
                    .map(|secs| Duration(time::Duration::from_secs(secs)))
                    .map_err(|_| {
                        E::custom(format!(
                            "{secs} is negative; a duration is 0 or more, such as 90s"
                        ))
                    })
            }
            fn visit_f64<E: serde::de::Error>(self, secs: f64) -> Result<Duration, E> {
                time::Duration::try_from_secs_f64(secs)
                    .map(Duration)
                    .map_err(|_| {
                        E::custom(format!(
                            "{secs} is not a duration; write it like 90s, 2m or 1h"
                        ))
                    })
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Duration, E> {
                Duration::parse(text).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A file mode written as an octal string, `"0640"`. Numbers are refused: YAML reads an unquoted
/// `0640` as decimal 640, which would silently give the wrong mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl FileMode {
    /// Parses `"0640"`, `"640"` or `"0o640"`; only permission bits (at most `0777`).
    pub fn parse(text: &str) -> Result<FileMode, String> {
        let digits = text.trim();
        let digits = digits.strip_prefix("0o").unwrap_or(digits);
        let valid = !digits.is_empty()
            && digits.len() <= 4
            && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
        match u32::from_str_radix(digits, 8) {
            Ok(mode) if valid && mode <= 0o777 => Ok(FileMode(mode)),
            _ => Err(format!(
                "invalid file mode {text:?}; write it as a quoted octal string such as \"0640\""
            )),
        }
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for FileMode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = FileMode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quoted octal file mode such as \"0640\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FileMode, E> {
                FileMode::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_compare_exactly_whatever_their_suffixes() {
        let cases = [
            ("250m", 250_000_000u128),
            ("0.25", 250_000_000),
            ("1", 1_000_000_000),
            ("1k", 1_000_000_000_000),
            ("1e3", 1_000_000_000_000),
            ("1Ki", 1_024_000_000_000),
            ("64Mi", 64 * 1024 * 1024 * 1_000_000_000),
            ("0.5Gi", 512 * 1024 * 1024 * 1_000_000_000),
            ("1.5", 1_500_000_000),
            ("+2", 2_000_000_000),
            ("1e-3", 1_000_000),
            ("0.0000000001", 0),
        ];
        for (text, nanos) in cases {
            assert_eq!(quantity_nanos(text), Some(nanos), "{text}");
        }
        assert_eq!(quantity_nanos("100m"), quantity_nanos("0.1"));
        assert_eq!(quantity_nanos("1Gi"), quantity_nanos("1024Mi"));
        assert!(quantity_nanos("128M") < quantity_nanos("128Mi"));
        assert_eq!(quantity_nanos("9Ei"), quantity_nanos("9Ei"));
        assert_eq!(quantity_nanos("1e999"), Some(u128::MAX));
        assert_eq!(quantity_nanos("128mb"), None);
        assert_eq!(quantity_nanos(""), None);
    }

    #[test]
    fn auth_mounts_are_one_mount_with_or_without_auth_and_slashes() {
        for value in [
            "kubernetes",
            "auth/kubernetes",
            "/auth/kubernetes/",
            " kubernetes/ ",
        ] {
            assert_eq!(
                auth_mount(value).as_deref(),
                Some("kubernetes"),
                "{value:?}"
            );
        }
        assert_eq!(auth_mount("auth/k8s/prod").as_deref(), Some("k8s/prod"));
        assert_eq!(auth_mount(""), None);
    }

    #[test]
    fn vault_addresses_need_a_scheme_and_a_host() {
        assert_eq!(
            vault_address(" https://vault:8200 "),
            Ok("https://vault:8200".to_owned())
        );
        assert!(vault_address("http://127.0.0.1:8200").is_ok());
        let err = vault_address("vault:8200").expect_err("no scheme");
        assert!(
            err.contains("has no scheme; write https://vault:8200"),
            "{err}"
        );
        let err = vault_address("tcp://vault:8200").expect_err("other scheme");
        assert!(err.contains("has no scheme"), "{err}");
        assert!(vault_address("https://").is_err());
        assert!(vault_address("https://:8200").is_err());
    }

    #[test]
    fn booleans_follow_go_parse_bool() {
        for yes in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(yes), Ok(true), "{yes}");
        }
        for no in ["", "0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(no), Ok(false), "{no:?}");
        }
        for bad in ["tRuE", "yes", "on", " true", "2"] {
            assert!(parse_bool(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn quantities_follow_the_kubernetes_grammar() {
        let good = [
            "250m", "64Mi", "1", "0.5", ".5", "1.", "1Gi", "2k", "1e3", "1E-2", "+3", " 128Mi ",
            "0",
        ];
        for q in good {
            assert!(parse_quantity(q).is_ok(), "{q:?} should parse");
        }
        let bad = [
            "", "500mi", "128mb", "1.2.3", "Mi", ".", "-1", "1e", "12 Mi", "1KiB", "m",
        ];
        for q in bad {
            assert!(parse_quantity(q).is_err(), "{q:?} should not parse");
        }
        assert_eq!(parse_quantity(" 64Mi ").as_deref(), Ok("64Mi"));
    }

    #[test]
    fn lists_are_trimmed_and_empty_items_dropped() {
        assert_eq!(parse_list(" app , worker,,"), ["app", "worker"]);
        assert!(parse_list("").is_empty());
    }

    #[test]
    fn ids_are_non_negative_numbers() {
        assert_eq!(parse_id("1000"), Ok(1000));
        assert_eq!(parse_id(" 0 "), Ok(0));
        assert!(parse_id("-1").is_err());
        assert!(parse_id("root").is_err());
    }

    #[test]
    fn durations_parse_units_numbers_and_reject_garbage() {
        let s = time::Duration::from_secs;
        let cases: &[(&str, Option<time::Duration>)] = &[
            ("2m", Some(s(120))),
            ("90s", Some(s(90))),
            ("1h30m", Some(s(5400))),
            ("1h 30m", Some(s(5400))),
            ("500ms", Some(time::Duration::from_millis(500))),
            (" 45 ", Some(s(45))),
            ("0", Some(s(0))),
            ("", None),
            ("   ", None),
            ("2 minutes please", None),
            ("-5s", None),
            ("5x", None),
            ("99999999999999999999999h", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                Duration::parse(text).ok().map(|d| d.0),
                *want,
                "parsing {text:?}"
            );
        }
    }

    #[test]
    fn file_modes_parse_octal_strings_only() {
        let cases: &[(&str, Option<u32>)] = &[
            ("0640", Some(0o640)),
            ("640", Some(0o640)),
            ("0o600", Some(0o600)),
            ("0777", Some(0o777)),
            (" 0400 ", Some(0o400)),
            ("0000", Some(0)),
            ("4755", None),
            ("0800", None),
            ("rw-r-----", None),
            ("", None),
            ("07777", None),
            ("-644", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                FileMode::parse(text).ok().map(|m| m.0),
                *want,
                "parsing {text:?}"
            );
        }
        assert!(
            serde_json::from_str::<FileMode>("640").is_err(),
            "numbers are refused"
        );
        assert_eq!(FileMode(0o640).to_string(), "0640");
    }
}
