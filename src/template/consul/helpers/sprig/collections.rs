//! Sprig's list and dict functions: Sprig builds new lists and dicts from its arguments
//! (`merge` follows mergo like consul-template's `mergeMap`).

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::Value;

use super::super::go::{self, Number, arity, fail, string};

/// The items of a list argument (nil is an empty list).
pub(super) fn items<'a>(function: &str, args: &'a [Value]) -> gotmpl::Result<&'a [Value]> {
    arity(function, args, 1)?;
    list_arg(function, &args[0])
}

pub(super) fn list_arg<'a>(function: &str, value: &'a Value) -> gotmpl::Result<&'a [Value]> {
    match value {
        Value::List(items) => Ok(items),
        _ => Err(fail(
            function,
            format!("cannot find first on type {}", go::type_name(value)),
        )),
    }
}

pub(super) fn push(function: &str, args: &[Value]) -> gotmpl::Result<Value> {
    arity(function, args, 2)?;
    let mut list = list_arg(function, &args[0])?.to_vec();
    list.push(args[1].clone());
    go::list(function, list)
}

pub(super) fn prepend(function: &str, args: &[Value]) -> gotmpl::Result<Value> {
    arity(function, args, 2)?;
    let mut list = vec![args[1].clone()];
    list.extend(list_arg(function, &args[0])?.iter().cloned());
    go::list(function, list)
}

/// `rest` (all but the first) or `initial` (all but the last); nil for an empty list.
pub(super) fn tail(function: &str, args: &[Value], rest: bool) -> gotmpl::Result<Value> {
    let list = items(function, args)?;
    if list.is_empty() {
        return Ok(Value::Nil);
    }
    let kept = if rest {
        &list[1..]
    } else {
        &list[..list.len() - 1]
    };
    Ok(Value::List(kept.into()))
}

/// Go's `reflect.DeepEqual` on template values: the same type and the same value.
pub(super) fn deep_equal(a: &Value, b: &Value) -> bool {
    if go::type_name(a) != go::type_name(b) {
        return false;
    }
    match (a, b) {
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| deep_equal(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_equal(v, w)))
        }
        (Value::String(x), Value::String(y)) => match (go::number(a), go::number(b)) {
            (Some(Number::Float(p)), Some(Number::Float(q))) => p == q,
            _ => x == y,
        },
        (Value::Function(_), _) => false,
        _ => a == b,
    }
}

pub(super) fn uniq(function: &str, args: &[Value]) -> gotmpl::Result<Value> {
    let mut out: Vec<Value> = Vec::new();
    for item in items(function, args)? {
        // Quadratic like Sprig's; a list holds at most MAX_ITEMS, and uniq is meant for short
        // ones. Comparable values are bucketed by their text first to keep it near linear.
        if !out.iter().any(|seen| deep_equal(seen, item)) {
            out.push(item.clone());
        }
    }
    Ok(Value::List(out.into()))
}

pub(super) fn compact(function: &str, args: &[Value]) -> gotmpl::Result<Value> {
    Ok(Value::List(
        items(function, args)?
            .iter()
            .filter(|v| !go::is_empty(v))
            .cloned()
            .collect(),
    ))
}

pub(super) fn without(function: &str, args: &[Value]) -> gotmpl::Result<Value> {
    let Some((list, omit)) = args.split_first() else {
        return Err(fail(function, "wrong number of arguments"));
    };
    Ok(Value::List(
        list_arg(function, list)?
            .iter()
            .filter(|item| !omit.iter().any(|o| deep_equal(o, item)))
            .cloned()
            .collect(),
    ))
}

pub(super) fn has(function: &str, args: &[Value]) -> gotmpl::Result<Value> {
    arity(function, args, 2)?;
    if matches!(args[1], Value::Nil) {
        return Ok(Value::Bool(false));
    }
    Ok(Value::Bool(
        list_arg(function, &args[1])?
            .iter()
            .any(|item| deep_equal(&args[0], item)),
    ))
}

pub(super) fn chunk(function: &str, args: &[Value]) -> gotmpl::Result<Value> {
    arity(function, args, 2)?;
    let size = go::int(function, &args[0])?;
    let list = list_arg(function, &args[1])?;
    let Ok(size) = usize::try_from(size) else {
        return Err(fail(function, "the chunk size must be positive"));
    };
    if size == 0 {
        return Err(fail(function, "the chunk size must be positive"));
    }
    if list.is_empty() {
        // Go makes one chunk of `size` items from an empty list, and fails indexing it.
        return Err(fail(function, "index out of range"));
    }
    Ok(Value::List(
        list.chunks(size).map(|c| Value::List(c.into())).collect(),
    ))
}

pub(super) fn dict<'a>(
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

/// `pick DICT KEYS...` keeps the keys, `omit` drops them.
pub(super) fn pick(function: &str, args: &[Value], keep: bool) -> gotmpl::Result<Value> {
    let Some((d, keys)) = args.split_first() else {
        return Err(fail(function, "wrong number of arguments"));
    };
    let keys: Vec<&str> = keys
        .iter()
        .map(|k| string(function, k))
        .collect::<gotmpl::Result<_>>()?;
    Ok(Value::Map(Arc::new(
        dict(function, d)?
            .into_iter()
            .flatten()
            .filter(|(k, _)| keys.contains(&&***k) == keep)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )))
}

/// `merge DST SRC...` (mergo.Merge), `mergeOverwrite` (mergo.MergeWithOverwrite).
pub(super) fn merge(function: &str, args: &[Value], overwrite: bool) -> gotmpl::Result<Value> {
    let Some((dst, srcs)) = args.split_first() else {
        return Err(fail(function, "wrong number of arguments"));
    };
    let mut out = dict(function, dst)?.cloned().unwrap_or_default();
    for src in srcs {
        if let Some(src) = dict(function, src)? {
            out = super::super::merge(out, src, overwrite, 0)?;
        }
    }
    Ok(Value::Map(Arc::new(out)))
}

/// `dig KEY... DEFAULT DICT`.
pub(super) fn dig(args: &[Value]) -> gotmpl::Result<Value> {
    if args.len() < 3 {
        return Err(fail("dig", "dig needs at least three arguments"));
    }
    let (keys, rest) = args.split_at(args.len() - 2);
    let default = &rest[0];
    let mut at = dict("dig", &rest[1])?;
    for (i, key) in keys.iter().enumerate() {
        let key = string("dig", key)?;
        let Some(step) = at.and_then(|d| d.get(key)) else {
            return Ok(default.clone());
        };
        if i + 1 == keys.len() {
            return Ok(step.clone());
        }
        at = match step {
            Value::Map(map) => Some(map),
            _ => return Err(fail("dig", "a value on the path is not a dict")),
        };
    }
    Ok(default.clone())
}
