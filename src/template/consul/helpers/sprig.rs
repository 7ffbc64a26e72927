//! The Sprig functions (Masterminds/sprig v3.2.3, which OpenBao's agent registers as
//! `sprig_<name>`) that real templates use: strings, lists, dicts, defaults, encodings, math,
//! hashes, regular expressions, paths and dates.
//!
//! Sprig converts loosely where consul-template is strict: its numbers go through
//! `spf13/cast` (a string or a `json.Number` is parsed, anything else is 0), its strings
//! through `fmt`'s `%v`. Where Sprig returns a Go map's keys or values, Go's order is random;
//! hydrant gives them sorted.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use gotmpl::{FuncMap, Value};

use super::super::{Context, functions::within, json};
use super::go::{self, arity, fail, string};
use super::{Function, STD, text};

mod certs;
mod collections;
mod dates;
mod decimals;
mod network;
mod numbers;
mod passwords;
mod reflect;
mod semver;
mod text;
mod url;
mod words;

use self::reflect::kind as reflect_kind;

/// Every Sprig function that needs nothing but its arguments, without the `sprig_` prefix.
pub(super) fn all() -> impl Iterator<Item = &'static (&'static str, Function)> {
    FUNCTIONS
        .iter()
        .chain(dates::DATES)
        .chain(reflect::REFLECT)
        .chain(semver::SEMVER)
        .chain(words::WORDS)
        .chain(url::URL)
        .chain(decimals::DECIMALS)
}

use self::collections::*;
use self::numbers::*;
use self::text::*;

/// The Sprig functions that need nothing but their arguments, without the `sprig_` prefix,
/// besides the dates and the type functions.
const FUNCTIONS: &[(&str, Function)] = &[
    // Crypto.
    ("encryptAES", passwords::encrypt_aes),
    ("decryptAES", passwords::decrypt_aes),
    ("buildCustomCert", certs::build_custom_cert),
    // Strings.
    ("hello", |_| Ok(text("Hello!"))),
    ("trim", |a| Ok(text(one("trim", a)?.trim()))),
    ("upper", |a| Ok(text(&super::to_upper(one("upper", a)?)))),
    ("lower", |a| Ok(text(&super::to_lower(one("lower", a)?)))),
    ("title", |a| Ok(text(&strings_title(one("title", a)?)))),
    ("untitle", |a| Ok(text(&untitle(one("untitle", a)?)))),
    ("substr", substr),
    ("trunc", trunc),
    ("repeat", |a| {
        arity("repeat", a, 2)?;
        let count = go::int("repeat", &a[0])?;
        let s = string("repeat", &a[1])?;
        let Ok(count) = usize::try_from(count) else {
            return Err(fail("repeat", "negative Repeat count"));
        };
        if count.saturating_mul(s.len()) > super::MAX_BUILD {
            return Err(super::too_long("repeat"));
        }
        Ok(text(&s.repeat(count)))
    }),
    ("trimAll", |a| {
        let (cutset, s) = two("trimAll", a)?;
        Ok(text(s.trim_matches(|c| cutset.contains(c))))
    }),
    ("trimall", |a| {
        let (cutset, s) = two("trimall", a)?;
        Ok(text(s.trim_matches(|c| cutset.contains(c))))
    }),
    ("trimSuffix", |a| {
        let (suffix, s) = two("trimSuffix", a)?;
        Ok(text(s.strip_suffix(suffix).unwrap_or(s)))
    }),
    ("trimPrefix", |a| {
        let (prefix, s) = two("trimPrefix", a)?;
        Ok(text(s.strip_prefix(prefix).unwrap_or(s)))
    }),
    ("nospace", |a| {
        Ok(text(
            &one("nospace", a)?
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>(),
        ))
    }),
    ("contains", |a| {
        let (sub, s) = two("contains", a)?;
        Ok(Value::Bool(s.contains(sub)))
    }),
    ("hasPrefix", |a| {
        let (prefix, s) = two("hasPrefix", a)?;
        Ok(Value::Bool(s.starts_with(prefix)))
    }),
    ("hasSuffix", |a| {
        let (suffix, s) = two("hasSuffix", a)?;
        Ok(Value::Bool(s.ends_with(suffix)))
    }),
    ("quote", |a| {
        let quoted: Vec<String> = a
            .iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(|v| go_quote(&strval(v)))
            .collect();
        Ok(text(&quoted.join(" ")))
    }),
    ("squote", |a| {
        let quoted: Vec<String> = a
            .iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(|v| format!("'{v}'"))
            .collect();
        Ok(text(&quoted.join(" ")))
    }),
    ("cat", |a| {
        let parts: Vec<String> = a
            .iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(ToString::to_string)
            .collect();
        Ok(text(&parts.join(" ")))
    }),
    ("indent", |a| {
        arity("indent", a, 2)?;
        let spaces = go::int("indent", &a[0])?;
        super::indent("indent", spaces.max(0), string("indent", &a[1])?, true)
    }),
    ("nindent", |a| {
        arity("nindent", a, 2)?;
        let spaces = go::int("nindent", &a[0])?;
        let Value::String(s) =
            super::indent("nindent", spaces.max(0), string("nindent", &a[1])?, true)?
        else {
            return Err(fail("nindent", "indent failed"));
        };
        Ok(text(&format!("\n{s}")))
    }),
    ("replace", |a| {
        arity("replace", a, 3)?;
        let from = string("replace", &a[0])?;
        let to = string("replace", &a[1])?;
        super::replace("replace", string("replace", &a[2])?, from, to, None)
    }),
    ("plural", |a| {
        arity("plural", a, 3)?;
        let one = string("plural", &a[0])?;
        let many = string("plural", &a[1])?;
        Ok(text(if go::int("plural", &a[2])? == 1 {
            one
        } else {
            many
        }))
    }),
    ("toString", |a| {
        arity("toString", a, 1)?;
        Ok(text(&strval(&a[0])))
    }),
    ("split", |a| split_map("split", a, None)),
    ("splitn", |a| {
        arity("splitn", a, 3)?;
        let n = go::int("splitn", &a[1])?;
        split_map("splitn", &[a[0].clone(), a[2].clone()], Some(n))
    }),
    ("splitList", |a| {
        let (sep, s) = two("splitList", a)?;
        go::strings("splitList", super::go_split(s, sep))
    }),
    ("toStrings", |a| {
        arity("toStrings", a, 1)?;
        strings_of("toStrings", &a[0])
    }),
    ("join", |a| {
        arity("join", a, 2)?;
        let sep = string("join", &a[0])?;
        let Value::List(items) = strings_of("join", &a[1])? else {
            return Ok(text(""));
        };
        super::join("join", sep, &Value::List(items))
    }),
    ("sortAlpha", |a| {
        arity("sortAlpha", a, 1)?;
        let Value::List(items) = strings_of("sortAlpha", &a[0])? else {
            return Ok(Value::List(Arc::from([])));
        };
        let mut items: Vec<Value> = items.to_vec();
        items.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
        Ok(Value::List(items.into()))
    }),
    // Lists.
    ("list", |a| go::list("list", a.to_vec())),
    ("tuple", |a| go::list("tuple", a.to_vec())),
    ("append", |a| push("append", a)),
    ("push", |a| push("push", a)),
    ("mustAppend", |a| push("mustAppend", a)),
    ("mustPush", |a| push("mustPush", a)),
    ("prepend", |a| prepend("prepend", a)),
    ("mustPrepend", |a| prepend("mustPrepend", a)),
    ("first", |a| {
        Ok(items("first", a)?.first().cloned().unwrap_or(Value::Nil))
    }),
    ("mustFirst", |a| {
        Ok(items("mustFirst", a)?
            .first()
            .cloned()
            .unwrap_or(Value::Nil))
    }),
    ("last", |a| {
        Ok(items("last", a)?.last().cloned().unwrap_or(Value::Nil))
    }),
    ("mustLast", |a| {
        Ok(items("mustLast", a)?.last().cloned().unwrap_or(Value::Nil))
    }),
    ("rest", |a| tail("rest", a, true)),
    ("mustRest", |a| tail("mustRest", a, true)),
    ("initial", |a| tail("initial", a, false)),
    ("mustInitial", |a| tail("mustInitial", a, false)),
    ("reverse", |a| {
        let mut list = items("reverse", a)?.to_vec();
        list.reverse();
        Ok(Value::List(list.into()))
    }),
    ("mustReverse", |a| {
        let mut list = items("mustReverse", a)?.to_vec();
        list.reverse();
        Ok(Value::List(list.into()))
    }),
    ("uniq", |a| uniq("uniq", a)),
    ("mustUniq", |a| uniq("mustUniq", a)),
    ("compact", |a| compact("compact", a)),
    ("mustCompact", |a| compact("mustCompact", a)),
    ("without", |a| without("without", a)),
    ("mustWithout", |a| without("mustWithout", a)),
    ("has", |a| has("has", a)),
    ("mustHas", |a| has("mustHas", a)),
    ("concat", |a| {
        let mut out = Vec::new();
        for list in a {
            match list {
                Value::List(items) => out.extend(items.iter().cloned()),
                Value::Nil => {}
                _ => return Err(fail("concat", "an argument is not a list")),
            }
            if out.len() > go::MAX_ITEMS {
                return go::list("concat", out);
            }
        }
        go::list("concat", out)
    }),
    ("chunk", |a| chunk("chunk", a)),
    ("mustChunk", |a| chunk("mustChunk", a)),
    ("until", |a| {
        arity("until", a, 1)?;
        let count = go::int("until", &a[0])?;
        super::range_list("until", 0, count, if count < 0 { -1 } else { 1 })
    }),
    ("untilStep", |a| {
        arity("untilStep", a, 3)?;
        let start = go::int("untilStep", &a[0])?;
        let stop = go::int("untilStep", &a[1])?;
        let step = go::int("untilStep", &a[2])?;
        if (stop < start && step >= 0) || (stop >= start && step <= 0) {
            return Ok(Value::List(Arc::from([])));
        }
        super::range_list("untilStep", start, stop, step)
    }),
    // Dicts.
    ("dict", |a| {
        let mut map = BTreeMap::new();
        for pair in a.chunks(2) {
            let value = pair.get(1).cloned().unwrap_or_else(|| text(""));
            map.insert(Arc::from(strval(&pair[0]).as_str()), value);
        }
        Ok(Value::Map(Arc::new(map)))
    }),
    ("get", |a| {
        arity("get", a, 2)?;
        let key = string("get", &a[1])?;
        Ok(dict("get", &a[0])?
            .and_then(|d| d.get(key).cloned())
            .unwrap_or_else(|| text("")))
    }),
    ("hasKey", |a| {
        arity("hasKey", a, 2)?;
        let key = string("hasKey", &a[1])?;
        Ok(Value::Bool(
            dict("hasKey", &a[0])?.is_some_and(|d| d.contains_key(key)),
        ))
    }),
    ("pluck", |a| {
        let Some((key, dicts)) = a.split_first() else {
            return Err(fail("pluck", "wrong number of arguments"));
        };
        let key = string("pluck", key)?;
        let mut out = Vec::new();
        for d in dicts {
            if let Some(v) = dict("pluck", d)?.and_then(|d| d.get(key)) {
                out.push(v.clone());
            }
        }
        go::list("pluck", out)
    }),
    ("keys", |a| {
        let mut keys = Vec::new();
        for d in a {
            keys.extend(dict("keys", d)?.into_iter().flat_map(|d| d.keys().cloned()));
        }
        keys.sort();
        go::list("keys", keys.into_iter().map(Value::String).collect())
    }),
    ("values", |a| {
        arity("values", a, 1)?;
        go::list(
            "values",
            dict("values", &a[0])?
                .into_iter()
                .flat_map(|d| d.values().cloned())
                .collect(),
        )
    }),
    ("pick", |a| pick("pick", a, true)),
    ("omit", |a| pick("omit", a, false)),
    ("merge", |a| merge("merge", a, false)),
    ("mustMerge", |a| merge("mustMerge", a, false)),
    ("mergeOverwrite", |a| merge("mergeOverwrite", a, true)),
    ("mustMergeOverwrite", |a| {
        merge("mustMergeOverwrite", a, true)
    }),
    ("dig", dig),
    ("deepCopy", |a| {
        arity("deepCopy", a, 1)?;
        Ok(a[0].clone())
    }),
    ("mustDeepCopy", |a| {
        arity("mustDeepCopy", a, 1)?;
        Ok(a[0].clone())
    }),
    // Defaults and flow.
    ("default", |a| {
        let Some((default, given)) = a.split_first() else {
            return Err(fail("default", "wrong number of arguments"));
        };
        Ok(match given.first() {
            Some(value) if !go::is_empty(value) => value.clone(),
            _ => default.clone(),
        })
    }),
    ("empty", |a| {
        arity("empty", a, 1)?;
        Ok(Value::Bool(go::is_empty(&a[0])))
    }),
    ("coalesce", |a| {
        Ok(a.iter()
            .find(|v| !go::is_empty(v))
            .cloned()
            .unwrap_or(Value::Nil))
    }),
    ("all", |a| {
        Ok(Value::Bool(a.iter().all(|v| !go::is_empty(v))))
    }),
    ("any", |a| {
        Ok(Value::Bool(a.iter().any(|v| !go::is_empty(v))))
    }),
    ("ternary", |a| {
        arity("ternary", a, 3)?;
        let Value::Bool(condition) = a[2] else {
            return Err(fail(
                "ternary",
                format!(
                    "wrong type for value; expected bool; got {}",
                    go::type_name(&a[2])
                ),
            ));
        };
        Ok(if condition {
            a[0].clone()
        } else {
            a[1].clone()
        })
    }),
    ("fail", |a| {
        arity("fail", a, 1)?;
        string("fail", &a[0])?;
        Err(fail(
            "fail",
            "the template failed on purpose (its message is not shown)",
        ))
    }),
    // Encodings.
    ("b64enc", |a| Ok(text(&STD.encode(one("b64enc", a)?)))),
    ("b64dec", |a| {
        let s = one("b64dec", a)?;
        Ok(match STD.decode(s) {
            Ok(bytes) => crate::template::consul::values::bytes(&bytes),
            Err(e) => text(&base64_error(&e)),
        })
    }),
    ("b32enc", |a| {
        Ok(text(
            &data_encoding::BASE32.encode(one("b32enc", a)?.as_bytes()),
        ))
    }),
    ("b32dec", |a| {
        let s = one("b32dec", a)?;
        Ok(match data_encoding::BASE32.decode(s.as_bytes()) {
            Ok(bytes) => crate::template::consul::values::bytes(&bytes),
            Err(e) => text(&format!("illegal base32 data at input byte {}", e.position)),
        })
    }),
    ("toJson", |a| {
        Ok(to_json("toJson", a, false, true).unwrap_or_else(|_| text("")))
    }),
    ("mustToJson", |a| to_json("mustToJson", a, false, true)),
    ("toPrettyJson", |a| {
        Ok(to_json("toPrettyJson", a, true, true).unwrap_or_else(|_| text("")))
    }),
    ("mustToPrettyJson", |a| {
        to_json("mustToPrettyJson", a, true, true)
    }),
    ("toRawJson", |a| to_json("toRawJson", a, false, false)),
    ("mustToRawJson", |a| {
        to_json("mustToRawJson", a, false, false)
    }),
    ("fromJson", |a| {
        arity("fromJson", a, 1)?;
        Ok(from_json(string("fromJson", &a[0])?).unwrap_or(Value::Nil))
    }),
    ("mustFromJson", |a| {
        arity("mustFromJson", a, 1)?;
        from_json(string("mustFromJson", &a[0])?)
            .ok_or_else(|| fail("mustFromJson", "the text is not valid JSON"))
    }),
    // Math: integers through cast.ToInt64, floats through cast.ToFloat64.
    ("add", |a| {
        Ok(Value::Int(
            a.iter().map(to_int64).fold(0, i64::wrapping_add),
        ))
    }),
    ("add1", |a| {
        arity("add1", a, 1)?;
        Ok(Value::Int(to_int64(&a[0]).wrapping_add(1)))
    }),
    ("sub", |a| {
        arity("sub", a, 2)?;
        Ok(Value::Int(to_int64(&a[0]).wrapping_sub(to_int64(&a[1]))))
    }),
    ("mul", |a| {
        Ok(Value::Int(
            a.iter().map(to_int64).fold(1, i64::wrapping_mul),
        ))
    }),
    ("div", |a| {
        arity("div", a, 2)?;
        to_int64(&a[0])
            .checked_div(to_int64(&a[1]))
            .map(Value::Int)
            .ok_or_else(|| fail("div", "runtime error: integer divide by zero"))
    }),
    ("mod", |a| {
        arity("mod", a, 2)?;
        to_int64(&a[0])
            .checked_rem(to_int64(&a[1]))
            .map(Value::Int)
            .ok_or_else(|| fail("mod", "runtime error: integer divide by zero"))
    }),
    ("max", |a| {
        Ok(Value::Int(a.iter().map(to_int64).max().unwrap_or(0)))
    }),
    ("biggest", |a| {
        Ok(Value::Int(a.iter().map(to_int64).max().unwrap_or(0)))
    }),
    ("min", |a| {
        Ok(Value::Int(a.iter().map(to_int64).min().unwrap_or(0)))
    }),
    ("maxf", |a| {
        Ok(go::float(
            a.iter().map(to_float64).reduce(go_max).unwrap_or(0.0),
        ))
    }),
    ("minf", |a| {
        Ok(go::float(
            a.iter().map(to_float64).reduce(go_min).unwrap_or(0.0),
        ))
    }),
    ("int", |a| {
        arity("int", a, 1)?;
        Ok(Value::Int(to_int64(&a[0])))
    }),
    ("int64", |a| {
        arity("int64", a, 1)?;
        Ok(Value::Int(to_int64(&a[0])))
    }),
    ("float64", |a| {
        arity("float64", a, 1)?;
        Ok(go::float(to_float64(&a[0])))
    }),
    ("atoi", |a| {
        Ok(Value::Int(one("atoi", a)?.parse().unwrap_or(0)))
    }),
    ("floor", |a| {
        arity("floor", a, 1)?;
        Ok(go::float(to_float64(&a[0]).floor()))
    }),
    ("ceil", |a| {
        arity("ceil", a, 1)?;
        Ok(go::float(to_float64(&a[0]).ceil()))
    }),
    ("round", round),
    ("seq", seq),
    // Hashes.
    ("sha1sum", |a| {
        let digest = ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            one("sha1sum", a)?.as_bytes(),
        );
        Ok(text(&super::hex(digest.as_ref())))
    }),
    ("sha256sum", |a| {
        let digest = ring::digest::digest(&ring::digest::SHA256, one("sha256sum", a)?.as_bytes());
        Ok(text(&super::hex(digest.as_ref())))
    }),
    ("adler32sum", |a| {
        Ok(text(&adler32(one("adler32sum", a)?.as_bytes()).to_string()))
    }),
    // Regular expressions; Sprig's argument order puts the expression first.
    ("regexMatch", |a| regex_match("regexMatch", a)),
    ("mustRegexMatch", |a| regex_match("mustRegexMatch", a)),
    ("regexFind", |a| regex_find("regexFind", a)),
    ("mustRegexFind", |a| regex_find("mustRegexFind", a)),
    ("regexFindAll", |a| regex_find_all("regexFindAll", a)),
    ("mustRegexFindAll", |a| {
        regex_find_all("mustRegexFindAll", a)
    }),
    ("regexReplaceAll", |a| {
        regex_replace("regexReplaceAll", a, false)
    }),
    ("mustRegexReplaceAll", |a| {
        regex_replace("mustRegexReplaceAll", a, false)
    }),
    ("regexReplaceAllLiteral", |a| {
        regex_replace("regexReplaceAllLiteral", a, true)
    }),
    ("mustRegexReplaceAllLiteral", |a| {
        regex_replace("mustRegexReplaceAllLiteral", a, true)
    }),
    ("regexSplit", |a| regex_split("regexSplit", a)),
    ("mustRegexSplit", |a| regex_split("mustRegexSplit", a)),
    ("regexQuoteMeta", |a| {
        Ok(text(&quote_meta(one("regexQuoteMeta", a)?)))
    }),
    // Paths (Go's `path`, always slash-separated).
    ("base", |a| Ok(text(&path_base(one("base", a)?)))),
    ("dir", |a| Ok(text(&path_dir(one("dir", a)?)))),
    ("clean", |a| Ok(text(&path_clean(one("clean", a)?)))),
    ("ext", |a| Ok(text(path_ext(one("ext", a)?)))),
    ("isAbs", |a| {
        Ok(Value::Bool(one("isAbs", a)?.starts_with('/')))
    }),
    // Go's `path/filepath`, the same as `path` on Linux.
    ("osBase", |a| Ok(text(&path_base(one("osBase", a)?)))),
    ("osDir", |a| Ok(text(&path_dir(one("osDir", a)?)))),
    ("osClean", |a| Ok(text(&path_clean(one("osClean", a)?)))),
    ("osExt", |a| Ok(text(path_ext(one("osExt", a)?)))),
    ("osIsAbs", |a| {
        Ok(Value::Bool(one("osIsAbs", a)?.starts_with('/')))
    }),
    ("slice", |a| slice("slice", a)),
    ("mustSlice", |a| slice("mustSlice", a)),
    // Random values, from the system's generator.
    ("randInt", |a| {
        arity("randInt", a, 2)?;
        let min = go::int("randInt", &a[0])?;
        let max = go::int("randInt", &a[1])?;
        let span = max
            .checked_sub(min)
            .and_then(|n| u64::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| fail("randInt", "invalid argument to Intn"))?;
        let drawn = i64::try_from(random_below("randInt", span)?).unwrap_or(0);
        Ok(Value::Int(min + drawn))
    }),
    ("randBytes", |a| {
        arity("randBytes", a, 1)?;
        let count = usize::try_from(go::int("randBytes", &a[0])?)
            .map_err(|_| fail("randBytes", "negative count"))?;
        if count > super::MAX_BUILD / 2 {
            return Err(super::too_long("randBytes"));
        }
        Ok(text(&STD.encode(random_bytes("randBytes", count)?)))
    }),
    ("shuffle", |a| {
        let mut chars: Vec<char> = one("shuffle", a)?.chars().collect();
        for i in (1..chars.len()).rev() {
            let j = random_below("shuffle", i as u64 + 1)?;
            chars.swap(i, usize::try_from(j).unwrap_or(0));
        }
        Ok(text(&chars.into_iter().collect::<String>()))
    }),
    ("randAlphaNum", |a| {
        random_text(
            "randAlphaNum",
            a,
            b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        )
    }),
    ("randAlpha", |a| {
        random_text(
            "randAlpha",
            a,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        )
    }),
    ("randNumeric", |a| {
        random_text("randNumeric", a, b"0123456789")
    }),
    ("randAscii", |a| {
        let printable: Vec<u8> = (b' '..=b'~').collect();
        random_text("randAscii", a, &printable)
    }),
    ("uuidv4", |a| {
        arity("uuidv4", a, 0)?;
        let mut bytes = random_bytes("uuidv4", 16)?;
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex = super::hex(&bytes);
        Ok(text(&format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )))
    }),
];

/// `set` and `unset`, which Go runs for their change in place: admission lets a template call
/// them only where the agent follows that change (`injector::consul_template::FOLLOWED_ONLY`),
/// so they return the changed dict.
pub(super) const FOLLOWED: &[(&str, Function)] = &[
    ("set", |a| {
        arity("set", a, 3)?;
        let key = string("set", &a[1])?;
        let Some(d) = dict("set", &a[0])? else {
            return Err(fail("set", "assignment to entry in nil map"));
        };
        let mut d = d.clone();
        d.insert(Arc::from(key), a[2].clone());
        Ok(Value::Map(Arc::new(d)))
    }),
    ("unset", |a| {
        arity("unset", a, 2)?;
        let key = string("unset", &a[1])?;
        let mut d = dict("unset", &a[0])?.cloned().unwrap_or_default();
        d.remove(key);
        Ok(Value::Map(Arc::new(d)))
    }),
];

/// The Sprig functions that read the agent's environment or spend the render's [`Costs`].
#[cfg(test)]
pub(super) const WITH_CONTEXT: &[&str] =
    &["env", "expandenv", "bcrypt", "htpasswd", "derivePassword"];

/// A function that spends the render's [`Costs`].
type CostlyFunction = fn(&Costs, &[Value]) -> gotmpl::Result<Value>;

/// The Sprig functions that spend the render's [`Costs`], without the `sprig_` prefix.
const COSTLY: &[(&str, CostlyFunction)] = &[
    ("bcrypt", passwords::bcrypt),
    ("htpasswd", passwords::htpasswd),
    ("derivePassword", passwords::derive_password),
    ("genPrivateKey", certs::gen_private_key),
    ("genCA", |c, a| certs::gen_ca(c, a, false)),
    ("genCAWithKey", |c, a| certs::gen_ca(c, a, true)),
    ("genSelfSignedCert", |c, a| {
        certs::gen_self_signed(c, a, false)
    }),
    ("genSelfSignedCertWithKey", |c, a| {
        certs::gen_self_signed(c, a, true)
    }),
    ("genSignedCert", |c, a| certs::gen_signed(c, a, false)),
    ("genSignedCertWithKey", |c, a| certs::gen_signed(c, a, true)),
    ("getHostByName", network::get_host_by_name),
];

/// The most password hashes (bcrypt at cost 10, derivePassword's scrypt: each some 50 to 100 ms
/// of a core) one render attempt may compute: a pod author's template must not hold the agent
/// for minutes.
pub(crate) const MAX_HASHES_PER_RENDER: u32 = 32;

/// The most RSA keys (4096 bits for genPrivateKey, some seconds of a core; 2048 for the
/// certificates' own keys) one render attempt may make.
pub(crate) const MAX_KEYS_PER_RENDER: u32 = 8;

/// The most host names one render attempt may look up (each may wait up to
/// `network::LOOKUP_TIMEOUT`).
pub(crate) const MAX_LOOKUPS_PER_RENDER: u32 = 16;

/// What one render attempt has spent on Sprig's slow functions; the engine resets it before
/// each attempt.
#[derive(Debug, Default)]
pub(crate) struct Costs {
    hashes: std::sync::atomic::AtomicU32,
    keys: std::sync::atomic::AtomicU32,
    lookups: std::sync::atomic::AtomicU32,
}

impl Costs {
    /// Starts a render attempt's count again.
    pub(crate) fn reset(&self) {
        self.hashes.store(0, std::sync::atomic::Ordering::Relaxed);
        self.keys.store(0, std::sync::atomic::Ordering::Relaxed);
        self.lookups.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts one host name lookup, or refuses it past [`MAX_LOOKUPS_PER_RENDER`].
    fn lookup(&self, function: &str) -> gotmpl::Result<()> {
        let before = self
            .lookups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if before >= MAX_LOOKUPS_PER_RENDER {
            return Err(fail(
                function,
                format!(
                    "a template may look up at most {MAX_LOOKUPS_PER_RENDER} host names in one \
                     render"
                ),
            ));
        }
        Ok(())
    }

    /// Counts one RSA key, or refuses it past [`MAX_KEYS_PER_RENDER`].
    fn key(&self, function: &str) -> gotmpl::Result<()> {
        let before = self.keys.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if before >= MAX_KEYS_PER_RENDER {
            return Err(fail(
                function,
                format!(
                    "a template may make at most {MAX_KEYS_PER_RENDER} RSA keys (genPrivateKey, \
                     and genCA, genSelfSignedCert, genSignedCert without a key) in one render"
                ),
            ));
        }
        Ok(())
    }

    /// Counts one password hash, or refuses it past [`MAX_HASHES_PER_RENDER`].
    fn hash(&self, function: &str) -> gotmpl::Result<()> {
        let before = self
            .hashes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if before >= MAX_HASHES_PER_RENDER {
            return Err(fail(
                function,
                format!(
                    "a template may compute at most {MAX_HASHES_PER_RENDER} password hashes \
                     (bcrypt, htpasswd, derivePassword) in one render"
                ),
            ));
        }
        Ok(())
    }
}

/// Registers [`WITH_CONTEXT`].
pub(super) fn register_with_context(map: &mut FuncMap, context: &Context) {
    for (name, function) in COSTLY {
        let (costs, limit) = (context.costs.clone(), context.limit);
        map.insert(
            format!("sprig_{name}"),
            Arc::new(move |args: &[Value]| within(limit, name, function(&costs, args)?)),
        );
    }
    let c = context.clone();
    map.insert(
        "sprig_env".into(),
        Arc::new(move |args: &[Value]| {
            let name = one("sprig_env", args)?;
            Ok(text(&c.env.var(name).unwrap_or_default()))
        }),
    );
    let c = context.clone();
    map.insert(
        "sprig_expandenv".into(),
        Arc::new(move |args: &[Value]| {
            let s = one("sprig_expandenv", args)?;
            let out = expand(s, |name| c.env.var(name).unwrap_or_default());
            within(c.limit, "sprig_expandenv", text(&out))
        }),
    );
}

/// A uniform draw from `0..n` (`n` > 0), rejecting the draws that would favour some values.
fn random_below(function: &str, n: u64) -> gotmpl::Result<u64> {
    let zone = u64::MAX - u64::MAX % n;
    loop {
        let bytes = random_bytes(function, 8)?;
        let mut word = [0; 8];
        word.copy_from_slice(&bytes);
        let x = u64::from_le_bytes(word);
        if x < zone {
            return Ok(x % n);
        }
    }
}

/// Sprig's `slice LIST [START [END]]`: Go's `list[start:end]`; an empty list gives nil.
fn slice(function: &str, args: &[Value]) -> gotmpl::Result<Value> {
    let Some((list, indices)) = args.split_first() else {
        return Err(fail(function, "wrong number of arguments"));
    };
    let Value::List(items) = list else {
        return Err(fail(
            function,
            format!(
                "list should be type of slice or array but {}",
                reflect_kind(list)
            ),
        ));
    };
    if items.is_empty() {
        return Ok(Value::Nil);
    }
    let start = indices.first().map_or(0, to_int64);
    let end = indices.get(1).map_or(items.len() as i64, to_int64);
    match (usize::try_from(start), usize::try_from(end)) {
        (Ok(start), Ok(end)) if start <= end && end <= items.len() => {
            Ok(Value::List(items[start..end].into()))
        }
        _ => Err(fail(function, "slice bounds out of range")),
    }
}

pub(super) fn one<'a>(function: &str, args: &'a [Value]) -> gotmpl::Result<&'a str> {
    arity(function, args, 1)?;
    string(function, &args[0])
}

pub(super) fn two<'a>(function: &str, args: &'a [Value]) -> gotmpl::Result<(&'a str, &'a str)> {
    arity(function, args, 2)?;
    Ok((string(function, &args[0])?, string(function, &args[1])?))
}

/// Sprig's `strval`: a string as it is, anything else as `%v` prints it.
fn strval(value: &Value) -> String {
    value.to_string()
}

/// Go's `strconv.Quote` (`%q`): printable characters as they are, others escaped.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if is_print(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.IsPrint`, approximately: not a control, a format character or a space other
/// than U+0020.
fn is_print(c: char) -> bool {
    !(c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}'))
}

/// Go's `strings.Title`: the first letter after a separator in title case.
fn strings_title(s: &str) -> String {
    let mut previous = ' ';
    s.chars()
        .map(|c| {
            let separator = if previous.is_ascii() {
                !(previous.is_ascii_alphanumeric() || previous == '_')
            } else {
                !previous.is_alphanumeric() && previous.is_whitespace()
            };
            let out = if separator {
                super::single(c, c.to_uppercase())
            } else {
                c
            };
            previous = c;
            out
        })
        .collect()
}

/// goutils' `Uncapitalize`: the first letter of each space-separated word in lower case.
fn untitle(s: &str) -> String {
    let mut after_space = true;
    s.chars()
        .map(|c| {
            let out = if after_space {
                super::single(c, c.to_lowercase())
            } else {
                c
            };
            after_space = c.is_whitespace();
            out
        })
        .collect()
}

fn byte_slice<'a>(function: &str, s: &'a str, start: usize, end: usize) -> gotmpl::Result<&'a str> {
    s.get(start..end).ok_or_else(|| {
        fail(
            function,
            "slice bounds out of range or inside a UTF-8 character",
        )
    })
}

/// `substr START END S`, in bytes as Go slices strings.
fn substr(args: &[Value]) -> gotmpl::Result<Value> {
    arity("substr", args, 3)?;
    let start = go::int("substr", &args[0])?;
    let end = go::int("substr", &args[1])?;
    let s = string("substr", &args[2])?;
    let len = s.len() as i64;
    let (from, to) = if start < 0 {
        (0, end)
    } else if end < 0 || end > len {
        (start, len)
    } else {
        (start, end)
    };
    let (Ok(from), Ok(to)) = (usize::try_from(from), usize::try_from(to)) else {
        return Err(fail("substr", "slice bounds out of range"));
    };
    Ok(text(byte_slice("substr", s, from, to)?))
}

/// `trunc N S`: the first N bytes, or the last -N.
fn trunc(args: &[Value]) -> gotmpl::Result<Value> {
    arity("trunc", args, 2)?;
    let c = go::int("trunc", &args[0])?;
    let s = string("trunc", &args[1])?;
    let len = s.len() as i64;
    if c < 0 && len + c > 0 {
        return Ok(text(byte_slice("trunc", s, (len + c) as usize, s.len())?));
    }
    if c >= 0 && len > c {
        return Ok(text(byte_slice("trunc", s, 0, c as usize)?));
    }
    Ok(text(s))
}

/// Sprig's `split`/`splitn`: a map from `_0`, `_1`... to the parts.
fn split_map(function: &str, args: &[Value], n: Option<i64>) -> gotmpl::Result<Value> {
    let (sep, s) = two(function, args)?;
    let parts: Vec<&str> = match n {
        Some(0) => Vec::new(),
        Some(n) if n > 0 => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if sep.is_empty() {
                let mut parts: Vec<&str> =
                    super::go_split(s, sep).take(n.saturating_sub(1)).collect();
                let used: usize = parts.iter().map(|p| p.len()).sum();
                if used < s.len() || parts.len() < n {
                    parts.push(&s[used..]);
                }
                parts.retain(|p| !p.is_empty() || s.is_empty());
                parts
            } else {
                s.splitn(n, sep).collect()
            }
        }
        _ => super::go_split(s, sep).take(go::MAX_ITEMS + 1).collect(),
    };
    if parts.len() > go::MAX_ITEMS {
        return Err(fail(function, "the map would be too large"));
    }
    Ok(Value::Map(Arc::new(
        parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| (Arc::from(format!("_{i}").as_str()), text(part)))
            .collect(),
    )))
}

/// Sprig's `strslice`: a list's items (nil ones dropped) or a value, each as text.
fn strings_of(function: &str, value: &Value) -> gotmpl::Result<Value> {
    let texts: Vec<String> = match value {
        Value::List(items) => items
            .iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(strval)
            .collect(),
        Value::Nil => Vec::new(),
        other => vec![strval(other)],
    };
    go::strings(function, texts.iter().map(String::as_str))
}

fn to_json(
    function: &str,
    args: &[Value],
    pretty: bool,
    escape_html: bool,
) -> gotmpl::Result<Value> {
    arity(function, args, 1)?;
    json::encode(function, &args[0], pretty, escape_html).map(|s| text(&s))
}

fn from_json(s: &str) -> Option<Value> {
    serde_json::from_str::<serde_json::Value>(s)
        .ok()
        .map(|json| super::from_decoded(&json))
}

/// Go's `base64.CorruptInputError` text, as Sprig's `b64dec` returns it.
fn base64_error(e: &base64::DecodeError) -> String {
    let at = match e {
        base64::DecodeError::InvalidByte(at, _) | base64::DecodeError::InvalidLastSymbol(at, _) => {
            *at
        }
        base64::DecodeError::InvalidLength(at) => *at,
        base64::DecodeError::InvalidPadding => 0,
    };
    format!("illegal base64 data at input byte {at}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_paths_follow_go() {
        assert_eq!(
            go_quote("a\"b\\\n\u{1}é\u{a0}"),
            "\"a\\\"b\\\\\\n\\x01é\\u00a0\""
        );
        assert_eq!(path_clean("a//b/../c/."), "a/c");
        assert_eq!(path_clean("/../a"), "/a");
        assert_eq!(path_dir("/a/b/c"), "/a/b");
        assert_eq!(path_base("/a/b/"), "b");
        assert_eq!(path_ext("a/b.tar.gz"), ".gz");
        assert_eq!(quote_meta("a.b-c[d]"), "a\\.b-c\\[d\\]");
    }

    #[test]
    fn cast_reads_numbers_as_go_does() {
        assert_eq!(go::parse_int_base0("0x1F"), Some(31));
        assert_eq!(go::parse_int_base0("010"), Some(8));
        assert_eq!(go::parse_int_base0("-1_000"), None);
        assert_eq!(go::parse_int_base0("0x_1F"), Some(31));
        assert_eq!(
            go::parse_int_base0("18446744073709551615"),
            Some(u64::MAX.into())
        );
        assert_eq!(to_int64(&Value::String("12.000".into())), 12);
        assert_eq!(to_int64(&Value::String("x".into())), 0);
    }

    #[test]
    fn expandenv_follows_os_expand() {
        let lookup = |name: &str| format!("<{name}>");
        assert_eq!(
            expand("a $B ${C}d $ $1x ${}e", lookup),
            "a <B> <C>d $ <1>x e"
        );
    }

    #[test]
    fn adler32_matches_the_reference() {
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }
}
