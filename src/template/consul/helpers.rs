//! consul-template's helper functions (strings, lists, maps, parsing, encoding, hashing,
//! arithmetic) and the `sprig_*` functions, as OpenBao's agent runs them
//! (`openbao-template`'s `template/funcs.go`, Sprig v3): Go's semantics, checked against
//! `bao agent` by `tests/consul_functions.rs`.
//!
//! Everything is bounded: text a function builds is at most `limits.file_bytes` (checked before
//! it is built where a function multiplies its input), lists and maps at most
//! [`go::MAX_ITEMS`] items, and regular expressions run in linear time (the `regex` crate).
//! Errors name the function and what is wrong, never an argument's value.

pub(super) mod go;
mod sprig;
pub(super) use sprig::Costs;
pub(super) mod time;
mod toml;
mod yaml;

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use gotmpl::{FuncMap, TemplateError, Value};
use md5::Digest as _;
use serde_json::Value as Json;

use self::go::{Number, arity, fail, string};
use super::Context;
use super::functions::within;

/// Go's `base64.StdEncoding` and `URLEncoding`: padded; decoding wants the padding and lets
/// the unused bits of the last character be anything.
const fn engine(alphabet: &alphabet::Alphabet) -> GeneralPurpose {
    GeneralPurpose::new(
        alphabet,
        GeneralPurposeConfig::new()
            .with_encode_padding(true)
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
    )
}
const STD: GeneralPurpose = engine(&alphabet::STANDARD);
const URL: GeneralPurpose = engine(&alphabet::URL_SAFE);

/// The largest compiled regular expression (the `regex` crate's size limit).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A function as the map holds it.
type Function = fn(&[Value]) -> gotmpl::Result<Value>;

/// consul-template's helpers, by name.
const HELPERS: &[(&str, Function)] = &[
    ("base64Decode", |a| decode("base64Decode", &STD, a)),
    ("base64Encode", |a| encode("base64Encode", &STD, a)),
    ("base64URLDecode", |a| decode("base64URLDecode", &URL, a)),
    ("base64URLEncode", |a| encode("base64URLEncode", &URL, a)),
    ("contains", |a| {
        arity("contains", a, 2)?;
        Ok(Value::Bool(is_in(&a[1], &a[0])))
    }),
    ("containsAll", |a| {
        contains_some("containsAll", a, true, true)
    }),
    ("containsAny", |a| {
        contains_some("containsAny", a, false, false)
    }),
    ("containsNone", |a| {
        contains_some("containsNone", a, true, false)
    }),
    ("containsNotAll", |a| {
        contains_some("containsNotAll", a, false, true)
    }),
    ("explodeMap", explode_map),
    ("mergeMap", |a| merge_map("mergeMap", a, false)),
    ("mergeMapWithOverride", |a| {
        merge_map("mergeMapWithOverride", a, true)
    }),
    ("in", |a| {
        arity("in", a, 2)?;
        Ok(Value::Bool(is_in(&a[0], &a[1])))
    }),
    ("indent", indent_function),
    ("loop", loop_function),
    ("join", |a| {
        arity("join", a, 2)?;
        join("join", string("join", &a[0])?, &a[1])
    }),
    ("trim", |a| {
        let (cutset, s) = two_strings("trim", a)?;
        Ok(text(s.trim_matches(|c| cutset.contains(c))))
    }),
    ("trimPrefix", |a| {
        let (prefix, s) = two_strings("trimPrefix", a)?;
        Ok(text(s.strip_prefix(prefix).unwrap_or(s)))
    }),
    ("trimSuffix", |a| {
        let (suffix, s) = two_strings("trimSuffix", a)?;
        Ok(text(s.strip_suffix(suffix).unwrap_or(s)))
    }),
    ("trimSpace", |a| {
        Ok(text(one_string("trimSpace", a)?.trim()))
    }),
    ("parseBool", parse_bool),
    ("parseFloat", parse_float),
    ("parseInt", |a| {
        parse_int("parseInt", one_string("parseInt", a)?).map(Value::Int)
    }),
    ("parseJSON", parse_json),
    ("parseUint", parse_uint),
    ("parseYAML", parse_yaml),
    ("regexReplaceAll", |a| {
        arity("regexReplaceAll", a, 3)?;
        let re = regex("regexReplaceAll", string("regexReplaceAll", &a[0])?)?;
        let with = string("regexReplaceAll", &a[1])?;
        let s = string("regexReplaceAll", &a[2])?;
        Ok(text(&re.replace_all(s, with)))
    }),
    ("regexMatch", |a| {
        arity("regexMatch", a, 2)?;
        let re = regex("regexMatch", string("regexMatch", &a[0])?)?;
        Ok(Value::Bool(re.is_match(string("regexMatch", &a[1])?)))
    }),
    ("replaceAll", |a| {
        arity("replaceAll", a, 3)?;
        let from = string("replaceAll", &a[0])?;
        let to = string("replaceAll", &a[1])?;
        replace("replaceAll", string("replaceAll", &a[2])?, from, to, None)
    }),
    ("sha256Hex", |a| {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            one_string("sha256Hex", a)?.as_bytes(),
        );
        Ok(text(&hex(digest.as_ref())))
    }),
    ("md5sum", |a| {
        Ok(text(&hex(&md5::Md5::digest(
            one_string("md5sum", a)?.as_bytes(),
        ))))
    }),
    ("hmacSHA256Hex", |a| {
        let (message, key) = two_strings("hmacSHA256Hex", a)?;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
        Ok(text(&hex(
            ring::hmac::sign(&key, message.as_bytes()).as_ref()
        )))
    }),
    ("timestamp", timestamp),
    ("toTOML", |a| {
        arity("toTOML", a, 1)?;
        Ok(text(&toml::encode(&a[0], MAX_BUILD)?))
    }),
    ("toYAML", |a| {
        arity("toYAML", a, 1)?;
        Ok(text(&yaml::encode(&a[0], MAX_BUILD)?))
    }),
    ("toLower", |a| {
        Ok(text(&to_lower(one_string("toLower", a)?)))
    }),
    ("toUpper", |a| {
        Ok(text(&to_upper(one_string("toUpper", a)?)))
    }),
    ("toTitle", |a| {
        Ok(text(&to_title(one_string("toTitle", a)?)))
    }),
    ("split", |a| {
        let (sep, s) = two_strings("split", a)?;
        let s = s.trim();
        if s.is_empty() {
            return Ok(Value::List(Arc::from([])));
        }
        go::strings("split", go_split(s, sep))
    }),
    ("splitToMap", split_to_map),
    ("add", |a| arithmetic("add", a, Op::Add)),
    ("subtract", |a| arithmetic("subtract", a, Op::Subtract)),
    ("multiply", |a| arithmetic("multiply", a, Op::Multiply)),
    ("divide", |a| arithmetic("divide", a, Op::Divide)),
    ("modulo", |a| arithmetic("modulo", a, Op::Modulo)),
    ("minimum", |a| {
        extreme("minimum", a, std::cmp::Ordering::Less)
    }),
    ("maximum", |a| {
        extreme("maximum", a, std::cmp::Ordering::Greater)
    }),
];

/// Registers consul-template's helpers and the Sprig functions, each bounded to the text one
/// file may hold.
pub(super) fn register(map: &mut FuncMap, context: &Context) {
    let limit = context.limit;
    let helpers = HELPERS.iter().map(|(n, f)| ((*n).to_owned(), *f));
    let sprig = sprig::all()
        .chain(sprig::FOLLOWED)
        .map(|(n, f)| (format!("sprig_{n}"), *f));
    time::start_clock();
    for (name, function) in helpers.chain(sprig) {
        map.insert(
            name.clone(),
            Arc::new(move |args: &[Value]| within(limit, &name, function(args)?)),
        );
    }
    sprig::register_with_context(map, context);
}

/// The names [`register`] registers, consul-template's first.
#[cfg(test)]
pub(super) fn names() -> (Vec<&'static str>, Vec<&'static str>) {
    let helpers = HELPERS.iter().map(|(n, _)| *n).collect();
    let sprig = sprig::all()
        .map(|(n, _)| *n)
        .chain(sprig::WITH_CONTEXT.iter().copied())
        .collect();
    (helpers, sprig)
}

/// A string value.
fn text(s: &str) -> Value {
    Value::String(s.into())
}

fn one_string<'a>(function: &str, args: &'a [Value]) -> gotmpl::Result<&'a str> {
    arity(function, args, 1)?;
    string(function, &args[0])
}

fn two_strings<'a>(function: &str, args: &'a [Value]) -> gotmpl::Result<(&'a str, &'a str)> {
    arity(function, args, 2)?;
    Ok((string(function, &args[0])?, string(function, &args[1])?))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn encode(function: &str, engine: &GeneralPurpose, args: &[Value]) -> gotmpl::Result<Value> {
    Ok(text(&engine.encode(one_string(function, args)?)))
}

fn decode(function: &str, engine: &GeneralPurpose, args: &[Value]) -> gotmpl::Result<Value> {
    // Go's decoder skips line breaks.
    let input: String = one_string(function, args)?
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n'))
        .collect();
    let bytes = engine
        .decode(input)
        .map_err(|_| fail(function, "the input is not valid base64"))?;
    // A keystore decodes to bytes that are not UTF-8: they reach the file as they are.
    Ok(super::values::bytes(&bytes))
}

/// Go's `strings.Split`: an empty separator splits after each character.
fn go_split<'a>(s: &'a str, sep: &'a str) -> Box<dyn Iterator<Item = &'a str> + 'a> {
    if sep.is_empty() {
        Box::new(s.char_indices().map(move |(i, c)| &s[i..i + c.len_utf8()]))
    } else {
        Box::new(s.split(sep))
    }
}

/// `strings.Join` of a list of strings, bounded.
fn join(function: &str, sep: &str, list: &Value) -> gotmpl::Result<Value> {
    let items = go::list_arg(function, list, "[]string")?;
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(string(function, item)?);
        if out.len() > MAX_BUILD {
            return Err(too_long(function));
        }
    }
    Ok(text(&out))
}

/// The most text a function builds before `within` sees it; `within` then applies the
/// file's own limit.
const MAX_BUILD: usize = 64 << 20;

fn too_long(function: &str) -> TemplateError {
    fail(function, "the result would be too long")
}

/// `strings.Replace(s, from, to, n)`, refusing a result past [`MAX_BUILD`] before building it.
fn replace(
    function: &str,
    s: &str,
    from: &str,
    to: &str,
    n: Option<usize>,
) -> gotmpl::Result<Value> {
    let matches = if from.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(from).count()
    };
    let matches = n.map_or(matches, |n| n.min(matches));
    let size = s.len() + matches.saturating_mul(to.len());
    if size > MAX_BUILD {
        return Err(too_long(function));
    }
    if from.is_empty() {
        // Go inserts `to` before each character and at the end.
        let mut out = String::with_capacity(size);
        let mut done = 0;
        for c in s.chars() {
            if done < matches {
                out.push_str(to);
                done += 1;
            }
            out.push(c);
        }
        if done < matches {
            out.push_str(to);
        }
        return Ok(text(&out));
    }
    Ok(text(&s.replacen(from, to, matches)))
}

/// Go's `regexp.Compile`: RE2 syntax. Go's `\d`, `\w`, `\s` and `\b` are ASCII where the
/// `regex` crate's are Unicode, so they are rewritten to their ASCII forms first.
pub(super) fn regex(function: &str, pattern: &str) -> gotmpl::Result<regex::Regex> {
    regex::RegexBuilder::new(&ascii_classes(pattern))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|_| fail(function, "the regular expression is not valid"))
}

fn ascii_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    out.push(c);
                    break;
                };
                let ascii = match next {
                    'd' => Some(("[0-9]", "0-9")),
                    'D' => Some(("[^0-9]", "[^0-9]")),
                    'w' => Some(("[0-9A-Za-z_]", "0-9A-Za-z_")),
                    'W' => Some(("[^0-9A-Za-z_]", "[^0-9A-Za-z_]")),
                    's' => Some(("[\\t\\n\\f\\r ]", "\\t\\n\\f\\r ")),
                    'S' => Some(("[^\\t\\n\\f\\r ]", "[^\\t\\n\\f\\r ]")),
                    'b' if !in_class => Some(("(?-u:\\b)", "")),
                    'B' if !in_class => Some(("(?-u:\\B)", "")),
                    _ => None,
                };
                match ascii {
                    Some((outside, inside)) => {
                        out.push_str(if in_class { inside } else { outside })
                    }
                    None => {
                        out.push(c);
                        out.push(next);
                    }
                }
                class_start = false;
            }
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push(c);
                continue;
            }
            '^' if class_start => {
                out.push(c);
                continue;
            }
            ']' if in_class && !class_start => {
                in_class = false;
                out.push(c);
            }
            _ => {
                out.push(c);
                class_start = false;
            }
        }
        if c != '[' {
            class_start = false;
        }
    }
    out
}

/// consul-template's `in`: whether `list` holds `value` (ints, floats and strings of the same
/// type compare), or a string contains it.
fn is_in(list: &Value, value: &Value) -> bool {
    match list {
        Value::List(items) => {
            items
                .iter()
                .any(|item| match (go::number(item), go::number(value)) {
                    (Some(Number::Int(a)), Some(Number::Int(b))) => a == b,
                    (Some(Number::Float(a)), Some(Number::Float(b))) => a == b,
                    (Some(_), _) => false,
                    (None, _) => match (item, value) {
                        (Value::String(a), Value::String(b)) => {
                            go::type_name(item) == go::type_name(value) && a == b
                        }
                        _ => false,
                    },
                })
        }
        Value::String(s) if go::number(list).is_none() => match value {
            Value::String(v) => go::type_name(list) == go::type_name(value) && s.contains(&**v),
            _ => false,
        },
        _ => false,
    }
}

fn contains_some(
    function: &str,
    args: &[Value],
    ret_true: bool,
    invert: bool,
) -> gotmpl::Result<Value> {
    arity(function, args, 2)?;
    let items = go::list_arg(function, &args[0], "[]interface {}")?;
    for item in items {
        if is_in(&args[1], item) != invert {
            return Ok(Value::Bool(!ret_true));
        }
    }
    Ok(Value::Bool(ret_true))
}

fn map_arg<'a>(
    function: &str,
    value: &'a Value,
) -> gotmpl::Result<Option<&'a BTreeMap<Arc<str>, Value>>> {
    match value {
        Value::Map(map) => Ok(Some(map)),
        Value::Nil => Ok(None),
        other => Err(fail(
            function,
            format!(
                "wrong type for value; expected map[string]interface {{}}; got {}",
                go::type_name(other)
            ),
        )),
    }
}

/// A map being built from keys that hold `/`.
enum Tree {
    Leaf(Value),
    Branch(BTreeMap<String, Tree>),
}

impl Tree {
    fn into_value(self) -> Value {
        match self {
            Tree::Leaf(value) => value,
            Tree::Branch(map) => Value::Map(Arc::new(
                map.into_iter()
                    .map(|(k, v)| (Arc::from(k), v.into_value()))
                    .collect(),
            )),
        }
    }
}

/// `explodeMap`: `{"a/b": 1}` becomes `{"a": {"b": 1}}`, keys taken in sorted order.
fn explode_map(args: &[Value]) -> gotmpl::Result<Value> {
    arity("explodeMap", args, 1)?;
    let mut root = BTreeMap::new();
    for (key, value) in map_arg("explodeMap", &args[0])?.into_iter().flatten() {
        let mut at = &mut root;
        let mut rest: &str = key;
        while let Some((top, tail)) = rest.split_once('/') {
            let slot = at
                .entry(top.to_owned())
                .or_insert_with(|| Tree::Branch(BTreeMap::new()));
            if let Tree::Leaf(Value::Map(map)) = slot {
                *slot = Tree::Branch(
                    map.iter()
                        .map(|(k, v)| (k.to_string(), Tree::Leaf(v.clone())))
                        .collect(),
                );
            }
            let Tree::Branch(next) = slot else {
                return Err(fail(
                    "explodeMap",
                    "a key is both a value and a path to more keys",
                ));
            };
            at = next;
            rest = tail;
        }
        if !rest.is_empty() {
            at.insert(rest.to_owned(), Tree::Leaf(value.clone()));
        }
        if at.len() > go::MAX_ITEMS {
            return Err(fail("explodeMap", "the map would be too large"));
        }
    }
    Ok(Tree::Branch(root).into_value())
}

/// `mergeMap DST SRC` (mergo.Map): a key of SRC goes into DST where DST lacks it or holds an
/// empty value; maps in both are merged; with override, SRC wins except over a non-empty value
/// where SRC holds a map or a list.
fn merge_map(function: &str, args: &[Value], overwrite: bool) -> gotmpl::Result<Value> {
    arity(function, args, 2)?;
    let dst = map_arg(function, &args[0])?.cloned().unwrap_or_default();
    let Some(src) = map_arg(function, &args[1])? else {
        return Ok(Value::Map(Arc::new(dst)));
    };
    Ok(Value::Map(Arc::new(merge(dst, src, overwrite, 0)?)))
}

/// How deep `merge` follows maps within maps.
const MAX_MERGE_DEPTH: usize = 100;

fn merge(
    mut dst: BTreeMap<Arc<str>, Value>,
    src: &BTreeMap<Arc<str>, Value>,
    overwrite: bool,
    depth: usize,
) -> gotmpl::Result<BTreeMap<Arc<str>, Value>> {
    if depth > MAX_MERGE_DEPTH {
        return Err(fail("mergeMap", "the maps are nested too deeply"));
    }
    for (key, s) in src {
        let d = dst.get(key).cloned();
        match s {
            Value::Nil => {
                if overwrite {
                    dst.insert(key.clone(), Value::Nil);
                }
                continue;
            }
            Value::Map(s_map) => {
                if let Some(Value::Map(d_map)) = &d {
                    let merged = merge((**d_map).clone(), s_map, overwrite, depth + 1)?;
                    dst.insert(key.clone(), Value::Map(Arc::new(merged)));
                }
            }
            Value::List(_) => {
                let chosen = if overwrite || dst.is_empty() {
                    s.clone()
                } else {
                    d.clone().unwrap_or_else(|| Value::List(Arc::from([])))
                };
                dst.insert(key.clone(), chosen);
            }
            _ => {}
        }
        let d_empty = d.as_ref().is_none_or(go::is_empty);
        if !d_empty && matches!(s, Value::Map(_) | Value::List(_)) {
            continue;
        }
        if overwrite || d_empty {
            dst.insert(key.clone(), s.clone());
        }
    }
    if dst.len() > go::MAX_ITEMS {
        return Err(fail("mergeMap", "the map would be too large"));
    }
    Ok(dst)
}

/// `indent N TEXT`: N spaces before each line that is not empty.
fn indent_function(args: &[Value]) -> gotmpl::Result<Value> {
    arity("indent", args, 2)?;
    let spaces = go::int("indent", &args[0])?;
    let s = string("indent", &args[1])?;
    indent("indent", spaces, s, false)
}

/// Prefixes every line not empty with `spaces` spaces (every line, `all`).
fn indent(function: &str, spaces: i64, s: &str, all: bool) -> gotmpl::Result<Value> {
    let Ok(spaces) = usize::try_from(spaces) else {
        return Err(fail(function, "indent value must be a positive integer"));
    };
    let lines = s.matches('\n').count() + 1;
    if lines.saturating_mul(spaces).saturating_add(s.len()) > MAX_BUILD {
        return Err(too_long(function));
    }
    let prefix = " ".repeat(spaces);
    let mut out = String::with_capacity(s.len() + lines * spaces);
    let mut line_start = true;
    for c in s.chars() {
        if line_start && (all || c != '\n') {
            out.push_str(&prefix);
        }
        out.push(c);
        line_start = c == '\n';
    }
    if all && line_start {
        out.push_str(&prefix);
    }
    Ok(text(&out))
}

/// `loop [START] STOP`: the integers from START (0) up to STOP.
fn loop_function(args: &[Value]) -> gotmpl::Result<Value> {
    let to_i64 = |v: &Value| -> gotmpl::Result<i64> {
        match v {
            Value::Int(i) => Ok(*i),
            Value::Uint(u) => Ok(*u as i64),
            Value::String(s) if go::float_of(s).is_none() => parse_int("loop", s),
            _ => Err(fail("loop", "bad argument type")),
        }
    };
    let (start, stop) = match args {
        [stop] => (0, to_i64(stop)?),
        [start, stop] => (to_i64(start)?, to_i64(stop)?),
        _ => {
            return Err(fail(
                "loop",
                format!(
                    "wrong number of arguments, expected 1 or 2, but got {}",
                    args.len()
                ),
            ));
        }
    };
    range_list("loop", start, stop, 1)
}

/// The integers from `start` up to `stop` by `step`, at most [`go::MAX_ITEMS`] of them.
fn range_list(function: &str, start: i64, stop: i64, step: i64) -> gotmpl::Result<Value> {
    let count = if step > 0 && stop > start {
        (i128::from(stop) - i128::from(start) - 1) / i128::from(step) + 1
    } else if step < 0 && stop < start {
        (i128::from(start) - i128::from(stop) - 1) / -i128::from(step) + 1
    } else {
        0
    };
    if count > go::MAX_ITEMS as i128 {
        return Err(fail(
            function,
            format!("the list would hold more than {} items", go::MAX_ITEMS),
        ));
    }
    let items: Vec<Value> = (0..count)
        .map(|i| Value::Int((i128::from(start) + i * i128::from(step)) as i64))
        .collect();
    Ok(Value::List(items.into()))
}

fn parse_bool(args: &[Value]) -> gotmpl::Result<Value> {
    let s = one_string("parseBool", args)?;
    match s {
        "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Value::Bool(false)),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Value::Bool(true)),
        _ => Err(fail("parseBool", "invalid syntax")),
    }
}

fn parse_float(args: &[Value]) -> gotmpl::Result<Value> {
    let s = one_string("parseFloat", args)?;
    if s.is_empty() {
        return Ok(go::float(0.0));
    }
    go_parse_float(s)
        .map(go::float)
        .ok_or_else(|| fail("parseFloat", "invalid syntax or value out of range"))
}

/// Go's `strconv.ParseFloat(s, 64)` for decimal text: out-of-range values are errors there.
pub(super) fn go_parse_float(s: &str) -> Option<f64> {
    let f: f64 = s.parse().ok()?;
    let literal = s.trim_start_matches(['+', '-']).to_ascii_lowercase();
    if f.is_infinite() && literal != "inf" && literal != "infinity" {
        return None;
    }
    Some(f)
}

/// `strconv.ParseInt(s, 10, 64)`, with "" as 0 (consul-template's `parseInt`).
fn parse_int(function: &str, s: &str) -> gotmpl::Result<i64> {
    if s.is_empty() {
        return Ok(0);
    }
    s.parse()
        .map_err(|_| fail(function, "invalid syntax or value out of range"))
}

fn parse_uint(args: &[Value]) -> gotmpl::Result<Value> {
    let s = one_string("parseUint", args)?;
    if s.is_empty() {
        return Ok(Value::Uint(0));
    }
    // Go's ParseUint takes no sign.
    if s.starts_with('+') {
        return Err(fail("parseUint", "invalid syntax"));
    }
    s.parse()
        .map(Value::Uint)
        .map_err(|_| fail("parseUint", "invalid syntax or value out of range"))
}

fn parse_json(args: &[Value]) -> gotmpl::Result<Value> {
    let s = one_string("parseJSON", args)?;
    if s.is_empty() {
        return Ok(Value::Map(Arc::default()));
    }
    let json: Json =
        serde_json::from_str(s).map_err(|_| fail("parseJSON", "the text is not valid JSON"))?;
    Ok(from_decoded(&json))
}

/// A decoded document as Go's `interface{}`: JSON numbers are `float64` (YAML's integers are
/// `int`, see [`parse_yaml`]).
fn from_decoded(json: &Json) -> Value {
    match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => go::float(n.as_f64().unwrap_or(0.0)),
        Json::String(s) => text(s),
        Json::Array(items) => Value::List(items.iter().map(from_decoded).collect()),
        Json::Object(fields) => Value::Map(Arc::new(
            fields
                .iter()
                .map(|(k, v)| (Arc::from(k.as_str()), from_decoded(v)))
                .collect(),
        )),
    }
}

/// `parseYAML` (yaml.v2: YAML 1.1's `yes`/`no`/`on`/`off` booleans and `0777` octals).
fn parse_yaml(args: &[Value]) -> gotmpl::Result<Value> {
    let s = one_string("parseYAML", args)?;
    if s.is_empty() {
        return Ok(Value::Map(Arc::default()));
    }
    let options = serde_saphyr::options! {
        legacy_octal_numbers: true,
    };
    let json: Json = serde_saphyr::from_str_with_options(s, options)
        .map_err(|_| fail("parseYAML", "the text is not valid YAML"))?;
    Ok(from_yaml(&json))
}

fn from_yaml(json: &Json) -> Value {
    match json {
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::Uint(u),
            _ => go::float(n.as_f64().unwrap_or(0.0)),
        },
        Json::Array(items) => Value::List(items.iter().map(from_yaml).collect()),
        Json::Object(fields) => Value::Map(Arc::new(
            fields
                .iter()
                .map(|(k, v)| (Arc::from(k.as_str()), from_yaml(v)))
                .collect(),
        )),
        other => from_decoded(other),
    }
}

fn timestamp(args: &[Value]) -> gotmpl::Result<Value> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    match args {
        [] => Ok(text(&time::format(
            time::RFC3339,
            seconds,
            now.subsec_nanos(),
        ))),
        [layout] => {
            let layout = string("timestamp", layout)?;
            if layout == "unix" {
                return Ok(text(&seconds.to_string()));
            }
            if layout.len() > 1024 {
                return Err(fail("timestamp", "the layout is too long"));
            }
            Ok(text(&time::format(layout, seconds, now.subsec_nanos())))
        }
        _ => Err(fail(
            "timestamp",
            format!(
                "wrong number of arguments, expected 0 or 1, but got {}",
                args.len()
            ),
        )),
    }
}

/// Go's `unicode.ToLower` of each character: one character for one (Rust's full mapping can
/// give several, Go's simple mapping never does).
pub(super) fn to_lower(s: &str) -> String {
    s.chars().map(|c| single(c, c.to_lowercase())).collect()
}

/// Go's `strings.ToUpper`, one character for one.
pub(super) fn to_upper(s: &str) -> String {
    s.chars().map(|c| single(c, c.to_uppercase())).collect()
}

fn single(c: char, mut mapped: impl ExactSizeIterator<Item = char>) -> char {
    if mapped.len() == 1 {
        mapped.next().unwrap_or(c)
    } else {
        c
    }
}

/// `cases.Title(language.Und, cases.NoLower)` (golang.org/x/text): the first cased letter of
/// each word in title case, the rest unchanged. Its words are an approximation of Unicode's:
/// letters, digits and `_` never break one, an apostrophe, `.` or `:` within one does not
/// (two in a row do), anything else does. So `3rd` becomes `3Rd`, as in Go.
fn to_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let (mut mid_word, mut was_mid) = (false, false);
    for c in s.chars() {
        let mid = is_mid(c);
        if was_mid && mid {
            mid_word = false;
        }
        if c.is_lowercase() || c.is_uppercase() {
            if mid_word {
                out.push(c);
            } else {
                title_case(c, &mut out);
            }
            mid_word = true;
        } else {
            out.push(c);
            let letter = c.is_alphanumeric()
                || c == '_'
                || ('\u{300}'..='\u{36f}').contains(&c)
                || c == '\u{200d}';
            if !letter && !mid {
                mid_word = false;
            }
        }
        was_mid = mid;
    }
    out
}

/// Unicode's title case of `c`: its full upper-case mapping with all but the first character
/// in lower case (`ß` is `Ss`, `ﬁ` is `Fi`), and the four digraphs' own title forms.
fn title_case(c: char, out: &mut String) {
    match c {
        '\u{1c4}'..='\u{1c6}' => out.push('\u{1c5}'),
        '\u{1c7}'..='\u{1c9}' => out.push('\u{1c8}'),
        '\u{1ca}'..='\u{1cc}' => out.push('\u{1cb}'),
        '\u{1f1}'..='\u{1f3}' => out.push('\u{1f2}'),
        _ => {
            for (i, upper) in c.to_uppercase().enumerate() {
                if i == 0 {
                    out.push(upper);
                } else {
                    out.extend(upper.to_lowercase());
                }
            }
        }
    }
}

/// Unicode's MidLetter, MidNumLet and Single_Quote word-break classes.
fn is_mid(c: char) -> bool {
    matches!(
        c,
        '\'' | '.'
            | ':'
            | '\u{b7}'
            | '\u{387}'
            | '\u{5f4}'
            | '\u{2018}'
            | '\u{2019}'
            | '\u{2024}'
            | '\u{2027}'
            | '\u{fe13}'
            | '\u{fe52}'
            | '\u{fe55}'
            | '\u{ff07}'
            | '\u{ff0e}'
            | '\u{ff1a}'
    )
}

fn split_to_map(args: &[Value]) -> gotmpl::Result<Value> {
    arity("splitToMap", args, 3)?;
    let sep1 = string("splitToMap", &args[0])?;
    let sep2 = string("splitToMap", &args[1])?;
    let s = string("splitToMap", &args[2])?.trim();
    let mut map = BTreeMap::new();
    if !s.is_empty() {
        for part in go_split(s, sep1) {
            if map.len() >= go::MAX_ITEMS {
                return Err(fail("splitToMap", "the map would be too large"));
            }
            if let Some((k, v)) = part.split_once(sep2) {
                map.insert(Arc::from(k), text(v));
            }
        }
    }
    Ok(Value::Map(Arc::new(map)))
}

#[derive(Clone, Copy)]
enum Op {
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
}

/// consul-template's arithmetic: `add B A` is A + B. Ints give an `int64`, two uints a
/// `uint64`, anything with a float a `float64`; modulo takes integers only.
fn arithmetic(function: &str, args: &[Value], op: Op) -> gotmpl::Result<Value> {
    arity(function, args, 2)?;
    let unknown = || fail(function, "unknown type for value");
    let a = go::number(&args[1]).ok_or_else(unknown)?;
    let b = go::number(&args[0]).ok_or_else(unknown)?;
    let zero = || fail(function, "runtime error: integer divide by zero");
    Ok(match (a, b) {
        (Number::Float(_), _) | (_, Number::Float(_)) => {
            if matches!(op, Op::Modulo) {
                return Err(unknown());
            }
            let (a, b) = (as_f64(a), as_f64(b));
            go::float(match op {
                Op::Add => a + b,
                Op::Subtract => a - b,
                Op::Multiply => a * b,
                Op::Divide => a / b,
                Op::Modulo => unreachable_modulo(),
            })
        }
        (Number::Uint(a), Number::Uint(b)) => Value::Uint(match op {
            Op::Add => a.wrapping_add(b),
            Op::Subtract => a.wrapping_sub(b),
            Op::Multiply => a.wrapping_mul(b),
            Op::Divide => a.checked_div(b).ok_or_else(zero)?,
            Op::Modulo => a.checked_rem(b).ok_or_else(zero)?,
        }),
        (a, b) => {
            let (a, b) = (as_i64(a), as_i64(b));
            if b == 0 && matches!(op, Op::Divide | Op::Modulo) {
                return Err(zero());
            }
            Value::Int(match op {
                Op::Add => a.wrapping_add(b),
                Op::Subtract => a.wrapping_sub(b),
                Op::Multiply => a.wrapping_mul(b),
                Op::Divide => a.wrapping_div(b),
                Op::Modulo => a.wrapping_rem(b),
            })
        }
    })
}

fn unreachable_modulo() -> f64 {
    f64::NAN
}

fn as_f64(n: Number) -> f64 {
    match n {
        Number::Int(i) => i as f64,
        Number::Uint(u) => u as f64,
        Number::Float(f) => f,
    }
}

fn as_i64(n: Number) -> i64 {
    match n {
        Number::Int(i) => i,
        Number::Uint(u) => u as i64,
        Number::Float(f) => f as i64,
    }
}

/// `minimum B A` / `maximum B A`: A when it is `wanted` of B, else B, each of its own type.
fn extreme(function: &str, args: &[Value], wanted: std::cmp::Ordering) -> gotmpl::Result<Value> {
    arity(function, args, 2)?;
    let unknown = || fail(function, "unknown type for value");
    let a = go::number(&args[1]).ok_or_else(unknown)?;
    let b = go::number(&args[0]).ok_or_else(unknown)?;
    let order = match (a, b) {
        (Number::Float(_), _) | (_, Number::Float(_)) => as_f64(a).partial_cmp(&as_f64(b)),
        (Number::Uint(x), Number::Uint(y)) => Some(x.cmp(&y)),
        _ => Some(as_i64(a).cmp(&as_i64(b))),
    };
    Ok(go::from_number(if order == Some(wanted) { a } else { b }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: &[Value]) -> gotmpl::Result<Value> {
        let (_, f) = HELPERS
            .iter()
            .chain(sprig::all())
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{name} exists"));
        f(args)
    }

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    #[test]
    fn the_registered_functions_are_the_ones_admission_lets_through() {
        use std::collections::{BTreeSet, HashMap};
        use std::sync::Mutex;

        use injector::consul_template::{FOLLOWED_ONLY, FUNCTIONS, GO_BUILTINS, SPRIG_FUNCTIONS};

        let context = Context {
            running: Arc::new(Mutex::new(None)),
            lookups: Arc::new(Mutex::new(crate::template::Lookups::default())),
            env: Arc::new(HashMap::<String, String>::new()),
            limit: 1 << 20,
            costs: Arc::default(),
        };
        let registered: BTreeSet<String> = super::super::functions::all(&context)
            .into_keys()
            .filter(|n| !n.starts_with("scratch.") && !GO_BUILTINS.contains(&n.as_str()))
            .collect();
        let allowed: BTreeSet<String> = FUNCTIONS
            .iter()
            .map(|n| (*n).to_owned())
            .chain(SPRIG_FUNCTIONS.iter().map(|n| format!("sprig_{n}")))
            .chain(FOLLOWED_ONLY.iter().map(|n| (*n).to_owned()))
            .collect();
        let unlisted: Vec<_> = registered.difference(&allowed).collect();
        let unregistered: Vec<_> = allowed.difference(&registered).collect();
        assert!(
            unlisted.is_empty(),
            "registered, not in the lists: {unlisted:?}"
        );
        assert!(
            unregistered.is_empty(),
            "in the lists, not registered: {unregistered:?}"
        );
        let (helpers, sprig) = names();
        for name in helpers {
            assert!(FUNCTIONS.contains(&name), "{name}");
        }
        for name in sprig {
            assert!(SPRIG_FUNCTIONS.contains(&name), "{name}");
        }
        assert_eq!(
            FUNCTIONS.len(),
            FUNCTIONS.iter().collect::<BTreeSet<_>>().len(),
            "no name twice"
        );
        assert_eq!(
            SPRIG_FUNCTIONS.len(),
            SPRIG_FUNCTIONS.iter().collect::<BTreeSet<_>>().len(),
            "no name twice"
        );
    }

    #[test]
    fn go_classes_are_ascii() {
        let re = regex("t", r"^\d+\w\s\b[\d\s]$").expect("compiles");
        assert!(re.is_match("12a 3"));
        assert!(!re.is_match("١a 3"), "Arabic digits are not \\d in Go");
        assert!(regex("t", r"[^\d]").expect("negated").is_match("a"));
        assert!(regex("t", r"\\d").expect("escaped").is_match("\\d"));
        assert!(regex("t", "(").is_err());
    }

    #[test]
    fn errors_never_quote_their_arguments() {
        for (name, args) in [
            ("base64Decode", vec![s("s3cr3t!!")]),
            ("parseInt", vec![s("s3cr3t")]),
            ("parseJSON", vec![s("{s3cr3t")]),
            ("regexMatch", vec![s("(s3cr3t"), s("x")]),
            ("add", vec![s("s3cr3t"), Value::Int(1)]),
        ] {
            let error = call(name, &args).expect_err(name).to_string();
            assert!(!error.contains("s3cr3t"), "{error}");
            assert!(error.contains(name), "{error}");
        }
    }

    #[test]
    fn what_a_function_builds_is_bounded() {
        let big = s(&"x".repeat(1 << 20));
        assert!(call("replaceAll", &[s(""), big.clone(), big.clone()]).is_err());
        assert!(call("indent", &[Value::Int(1 << 40), s("a\nb")]).is_err());
        assert!(call("loop", &[Value::Int(i64::MIN), Value::Int(i64::MAX)]).is_err());
        assert!(call("split", &[s(""), big]).is_err());
    }

    #[test]
    fn merge_map_follows_mergo() {
        let dst = from_decoded(&serde_json::json!({"a": 1, "e": "", "m": {"x": 1}, "l": [1]}));
        let src = from_decoded(
            &serde_json::json!({"a": 2, "e": "s", "m": {"y": 2}, "l": [2], "n": null, "z": 3}),
        );
        let merged = call("mergeMap", &[dst.clone(), src.clone()]).expect("merges");
        assert_eq!(merged.to_string(), "map[a:1 e:s l:[1] m:map[x:1 y:2] z:3]");
        let merged = call("mergeMapWithOverride", &[dst, src]).expect("merges");
        assert_eq!(
            merged.to_string(),
            "map[a:2 e:s l:[2] m:map[x:1 y:2] n:<nil> z:3]"
        );
    }

    #[test]
    fn title_case_starts_words_only() {
        assert_eq!(
            to_title("hello wORLD-foo o'neil 3rd a..b x_y"),
            "Hello WORLD-Foo O'neil 3Rd A..B X_y"
        );
        assert_eq!(to_upper("straße"), "STRAßE");
    }
}
