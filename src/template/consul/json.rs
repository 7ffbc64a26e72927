//! consul-template's `toJSON`, `toJSONPretty`, `toUnescapedJSON` and `toUnescapedJSONPretty`:
//! Go's `encoding/json` output, byte for byte. Keys come sorted (Go sorts a map's keys), strings
//! are escaped as Go escapes them (`<`, `>` and `&` as `\u003c`... unless unescaped, U+2028 and
//! U+2029 always), and numbers from Vault stay numbers (see `values::to_json`).

use std::io::{self, Write};

use gotmpl::{TemplateError, Value};
use serde::Serialize as _;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter, PrettyFormatter};

use super::values;

/// Encodes `value` as the named consul-template function does.
pub fn encode(
    function: &str,
    value: &Value,
    pretty: bool,
    escape_html: bool,
) -> gotmpl::Result<String> {
    let json = values::to_json(value).ok_or_else(|| {
        TemplateError::Exec(format!("{function}: a function cannot be encoded as JSON"))
    })?;
    let mut out = Vec::new();
    let result = if pretty {
        let formatter = GoFormatter {
            inner: PrettyFormatter::with_indent(b"  "),
            escape_html,
        };
        json.serialize(&mut serde_json::Serializer::with_formatter(
            &mut out, formatter,
        ))
    } else {
        let formatter = GoFormatter {
            inner: CompactFormatter,
            escape_html,
        };
        json.serialize(&mut serde_json::Serializer::with_formatter(
            &mut out, formatter,
        ))
    };
    result.map_err(|_| TemplateError::Exec(format!("{function}: the value cannot be encoded")))?;
    String::from_utf8(out)
        .map_err(|_| TemplateError::Exec(format!("{function}: the value cannot be encoded")))
}

/// serde_json's formatting with Go's string escapes.
struct GoFormatter<F> {
    inner: F,
    escape_html: bool,
}

impl<F: Formatter> Formatter for GoFormatter<F> {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escape = match c {
                '<' | '>' | '&' if self.escape_html => true,
                '\u{2028}' | '\u{2029}' => true,
                _ => false,
            };
            if escape {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                write!(writer, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        // Go writes the same short escapes (\b and \f since Go 1.22) and \u00xx in lower case.
        self.inner.write_char_escape(writer, escape)
    }

    fn write_f64<W: ?Sized + Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        // Go writes a float64 without a needless `.0` and switches to exponents at 1e21.
        writer.write_all(super::helpers::go::format_json(value).as_bytes())
    }

    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.inner.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.inner.begin_object_key(w, first)
    }
    fn end_object_key<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object_key(w)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strings_are_escaped_as_go_escapes_them() {
        let value =
            values::from_json(&json!({"b": "<a&b>\u{2028}\"\\\n\u{1}\u{8}", "a": [1, 2.5]}));
        assert_eq!(
            encode("toJSON", &value, false, true).expect("encodes"),
            r#"{"a":[1,2.5],"b":"\u003ca\u0026b\u003e\u2028\"\\\n\u0001\b"}"#
        );
        assert_eq!(
            encode("toUnescapedJSON", &value, false, false).expect("encodes"),
            r#"{"a":[1,2.5],"b":"<a&b>\u2028\"\\\n\u0001\b"}"#
        );
        assert_eq!(
            encode(
                "toJSONPretty",
                &values::from_json(&json!({"a": {}, "b": [], "c": [1]})),
                true,
                true
            )
            .expect("encodes"),
            "{\n  \"a\": {},\n  \"b\": [],\n  \"c\": [\n    1\n  ]\n}"
        );
    }
}
