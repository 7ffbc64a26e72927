//! Go's rules for the values the helpers take and return: which Go type a template value
//! stands for, how Go prints a `float64`, and the argument checks Go's text/template makes
//! when it calls a function with typed parameters.
//!
//! Go tells `string` from `json.Number` (Vault's numbers, see `values::number`) and prints a
//! `float64` with `%v` (`1e+06`), where gotmpl prints floats as Rust does (`1000000`). So a
//! float whose Rust printing differs from Go's is carried as a string of Go's printing,
//! remembered here as a float so that the helpers still compute with it.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use gotmpl::{TemplateError, Value};

use super::super::values;

/// The most items a list or map that a helper builds may hold.
pub(crate) const MAX_ITEMS: usize = 100_000;

/// An error of `function`; the message never quotes an argument.
pub(crate) fn fail(function: &str, what: impl std::fmt::Display) -> TemplateError {
    TemplateError::Exec(format!("{function}: {what}"))
}

/// Refuses any number of arguments but `n`.
pub(crate) fn arity(function: &str, args: &[Value], n: usize) -> gotmpl::Result<()> {
    if args.len() == n {
        Ok(())
    } else {
        Err(fail(
            function,
            format!("wrong number of arguments: want {n}, got {}", args.len()),
        ))
    }
}

/// The Go type a value stands for, as Go names it in its errors.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(s) if float_of(s).is_some() => "float64",
        Value::String(s) if values::is_number(s) => "json.Number",
        Value::String(s) if values::time_of(s).is_some() => "time.Time",
        Value::String(_) => "string",
        Value::Int(_) => "int",
        Value::Uint(_) => "uint64",
        Value::Float(_) => "float64",
        Value::Bool(_) => "bool",
        Value::Nil => "<nil>",
        Value::List(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
        Value::Function(_) => "func",
    }
}

/// A `string` parameter: a string, not a `json.Number` (Go refuses those too: "wrong type for
/// value; expected string; got json.Number").
pub(crate) fn string<'a>(function: &str, value: &'a Value) -> gotmpl::Result<&'a str> {
    match value {
        Value::String(s)
            if !values::is_number(s) && float_of(s).is_none() && values::time_of(s).is_none() =>
        {
            Ok(s)
        }
        other => Err(fail(
            function,
            format!(
                "wrong type for value; expected string; got {}",
                type_name(other)
            ),
        )),
    }
}

/// A list parameter (Go's `[]T` for the `go_type` named in the error; nil is empty).
pub(crate) fn list_arg<'a>(
    function: &str,
    value: &'a Value,
    go_type: &str,
) -> gotmpl::Result<&'a [Value]> {
    match value {
        Value::List(items) => Ok(items),
        Value::Nil => Ok(&[]),
        other => Err(fail(
            function,
            format!(
                "wrong type for value; expected {go_type}; got {}",
                type_name(other)
            ),
        )),
    }
}

/// An `int` parameter.
pub(crate) fn int(function: &str, value: &Value) -> gotmpl::Result<i64> {
    match value {
        Value::Int(i) => Ok(*i),
        Value::Uint(u) => i64::try_from(*u).map_err(|_| fail(function, "integer out of range")),
        other => Err(fail(
            function,
            format!(
                "wrong type for value; expected int; got {}",
                type_name(other)
            ),
        )),
    }
}

/// A number as Go's reflection sees it (`reflect.Kind`), for the functions that take
/// `interface{}` and switch on the kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Number {
    Int(i64),
    Uint(u64),
    Float(f64),
}

/// The number `value` is, when it is one of Go's number kinds (a `json.Number` is a string).
pub(crate) fn number(value: &Value) -> Option<Number> {
    match value {
        Value::Int(i) => Some(Number::Int(*i)),
        Value::Uint(u) => Some(Number::Uint(*u)),
        Value::Float(f) => Some(Number::Float(*f)),
        Value::String(s) => float_of(s).map(Number::Float),
        _ => None,
    }
}

/// A Go number as a template value.
pub(crate) fn from_number(n: Number) -> Value {
    match n {
        Number::Int(i) => Value::Int(i),
        Number::Uint(u) => Value::Uint(u),
        Number::Float(f) => float(f),
    }
}

/// The floats carried as strings, by address (see the module's doc).
static FLOATS: LazyLock<Mutex<Floats>> = LazyLock::new(Mutex::default);

#[derive(Default)]
struct Floats {
    by_address: HashMap<usize, (Weak<str>, f64)>,
    /// Live entries at the last sweep; the next sweep comes at twice as many.
    live: usize,
}

fn address(s: &Arc<str>) -> usize {
    Arc::as_ptr(s).cast::<u8>() as usize
}

/// A Go `float64`: a float when Rust prints it as Go does, else Go's printing remembered as
/// this float (and as a number, so that `toJSON` encodes a number).
pub(crate) fn float(f: f64) -> Value {
    let go = format_v(f);
    if go == f.to_string() {
        return Value::Float(f);
    }
    let Value::String(s) = values::number(&go) else {
        return Value::Float(f);
    };
    let mut floats = FLOATS.lock().unwrap_or_else(|p| p.into_inner());
    if floats.by_address.len() > 2 * floats.live.max(1024) {
        floats
            .by_address
            .retain(|_, (weak, _)| weak.strong_count() > 0);
        floats.live = floats.by_address.len();
    }
    floats
        .by_address
        .insert(address(&s), (Arc::downgrade(&s), f));
    Value::String(s)
}

/// The float a string made by [`float`] stands for.
pub(crate) fn float_of(s: &Arc<str>) -> Option<f64> {
    let floats = FLOATS.lock().unwrap_or_else(|p| p.into_inner());
    let (weak, f) = floats.by_address.get(&address(s))?;
    weak.upgrade()
        .is_some_and(|known| Arc::ptr_eq(&known, s))
        .then_some(*f)
}

/// Go's `%v` of a `float64`: `strconv.FormatFloat(f, 'g', -1, 64)` with the exponent used
/// below 1e-4 and from 1e6 on, at least two exponent digits (`1e+06`, `2.5e-05`).
pub(crate) fn format_v(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let (digits, exp) = shortest_digits(f);
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let mut out = format!("{sign}{}", &digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let (esign, magnitude) = if exp < 0 { ('-', -exp) } else { ('+', exp) };
        out.push_str(&format!("e{esign}{magnitude:02}"));
        return out;
    }
    format!("{sign}{}", fixed(&digits, exp))
}

/// Go's `encoding/json` text of a finite `float64`: no exponent from 1e-6 up to 1e21
/// (`1000000`, `5`), else the shortest exponent form with a two-digit-or-more exponent trimmed
/// of a leading zero (`1e+21`, `1e-7`). serde_json writes `5.0` and `1000000.0`.
pub(crate) fn format_json(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let (digits, exp) = shortest_digits(f);
    let sign = if f < 0.0 { "-" } else { "" };
    let abs = f.abs();
    if (1e-6..1e21).contains(&abs) {
        return format!("{sign}{}", fixed(&digits, exp));
    }
    let mut out = format!("{sign}{}", &digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    let (esign, magnitude) = if exp < 0 { ('-', -exp) } else { ('+', exp) };
    out.push_str(&format!("e{esign}{magnitude}"));
    out
}

/// The shortest digits that give `f` back, and the decimal exponent of the first.
pub(crate) fn shortest_digits(f: f64) -> (String, i32) {
    let text = format!("{:e}", f.abs());
    let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exp.parse().unwrap_or(0))
}

/// `digits` (the first at 10^exp) written without an exponent.
pub(crate) fn fixed(digits: &str, exp: i32) -> String {
    if exp < 0 {
        let zeros = usize::try_from(-exp - 1).unwrap_or(0);
        return format!("0.{}{digits}", "0".repeat(zeros));
    }
    let point = usize::try_from(exp).unwrap_or(0) + 1;
    if digits.len() <= point {
        format!("{digits}{}", "0".repeat(point - digits.len()))
    } else {
        format!("{}.{}", &digits[..point], &digits[point..])
    }
}

/// `strconv.ParseInt(s, 0, 64)`, or `ParseUint` past `i64::MAX`: a sign, then `0x`, `0o`,
/// `0b`, a leading `0` (octal) or decimal digits, with `_` between digits when a prefix is
/// given.
pub(crate) fn parse_int_base0(s: &str) -> Option<i128> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body, prefixed) = if let Some(b) = lower.strip_prefix("0x") {
        (16, b, true)
    } else if let Some(b) = lower.strip_prefix("0o") {
        (8, b, true)
    } else if let Some(b) = lower.strip_prefix("0b") {
        (2, b, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..], true)
    } else {
        (10, lower.as_str(), false)
    };
    if body.is_empty() || body.starts_with(['+', '-']) {
        return None;
    }
    // Underscores only with a prefix, each between digits or right after the prefix.
    let rest = body.strip_prefix('_').unwrap_or(body);
    if body.contains('_')
        && (!prefixed
            || rest.is_empty()
            || rest.starts_with('_')
            || rest.ends_with('_')
            || rest.contains("__"))
    {
        return None;
    }
    let magnitude = i128::from(u64::from_str_radix(&body.replace('_', ""), radix).ok()?);
    if negative {
        (magnitude <= 1 << 63).then_some(-magnitude)
    } else {
        Some(magnitude)
    }
}

/// Whether Go's `isEmptyValue` (mergo, Sprig's `empty`) holds: nil, false, zero, or no length.
pub(crate) fn is_empty(value: &Value) -> bool {
    match value {
        Value::Nil => true,
        Value::Bool(b) => !b,
        Value::Int(i) => *i == 0,
        Value::Uint(u) => *u == 0,
        Value::Float(f) => *f == 0.0,
        // Sprig's `empty` asks a time whether it is Go's zero time.
        Value::String(s) if let Some(t) = values::time_of(s) => {
            t.seconds == super::time::ZERO_SECONDS && t.nanos == 0
        }
        Value::String(s) => float_of(s).map_or(s.is_empty(), |f| f == 0.0),
        Value::List(items) => items.is_empty(),
        Value::Map(map) => map.is_empty(),
        Value::Function(_) => false,
    }
}

/// A list, refused past [`MAX_ITEMS`].
pub(crate) fn list(function: &str, items: Vec<Value>) -> gotmpl::Result<Value> {
    if items.len() > MAX_ITEMS {
        return Err(fail(
            function,
            format!("the list would hold more than {MAX_ITEMS} items"),
        ));
    }
    Ok(Value::List(items.into()))
}

/// A list of strings.
pub(crate) fn strings<'a>(
    function: &str,
    items: impl IntoIterator<Item = &'a str>,
) -> gotmpl::Result<Value> {
    let mut out = Vec::new();
    for item in items {
        if out.len() == MAX_ITEMS {
            return Err(fail(
                function,
                format!("the list would hold more than {MAX_ITEMS} items"),
            ));
        }
        out.push(Value::String(item.into()));
    }
    Ok(Value::List(out.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_go_prints_them() {
        for (f, go) in [
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (0.25, "0.25"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (1e21, "1e+21"),
            (1.5e300, "1.5e+300"),
            (5432.0, "5432"),
            (-0.0, "-0"),
            (f64::INFINITY, "+Inf"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(format_v(f), go, "{f}");
            assert_eq!(float(f).to_string(), go, "{f}");
        }
    }

    #[test]
    fn json_floats_are_written_as_go_writes_them() {
        for (f, go) in [
            (5.0, "5"),
            (1e6, "1000000"),
            (0.25, "0.25"),
            (1e21, "1e+21"),
            (1e-7, "1e-7"),
            (-1.5e-10, "-1.5e-10"),
            (0.000001, "0.000001"),
            (123456789.125, "123456789.125"),
        ] {
            assert_eq!(format_json(f), go, "{f}");
        }
    }

    #[test]
    fn a_float_carried_as_text_is_still_a_float() {
        let value = float(2e6);
        assert!(matches!(number(&value), Some(Number::Float(f)) if f == 2e6));
        assert_eq!(type_name(&value), "float64");
        assert!(string("f", &value).is_err());
        assert_eq!(type_name(&Value::String("2e+06".into())), "string");
        assert!(matches!(float(3.5), Value::Float(_)));
    }
}
