//! consul-template's `toTOML`: BurntSushi/toml v1.5's encoder, byte for byte, trimmed of
//! surrounding space: a table's plain keys first, then its tables (`[a.b]`, indented two
//! spaces a level) and arrays of tables (`[[a]]`), keys sorted byte-wise and quoted unless
//! bare, floats always with a decimal point and never an exponent (`1000000.0`), nil values
//! left out. No TOML crate writes this layout.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use gotmpl::Value;

use super::super::values;
use super::go;

/// How deep tables and arrays may nest.
const MAX_DEPTH: usize = 1000;

/// The encoder's `Encode(value)`, trimmed.
pub(crate) fn encode(value: &Value, limit: usize) -> gotmpl::Result<String> {
    let mut encoder = Encoder {
        out: String::new(),
        written: false,
        limit,
    };
    encoder.encode(&[], value, 0)?;
    Ok(encoder.out.trim().to_owned())
}

fn fail(what: &str) -> gotmpl::TemplateError {
    go::fail("toTOML", what)
}

/// What TOML makes of a value: a table, an array of tables, or a value written after `=`.
#[derive(PartialEq)]
enum Kind {
    Nil,
    Table,
    ArrayOfTables,
    Other,
}

fn kind(value: &Value) -> gotmpl::Result<Kind> {
    Ok(match value {
        Value::Nil => Kind::Nil,
        Value::Map(_) => Kind::Table,
        Value::List(items) if items.is_empty() => Kind::Other,
        Value::List(items) => {
            let mut tables = true;
            for item in items.iter() {
                match kind(item)? {
                    Kind::Nil => return Err(fail("toml: cannot encode array with nil element")),
                    Kind::Table => {}
                    _ => tables = false,
                }
            }
            if tables {
                Kind::ArrayOfTables
            } else {
                Kind::Other
            }
        }
        _ => Kind::Other,
    })
}

struct Encoder {
    out: String,
    written: bool,
    limit: usize,
}

impl Encoder {
    fn write(&mut self, text: &str) -> gotmpl::Result<()> {
        self.out.push_str(text);
        self.written = true;
        if self.out.len() > self.limit {
            return Err(fail("the result would be too long"));
        }
        Ok(())
    }

    fn newline(&mut self) -> gotmpl::Result<()> {
        if self.written {
            self.write("\n")?;
        }
        Ok(())
    }

    fn encode(&mut self, key: &[&str], value: &Value, depth: usize) -> gotmpl::Result<()> {
        if depth > MAX_DEPTH {
            return Err(fail("the value is nested too deeply"));
        }
        match (value, kind(value)?) {
            (_, Kind::Nil) => Ok(()),
            (Value::Map(map), _) => {
                if key.len() == 1 {
                    self.newline()?;
                }
                if !key.is_empty() {
                    self.write(&format!("{}[{}]", indent(key), dotted(key)))?;
                    self.newline()?;
                }
                self.table(key, map, false, depth)
            }
            (Value::List(items), Kind::ArrayOfTables) => {
                if key.is_empty() {
                    return Err(fail("toml: top-level values must be Go maps or structs"));
                }
                for item in items.iter() {
                    let Value::Map(map) = item else { continue };
                    self.newline()?;
                    self.write(&format!("{}[[{}]]", indent(key), dotted(key)))?;
                    self.newline()?;
                    self.table(key, map, false, depth)?;
                }
                Ok(())
            }
            _ => self.key_value(key, value, false, depth),
        }
    }

    fn key_value(
        &mut self,
        key: &[&str],
        value: &Value,
        inline: bool,
        depth: usize,
    ) -> gotmpl::Result<()> {
        if let Some(last) = key.last() {
            self.write(&format!("{}{} = ", indent(key), bare_or_quoted(last)))?;
        }
        self.element(value, depth)?;
        if !key.is_empty() && !inline {
            self.newline()?;
        }
        Ok(())
    }

    fn table(
        &mut self,
        key: &[&str],
        map: &BTreeMap<Arc<str>, Value>,
        inline: bool,
        depth: usize,
    ) -> gotmpl::Result<()> {
        let (mut direct, mut sub) = (Vec::new(), Vec::new());
        for (k, v) in map.iter() {
            if matches!(kind(v)?, Kind::Table | Kind::ArrayOfTables) {
                sub.push((&**k, v));
            } else {
                direct.push((&**k, v));
            }
        }
        if inline {
            self.write("{")?;
        }
        let trailing_comma = !sub.is_empty();
        for (keys, trailing) in [(direct, trailing_comma), (sub, false)] {
            let count = keys.len();
            for (i, (k, v)) in keys.into_iter().enumerate() {
                if matches!(v, Value::Nil) {
                    continue;
                }
                if inline {
                    self.key_value(&[k], v, true, depth + 1)?;
                    if trailing || i != count - 1 {
                        self.write(", ")?;
                    }
                } else {
                    let mut path = key.to_vec();
                    path.push(k);
                    self.encode(&path, v, depth + 1)?;
                }
            }
        }
        if inline {
            self.write("}")?;
        }
        Ok(())
    }

    fn element(&mut self, value: &Value, depth: usize) -> gotmpl::Result<()> {
        if depth > MAX_DEPTH {
            return Err(fail("the value is nested too deeply"));
        }
        match value {
            Value::String(s) if go::number(value).is_none() && !values::is_number(s) => {
                self.write(&quoted(s))
            }
            Value::String(s) => {
                let text = match go::number(value) {
                    Some(go::Number::Float(f)) => float(f),
                    _ if s.is_empty() => "0".to_owned(),
                    _ => match s.parse::<i64>() {
                        Ok(i) => i.to_string(),
                        Err(_) => s
                            .parse::<f64>()
                            .map(float)
                            .map_err(|_| fail("a number cannot be converted"))?,
                    },
                };
                self.write(&text)
            }
            Value::Bool(b) => self.write(&b.to_string()),
            Value::Int(i) => self.write(&i.to_string()),
            Value::Uint(u) => self.write(&u.to_string()),
            Value::Float(f) => self.write(&float(*f)),
            Value::List(items) => {
                kind(value)?;
                self.write("[")?;
                for (i, item) in items.iter().enumerate() {
                    self.element(item, depth + 1)?;
                    if i != items.len() - 1 {
                        self.write(", ")?;
                    }
                }
                self.write("]")
            }
            Value::Map(map) => self.table(&[], map, true, depth + 1),
            Value::Nil => Err(fail("toml: cannot encode a nil value here")),
            Value::Function(_) => Err(fail("a function cannot be encoded")),
        }
    }
}

fn indent(key: &[&str]) -> String {
    "  ".repeat(key.len().saturating_sub(1))
}

fn dotted(key: &[&str]) -> String {
    key.iter()
        .map(|k| bare_or_quoted(k))
        .collect::<Vec<_>>()
        .join(".")
}

fn bare_or_quoted(key: &str) -> String {
    if key.is_empty() {
        return "\"\"".into();
    }
    if key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_owned()
    } else {
        quoted(key)
    }
}

/// A basic string, escaped as the encoder's `dblQuotedReplacer` does.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `floatAddDecimal(strconv.FormatFloat(f, 'f', -1, 64))`, `nan` and `inf` as TOML spells them.
fn float(f: f64) -> String {
    if f.is_nan() {
        return if f.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if f.is_infinite() {
        return if f < 0.0 { "-inf" } else { "inf" }.into();
    }
    let text = if f == 0.0 {
        if f.is_sign_negative() { "-0" } else { "0" }.to_owned()
    } else {
        let (digits, exp) = go::shortest_digits(f);
        format!(
            "{}{}",
            if f < 0.0 { "-" } else { "" },
            go::fixed(&digits, exp)
        )
    };
    if text.contains('.') {
        text
    } else {
        format!("{text}.0")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn toml(json: serde_json::Value) -> String {
        encode(&values::from_json(&json), 1 << 20).expect("encodes")
    }

    #[test]
    fn tables_come_after_plain_keys_and_are_indented() {
        assert_eq!(
            toml(json!({"b": {"c": 1, "d": {"e": "x"}}, "a": [1, 2], "z": null, "k y": true})),
            "a = [1, 2]\n\"k y\" = true\n\n[b]\n  c = 1\n  [b.d]\n    e = \"x\""
        );
        assert_eq!(float(1e6), "1000000.0");
        assert_eq!(float(0.25), "0.25");
        assert_eq!(
            toml(json!({"t": [{"a": 1}, {"a": 2}]})),
            "[[t]]\n  a = 1\n\n[[t]]\n  a = 2"
        );
    }
}
