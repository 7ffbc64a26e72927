//! Sprig's date functions (`date.go`): a time is a Go `time.Time` carried as the text Go
//! prints for it (see `values::time`), so `{{ now }}` prints as Go prints it.
//!
//! Sprig reads its `interface{}` arguments by Go type: `date` takes a time or an `int` (seconds
//! since the epoch) and anything else means now; `duration` reads a `string` or an `int64` and
//! `durationRound` a `string`, an `int64` or a time, anything else as 0. A template's literal
//! number is an `int` for Go, so hydrant reads every integer as an `int` (`sprig_duration 90`
//! is `0s` in both).

use gotmpl::Value;

use super::super::Function;
use super::super::go::{arity, fail, string, type_name};
use super::super::time::{self, GoTime, Zone};
use super::text;
use crate::template::consul::values;

/// The date functions, without the `sprig_` prefix.
pub(in crate::template::consul::helpers) const DATES: &[(&str, Function)] = &[
    ("now", |a| {
        arity("now", a, 0)?;
        Ok(values::time(GoTime::now()))
    }),
    ("date", |a| {
        arity("date", a, 2)?;
        let layout = layout("date", &a[0])?;
        Ok(text(&when(&a[1]).in_zone(Zone::Local).format(layout)))
    }),
    ("dateInZone", |a| date_in_zone("dateInZone", a)),
    ("date_in_zone", |a| date_in_zone("date_in_zone", a)),
    ("htmlDate", |a| {
        arity("htmlDate", a, 1)?;
        Ok(text(&when(&a[0]).in_zone(Zone::Local).format("2006-01-02")))
    }),
    ("htmlDateInZone", |a| {
        arity("htmlDateInZone", a, 2)?;
        let zone = Zone::load(string("htmlDateInZone", &a[1])?);
        Ok(text(&when(&a[0]).in_zone(zone).format("2006-01-02")))
    }),
    ("dateModify", |a| date_modify("dateModify", a, false)),
    ("date_modify", |a| date_modify("date_modify", a, false)),
    ("mustDateModify", |a| date_modify("mustDateModify", a, true)),
    ("must_date_modify", |a| {
        date_modify("must_date_modify", a, true)
    }),
    ("toDate", |a| to_date("toDate", a, false)),
    ("mustToDate", |a| to_date("mustToDate", a, true)),
    ("unixEpoch", |a| {
        arity("unixEpoch", a, 1)?;
        Ok(text(&go_time("unixEpoch", &a[0])?.seconds.to_string()))
    }),
    ("ago", |a| {
        arity("ago", a, 1)?;
        let t = match &a[0] {
            Value::String(s) => values::time_of(s),
            Value::Int(seconds) => Some(GoTime::unix(*seconds)),
            _ => None,
        };
        let since = t.map_or(0, |t| t.since());
        Ok(text(&time::format_duration(round_to_second(since))))
    }),
    ("duration", |a| {
        arity("duration", a, 1)?;
        let seconds = match &a[0] {
            Value::String(s) if is_plain(s) => parse_int(s),
            _ => 0,
        };
        Ok(text(&time::format_duration(
            seconds.wrapping_mul(1_000_000_000),
        )))
    }),
    ("durationRound", |a| {
        arity("durationRound", a, 1)?;
        let nanos = match &a[0] {
            Value::String(s) => match values::time_of(s) {
                Some(t) => t.since(),
                None if is_plain(s) => time::parse_duration(s).unwrap_or(0),
                None => 0,
            },
            _ => 0,
        };
        Ok(text(&round_duration(nanos)))
    }),
];

/// A layout argument: a `string` no longer than a layout need be.
fn layout<'a>(function: &str, value: &'a Value) -> gotmpl::Result<&'a str> {
    let layout = string(function, value)?;
    if layout.len() > 1024 {
        return Err(fail(function, "the layout is too long"));
    }
    Ok(layout)
}

/// A `time.Time` parameter.
fn go_time(function: &str, value: &Value) -> gotmpl::Result<GoTime> {
    match value {
        Value::String(s) if let Some(t) = values::time_of(s) => Ok(t),
        other => Err(fail(
            function,
            format!(
                "wrong type for value; expected time.Time; got {}",
                type_name(other)
            ),
        )),
    }
}

/// Sprig's reading of a date argument: a time, an `int` as seconds since the epoch, anything
/// else now.
fn when(value: &Value) -> GoTime {
    match value {
        Value::String(s) => values::time_of(s).unwrap_or_else(GoTime::now),
        Value::Int(seconds) => GoTime::unix(*seconds),
        _ => GoTime::now(),
    }
}

/// A Go `string`, not a `json.Number`, a float or a time carried as text.
fn is_plain(s: &std::sync::Arc<str>) -> bool {
    string("", &Value::String(s.clone())).is_ok()
}

fn date_in_zone(function: &str, args: &[Value]) -> gotmpl::Result<Value> {
    arity(function, args, 3)?;
    let layout = layout(function, &args[0])?;
    let zone = Zone::load(string(function, &args[2])?);
    Ok(text(&when(&args[1]).in_zone(zone).format(layout)))
}

/// `dateModify DURATION TIME`: the time moved; a bad duration leaves it as it was (the `must`
/// form fails).
fn date_modify(function: &str, args: &[Value], must: bool) -> gotmpl::Result<Value> {
    arity(function, args, 2)?;
    let duration = string(function, &args[0])?;
    let t = go_time(function, &args[1])?;
    match time::parse_duration(duration) {
        Some(nanos) => Ok(values::time(t.add(nanos))),
        None if must => Err(fail(function, "the duration is not one Go reads")),
        None => Ok(args[1].clone()),
    }
}

/// `toDate LAYOUT TEXT`: the time in the local zone; Go's zero time when the text does not
/// match (the `must` form fails).
fn to_date(function: &str, args: &[Value], must: bool) -> gotmpl::Result<Value> {
    arity(function, args, 2)?;
    let layout = layout(function, &args[0])?;
    let value = string(function, &args[1])?;
    match time::parse_local(layout, value) {
        Ok(t) => Ok(values::time(t)),
        Err(why) if must => Err(fail(
            function,
            format!("the text does not parse with the layout: {why}"),
        )),
        Err(_) => Ok(values::time(GoTime::zero())),
    }
}

/// Go's `strconv.ParseInt(s, 10, 64)` as Sprig uses it: 0 on a syntax error, the nearest
/// bound on overflow.
fn parse_int(s: &str) -> i64 {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    s.parse().unwrap_or(if s.starts_with('-') {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// Go's `Duration.Round(time.Second)`: halves away from zero.
fn round_to_second(nanos: i64) -> i64 {
    const SECOND: i64 = 1_000_000_000;
    let r = nanos % SECOND;
    if nanos < 0 {
        let r = -r;
        if r + r < SECOND {
            return nanos + r;
        }
        nanos.checked_sub(SECOND - r).unwrap_or(i64::MIN)
    } else {
        if r + r < SECOND {
            return nanos - r;
        }
        nanos.checked_add(SECOND - r).unwrap_or(i64::MAX)
    }
}

/// Sprig's `durationRound`: the largest whole unit it passes (`2h`, `3mo`, `1y`).
fn round_duration(nanos: i64) -> String {
    let u = nanos.unsigned_abs();
    const SECOND: u64 = 1_000_000_000;
    const MINUTE: u64 = 60 * SECOND;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    const UNITS: [(u64, &str); 6] = [
        (365 * DAY, "y"),
        (30 * DAY, "mo"),
        (DAY, "d"),
        (HOUR, "h"),
        (MINUTE, "m"),
        (SECOND, "s"),
    ];
    UNITS.iter().find(|(unit, _)| u > *unit).map_or_else(
        || "0s".to_owned(),
        |(unit, name)| format!("{}{name}", u / unit),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_as_sprig_rounds_them() {
        assert_eq!(round_duration(0), "0s");
        assert_eq!(
            round_duration(1_000_000_000),
            "0s",
            "strictly more than a unit"
        );
        assert_eq!(round_duration(90 * 1_000_000_000), "1m");
        assert_eq!(round_duration(-3 * 3600 * 1_000_000_000 - 1), "3h");
        assert_eq!(round_duration(400 * 86_400 * 1_000_000_000), "1y");
        assert_eq!(round_duration(31 * 86_400 * 1_000_000_000), "1mo");
        assert_eq!(round_to_second(1_500_000_000), 2_000_000_000);
        assert_eq!(round_to_second(-1_499_999_999), -1_000_000_000);
        assert_eq!(parse_int("+12"), 12);
        assert_eq!(parse_int("1e3"), 0);
        assert_eq!(parse_int("99999999999999999999"), i64::MAX);
    }
}
