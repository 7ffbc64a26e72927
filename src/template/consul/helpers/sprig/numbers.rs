//! Sprig's numbers: `spf13/cast`'s loose conversions and the math built on them.

use gotmpl::Value;

use super::super::go::{self, Number, fail};
use super::super::text;

/// `cast.ToInt64`: numbers truncated, strings parsed (Go's base prefixes, a `.0…` tail
/// dropped), booleans 1 or 0, anything else 0.
pub(super) fn to_int64(value: &Value) -> i64 {
    match (go::number(value), value) {
        (Some(Number::Int(i)), _) => i,
        (Some(Number::Uint(u)), _) => u as i64,
        (Some(Number::Float(f)), _) => f as i64,
        (None, Value::Bool(b)) => i64::from(*b),
        (None, Value::String(s)) => go::parse_int_base0(trim_zero_decimal(s))
            .and_then(|n| i64::try_from(n).ok())
            .unwrap_or(0),
        _ => 0,
    }
}

/// `cast.ToFloat64`.
pub(super) fn to_float64(value: &Value) -> f64 {
    match (go::number(value), value) {
        (Some(Number::Int(i)), _) => i as f64,
        (Some(Number::Uint(u)), _) => u as f64,
        (Some(Number::Float(f)), _) => f,
        (None, Value::Bool(b)) => f64::from(u8::from(*b)),
        (None, Value::String(s)) => super::super::go_parse_float(s).unwrap_or(0.0),
        _ => 0.0,
    }
}

/// cast's `trimZeroDecimal`: `12.000` is `12`.
pub(super) fn trim_zero_decimal(s: &str) -> &str {
    match s.split_once('.') {
        Some((int, zeros)) if !zeros.is_empty() && zeros.bytes().all(|b| b == b'0') => int,
        _ => s,
    }
}

pub(super) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

pub(super) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// `round VALUE PLACES [ROUND_ON]`.
pub(super) fn round(args: &[Value]) -> gotmpl::Result<Value> {
    if !(2..=3).contains(&args.len()) {
        return Err(fail("round", "wrong number of arguments"));
    }
    let value = to_float64(&args[0]);
    let places = go::int("round", &args[1])? as f64;
    let round_on = match args.get(2) {
        Some(v) => go::number(v)
            .map(|n| match n {
                Number::Float(f) => f,
                Number::Int(i) => i as f64,
                Number::Uint(u) => u as f64,
            })
            .ok_or_else(|| fail("round", "wrong type for value; expected float64"))?,
        None => 0.5,
    };
    let pow = 10f64.powf(places);
    let digit = pow * value;
    let fraction = digit - digit.trunc();
    let rounded = if fraction >= round_on {
        digit.ceil()
    } else {
        digit.floor()
    };
    Ok(go::float(rounded / pow))
}

/// `seq [START [STEP]] END`: the numbers as text, separated by spaces.
pub(super) fn seq(args: &[Value]) -> gotmpl::Result<Value> {
    let params: Vec<i64> = args
        .iter()
        .map(|a| go::int("seq", a))
        .collect::<gotmpl::Result<_>>()?;
    let (start, end, step) = match params.as_slice() {
        [] => return Ok(text("")),
        [end] => (1, *end, if *end < 1 { -1 } else { 1 }),
        [start, end] => (*start, *end, if end < start { -1 } else { 1 }),
        [start, step, end] => {
            if end < start && *step > 0 {
                return Ok(text(""));
            }
            (*start, *end, *step)
        }
        _ => return Err(fail("seq", "wrong number of arguments")),
    };
    let increment = if end < start { -1 } else { 1 };
    let stop = end.saturating_add(increment);
    if (stop < start && step >= 0) || (stop >= start && step <= 0) {
        return Ok(text(""));
    }
    let Value::List(numbers) = super::super::range_list("seq", start, stop, step)? else {
        return Ok(text(""));
    };
    let joined: Vec<String> = numbers.iter().map(ToString::to_string).collect();
    Ok(text(&joined.join(" ")))
}

pub(super) fn adler32(bytes: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in bytes.chunks(5552) {
        for byte in chunk {
            a += u32::from(*byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}
