//! Sprig's type functions (`reflect.go`) and `deepEqual`: a value's Go type as `%T` names it
//! and its kind as `reflect.Kind` names it.
//!
//! hydrant's values know fewer types than Go's: every list is a `[]interface {}` and every map a
//! `map[string]interface {}`, where Go also has `[]string` (`split`'s), `map[string]string`
//! (`splitToMap`'s) and consul-template's `*dependency.Secret` (`secret`'s); every integer is
//! an `int`, where Sprig's arithmetic gives `int64`.

use gotmpl::Value;

use super::super::Function;
use super::super::go::{self, arity, string};
use crate::template::consul::values;

/// The type functions, without the `sprig_` prefix.
pub(in crate::template::consul::helpers) const REFLECT: &[(&str, Function)] = &[
    ("typeOf", |a| {
        arity("typeOf", a, 1)?;
        Ok(Value::String(go::type_name(&a[0]).into()))
    }),
    ("typeIs", |a| {
        arity("typeIs", a, 2)?;
        let target = string("typeIs", &a[0])?;
        Ok(Value::Bool(target == go::type_name(&a[1])))
    }),
    ("typeIsLike", |a| {
        arity("typeIsLike", a, 2)?;
        let target = string("typeIsLike", &a[0])?;
        let name = go::type_name(&a[1]);
        Ok(Value::Bool(
            target == name || name.strip_prefix('*') == Some(target),
        ))
    }),
    ("kindOf", |a| {
        arity("kindOf", a, 1)?;
        Ok(Value::String(kind(&a[0]).into()))
    }),
    ("kindIs", |a| {
        arity("kindIs", a, 2)?;
        let target = string("kindIs", &a[0])?;
        Ok(Value::Bool(target == kind(&a[1])))
    }),
    ("deepEqual", |a| {
        arity("deepEqual", a, 2)?;
        Ok(Value::Bool(deep_equal(&a[0], &a[1])))
    }),
];

/// `reflect.ValueOf(v).Kind().String()`.
pub(crate) fn kind(value: &Value) -> &'static str {
    match go::type_name(value) {
        "json.Number" => "string",
        "time.Time" => "struct",
        "<nil>" => "invalid",
        "[]interface {}" => "slice",
        "map[string]interface {}" => "map",
        other => other,
    }
}

/// `reflect.DeepEqual`: the same Go type and equal contents (Go's `json.Number` "1" is not
/// the string "1", nor the int 1).
fn deep_equal(a: &Value, b: &Value) -> bool {
    if go::type_name(a) != go::type_name(b) {
        return false;
    }
    match (a, b) {
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(x, y)| deep_equal(x, y))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_equal(v, w)))
        }
        (Value::String(x), Value::String(y)) => match (values::time_of(x), values::time_of(y)) {
            // Go compares a time's fields: its instant, location and monotonic reading.
            (Some(_), Some(_)) => x == y,
            _ => match (go::float_of(x), go::float_of(y)) {
                (Some(f), Some(g)) => f == g,
                _ => x == y,
            },
        },
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Function(_), Value::Function(_)) => false,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_deep_equality_follow_go() {
        let number = values::number("1");
        assert_eq!(kind(&number), "string");
        assert_eq!(go::type_name(&number), "json.Number");
        assert!(!deep_equal(&number, &Value::String("1".into())));
        assert!(!deep_equal(&Value::Int(1), &Value::Float(1.0)));
        let list = |items: Vec<Value>| Value::List(items.into());
        assert!(deep_equal(
            &list(vec![Value::Int(1), Value::String("a".into())]),
            &list(vec![Value::Int(1), Value::String("a".into())])
        ));
        assert_eq!(kind(&Value::Nil), "invalid");
        assert_eq!(kind(&list(vec![])), "slice");
    }
}
