//! Parsers of annotation values: booleans as vault-k8s reads them, Kubernetes quantities, lists
//! and IDs. Each is a small pure function; errors say what a valid value looks like.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
