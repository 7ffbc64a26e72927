//! consul-template's `toYAML`: `gopkg.in/yaml.v2`'s `Marshal`, byte for byte, trimmed of
//! surrounding space. yaml.v2 writes with libyaml's emitter, whose choices no Rust YAML crate
//! makes: keys in a "natural" order (`a2` before `a10`), lists under a key not indented, a
//! string quoted only when it would read back as something else (YAML 1.1: `yes`, `0777`,
//! `2001-12-14`...), a string with a line break as a literal block, and lines folded past 80
//! columns. This is that emitter for the values a template holds.

use std::cmp::Ordering;

use gotmpl::{TemplateError, Value};

use super::super::values;
use super::go;

/// libyaml's preferred width, past which a plain or quoted scalar breaks at a space.
const BEST_WIDTH: usize = 80;
/// How deep lists and maps may nest.
const MAX_DEPTH: usize = 1000;

/// `yaml.Marshal(value)` with surrounding space trimmed.
pub(crate) fn encode(value: &Value, limit: usize) -> gotmpl::Result<String> {
    let mut emitter = Emitter {
        out: String::new(),
        column: 0,
        whitespace: true,
        indention: true,
        limit,
    };
    emitter.node(value, -1, Context::Root, 0)?;
    // yaml.v2 ends the document with a line break and writes no "..." after a plain root
    // scalar (libyaml's open_ended is not acted on).
    emitter.write_indent(0);
    if emitter.out.len() > limit {
        return Err(too_long());
    }
    Ok(emitter.out.trim().to_owned())
}

fn too_long() -> TemplateError {
    go::fail("toYAML", "the result would be too long")
}

#[derive(Clone, Copy, PartialEq)]
enum Context {
    Root,
    Sequence,
    MappingKey,
    MappingValue,
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

struct Emitter {
    out: String,
    column: usize,
    whitespace: bool,
    indention: bool,
    limit: usize,
}

impl Emitter {
    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    fn write_indent(&mut self, indent: i64) {
        let indent = usize::try_from(indent).unwrap_or(0);
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn indicator(
        &mut self,
        text: &str,
        need_whitespace: bool,
        is_whitespace: bool,
        is_indention: bool,
    ) {
        if need_whitespace && !self.whitespace {
            self.put(' ');
        }
        for c in text.chars() {
            self.put(c);
        }
        self.whitespace = is_whitespace;
        self.indention = self.indention && is_indention;
    }

    fn node(
        &mut self,
        value: &Value,
        indent: i64,
        context: Context,
        depth: usize,
    ) -> gotmpl::Result<()> {
        if depth > MAX_DEPTH {
            return Err(go::fail("toYAML", "the value is nested too deeply"));
        }
        if self.out.len() > self.limit {
            return Err(too_long());
        }
        match value {
            Value::Map(map) if map.is_empty() => self.empty("{", "}", indent),
            Value::List(items) if items.is_empty() => self.empty("[", "]", indent),
            Value::Map(map) => {
                let indent = if indent < 0 { 0 } else { indent + 2 };
                let mut keys: Vec<&str> = map.keys().map(|k| &**k).collect();
                keys.sort_by(|a, b| natural(a, b));
                for key in keys {
                    self.write_indent(indent);
                    let (text, style) = (key.to_owned(), string_style(key));
                    let analysis = analyze(&text);
                    if analysis.multiline || text.len() > 128 {
                        return Err(go::fail(
                            "toYAML",
                            "a key with a line break or longer than 128 bytes is not supported",
                        ));
                    }
                    self.scalar(&text, style, indent, Context::MappingKey);
                    self.indicator(":", false, false, false);
                    self.node(&map[key], indent, Context::MappingValue, depth + 1)?;
                }
                Ok(())
            }
            Value::List(items) => {
                let indentless = context == Context::MappingValue && !self.indention;
                let indent = if indent < 0 {
                    0
                } else if indentless {
                    indent
                } else {
                    indent + 2
                };
                for item in items.iter() {
                    self.write_indent(indent);
                    self.indicator("-", true, false, true);
                    self.node(item, indent, Context::Sequence, depth + 1)?;
                }
                Ok(())
            }
            Value::String(s) if go::number(value).is_none() && !values::is_number(s) => {
                self.scalar(s, string_style(s), indent, context);
                Ok(())
            }
            Value::Function(_) => Err(go::fail("toYAML", "a function cannot be encoded")),
            other => {
                self.scalar(&number_text(other), Style::Plain, indent, context);
                Ok(())
            }
        }
    }

    fn empty(&mut self, open: &str, close: &str, _indent: i64) -> gotmpl::Result<()> {
        self.indicator(open, true, true, false);
        self.indicator(close, false, false, false);
        Ok(())
    }

    fn scalar(&mut self, text: &str, requested: Style, indent: i64, context: Context) {
        let analysis = analyze(text);
        let simple_key = context == Context::MappingKey;
        let mut style = requested;
        if simple_key && analysis.multiline {
            style = Style::Double;
        }
        if style == Style::Plain {
            if !analysis.block_plain {
                style = Style::Single;
            }
            if text.is_empty() && simple_key {
                style = Style::Single;
            }
        }
        if style == Style::Single && !analysis.single_quoted {
            style = Style::Double;
        }
        if style == Style::Literal && (!analysis.block || simple_key) {
            style = Style::Double;
        }
        let indent = if indent < 0 { 2 } else { indent + 2 };
        let allow_breaks = !simple_key;
        match style {
            Style::Plain => self.plain(text, indent, allow_breaks),
            Style::Single => self.single_quoted(text, indent, allow_breaks),
            Style::Double => self.double_quoted(text, indent, allow_breaks),
            Style::Literal => self.literal(text, indent),
        }
    }

    fn plain(&mut self, text: &str, indent: i64, allow_breaks: bool) {
        if !self.whitespace {
            self.put(' ');
        }
        let chars: Vec<char> = text.chars().collect();
        let (mut spaces, mut breaks) = (false, false);
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent(indent);
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent(indent);
                }
                self.put(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn single_quoted(&mut self, text: &str, indent: i64, allow_breaks: bool) {
        self.indicator("'", true, false, false);
        let chars: Vec<char> = text.chars().collect();
        let (mut spaces, mut breaks) = (false, false);
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && i < chars.len() - 1
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent(indent);
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent(indent);
                }
                if c == '\'' {
                    self.put('\'');
                }
                self.put(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.indicator("'", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn double_quoted(&mut self, text: &str, indent: i64, allow_breaks: bool) {
        self.indicator("\"", true, false, false);
        let chars: Vec<char> = text.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !is_printable(c) || c == '\u{feff}' || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                let short = match c {
                    '\0' => Some('0'),
                    '\u{7}' => Some('a'),
                    '\u{8}' => Some('b'),
                    '\t' => Some('t'),
                    '\n' => Some('n'),
                    '\u{b}' => Some('v'),
                    '\u{c}' => Some('f'),
                    '\r' => Some('r'),
                    '\u{1b}' => Some('e'),
                    '"' => Some('"'),
                    '\\' => Some('\\'),
                    '\u{85}' => Some('N'),
                    '\u{a0}' => Some('_'),
                    '\u{2028}' => Some('L'),
                    '\u{2029}' => Some('P'),
                    _ => None,
                };
                match short {
                    Some(s) => self.put(s),
                    None => {
                        let v = c as u32;
                        let hex = if v <= 0xff {
                            format!("x{v:02X}")
                        } else if v <= 0xffff {
                            format!("u{v:04X}")
                        } else {
                            format!("U{v:08X}")
                        };
                        for h in hex.chars() {
                            self.put(h);
                        }
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && i < chars.len() - 1
                {
                    self.write_indent(indent);
                    if chars.get(i + 1) == Some(&' ') {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.indicator("\"", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn literal(&mut self, text: &str, indent: i64) {
        self.indicator("|", true, false, false);
        // Block scalar hints: an indentation indicator when the text starts with a space or a
        // break, and the chomping indicator.
        let chars: Vec<char> = text.chars().collect();
        if chars.first().is_some_and(|c| *c == ' ' || is_break(*c)) {
            self.indicator("2", false, false, false);
        }
        let chomp = match chars.as_slice() {
            [] => Some("-"),
            [.., last] if !is_break(*last) => Some("-"),
            [_] => Some("+"),
            [.., before, _] if is_break(*before) => Some("+"),
            _ => None,
        };
        if let Some(chomp) = chomp {
            self.indicator(chomp, false, false, false);
        }
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        for &c in &chars {
            if is_break(c) {
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent(indent);
                }
                self.put(c);
                self.indention = false;
                breaks = false;
            }
        }
    }

    fn write_break(&mut self, c: char) {
        if c == '\n' {
            self.put_break();
        } else {
            self.out.push(c);
            self.column = 0;
        }
    }
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// libyaml's printable set.
fn is_printable(c: char) -> bool {
    matches!(c, '\n' | '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        && c != '\u{feff}'
}

/// What libyaml's `analyze_scalar` finds: which styles a text may take.
struct Analysis {
    multiline: bool,
    block_plain: bool,
    single_quoted: bool,
    block: bool,
}

fn analyze(text: &str) -> Analysis {
    if text.is_empty() {
        return Analysis {
            multiline: false,
            block_plain: true,
            single_quoted: true,
            block: false,
        };
    }
    let chars: Vec<char> = text.chars().collect();
    let mut block_indicators = text.starts_with("---") || text.starts_with("...");
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let mut preceded_by_whitespace = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_whitespace = chars.get(i + 1).is_none_or(|n| *n == ' ' || *n == '\t');
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_indicators = true,
                '?' | ':' | '-' if followed_by_whitespace => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_whitespace => block_indicators = true,
                '#' if preceded_by_whitespace => block_indicators = true,
                _ => {}
            }
        }
        if !is_printable(c) {
            special = true;
        }
        let last = i + 1 == chars.len();
        if c == ' ' {
            leading_space |= i == 0;
            trailing_space |= last;
            break_space |= previous_break;
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            line_breaks = true;
            leading_break |= i == 0;
            trailing_break |= last;
            space_break |= previous_space;
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = matches!(
            c,
            ' ' | '\t' | '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}'
        );
    }
    let mut analysis = Analysis {
        multiline: line_breaks,
        block_plain: true,
        single_quoted: true,
        block: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        analysis.block_plain = false;
    }
    if trailing_space {
        analysis.block = false;
    }
    if break_space {
        analysis.block_plain = false;
        analysis.single_quoted = false;
    }
    if space_break || special {
        analysis.block_plain = false;
        analysis.single_quoted = false;
        analysis.block = false;
    }
    if line_breaks || block_indicators {
        analysis.block_plain = false;
    }
    analysis
}

/// The style yaml.v2 asks for a string: a literal block when it has a line break, plain when
/// it reads back as the same string, double-quoted otherwise.
fn string_style(s: &str) -> Style {
    if s.contains('\n') {
        Style::Literal
    } else if resolves_to_string(s) && !is_base60_float(s) {
        Style::Plain
    } else {
        Style::Double
    }
}

/// A number's text as yaml.v2 writes it: a `json.Number` as the integer or float it holds.
fn number_text(value: &Value) -> String {
    match value {
        Value::Nil => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        Value::Float(f) => float_text(*f),
        Value::String(s) => match go::number(value) {
            Some(go::Number::Float(f)) => float_text(f),
            _ => match s.parse::<i64>() {
                Ok(i) => i.to_string(),
                Err(_) => s.parse::<f64>().map_or_else(|_| s.to_string(), float_text),
            },
        },
        _ => String::new(),
    }
}

fn float_text(f: f64) -> String {
    match go::format_v(f).as_str() {
        "+Inf" => ".inf".into(),
        "-Inf" => "-.inf".into(),
        "NaN" => ".nan".into(),
        other => other.to_owned(),
    }
}

/// Whether yaml.v2's `resolve` reads `s`, unquoted, as a string.
fn resolves_to_string(s: &str) -> bool {
    const SPECIAL: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", "n", "N", "no",
        "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", "", "~", "null", "Null",
        "NULL", ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", "<<",
    ];
    if SPECIAL.contains(&s) {
        return false;
    }
    match s.as_bytes()[0] {
        b'.' => super::go_parse_float(s).is_none(),
        b'+' | b'-' | b'0'..=b'9' => {
            if is_timestamp(s) {
                return false;
            }
            let plain = s.replace('_', "");
            if go::parse_int_base0(&plain).is_some() || is_yaml_float(&plain) {
                return false;
            }
            let binary = plain
                .strip_prefix("0b")
                .or_else(|| plain.strip_prefix("-0b"));
            !binary
                .is_some_and(|digits| !digits.is_empty() && u64::from_str_radix(digits, 2).is_ok())
        }
        _ => true,
    }
}

/// yaml.v2's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// yaml.v2's timestamps: `YYYY-M-D`, optionally with a time (`T`, `t` or a space).
fn is_timestamp(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.len() < 8 || !bytes[..4].iter().all(u8::is_ascii_digit) || bytes[4] != b'-' {
        return false;
    }
    let (date, time) = match s.find(['T', 't', ' ']) {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    };
    let parts: Vec<&str> = date.splitn(3, '-').collect();
    let number = |t: &str, max: u32| {
        (1..=2).contains(&t.len())
            && t.bytes().all(|b| b.is_ascii_digit())
            && t.parse::<u32>().is_ok_and(|n| (1..=max).contains(&n))
    };
    if parts.len() != 3 || !number(parts[1], 12) || !number(parts[2], 31) {
        return false;
    }
    let Some(time) = time else { return true };
    let (clock, zone) = match time.find(['Z', '+', '-']) {
        Some(at) => (&time[..at], Some(&time[at..])),
        None => (time, None),
    };
    let clock = clock.split_once('.').map_or(clock, |(c, frac)| {
        if frac.bytes().all(|b| b.is_ascii_digit()) {
            c
        } else {
            "x"
        }
    });
    let fields: Vec<&str> = clock.split(':').collect();
    let small = |t: &str, max: u32| {
        (1..=2).contains(&t.len())
            && t.bytes().all(|b| b.is_ascii_digit())
            && t.parse::<u32>().is_ok_and(|n| n <= max)
    };
    let clock_ok =
        fields.len() == 3 && small(fields[0], 23) && small(fields[1], 59) && small(fields[2], 59);
    let zone_ok = match zone {
        None => !s.contains(['T', 't']),
        Some("Z") => true,
        Some(z) => {
            z.len() == 6 && z.as_bytes()[3] == b':' && small(&z[1..3], 23) && small(&z[4..], 59)
        }
    };
    clock_ok && zone_ok
}

/// yaml.v2's `isBase60Float`: `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`.
fn is_base60_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (body, fraction) = s.split_once('.').unwrap_or((s, ""));
    if !fraction.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return false;
    }
    let mut groups = body.split(':');
    let first = groups.next().unwrap_or("");
    if !first.starts_with(|c: char| c.is_ascii_digit())
        || !first.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return false;
    }
    let mut any = false;
    for group in groups {
        any = true;
        let ok = match group.as_bytes() {
            [d] => d.is_ascii_digit(),
            [a, b] => (b'0'..=b'5').contains(a) && b.is_ascii_digit(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    any
}

/// yaml.v2's key order: letters by code point, runs of digits by their value.
fn natural(a: &str, b: &str) -> Ordering {
    let (ar, br): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    for i in 0..ar.len().min(br.len()) {
        if ar[i] == br[i] {
            continue;
        }
        let (al, bl) = (ar[i].is_alphabetic(), br[i].is_alphabetic());
        if al && bl {
            return ar[i].cmp(&br[i]);
        }
        if al || bl {
            return if bl {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        let (mut an, mut bn): (i64, i64) = (0, 0);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an
                .wrapping_mul(10)
                .wrapping_add(i64::from(ar[ai] as u8 - b'0'));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn
                .wrapping_mul(10)
                .wrapping_add(i64::from(br[bi] as u8 - b'0'));
            bi += 1;
        }
        if an != bn {
            return an.cmp(&bn);
        }
        if ai != bi {
            return ai.cmp(&bi);
        }
        return ar[i].cmp(&br[i]);
    }
    ar.len().cmp(&br.len())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn yaml(json: serde_json::Value) -> String {
        encode(&super::super::super::values::from_json(&json), 1 << 20).expect("encodes")
    }

    #[test]
    fn maps_lists_and_scalars_are_written_as_yaml_v2_writes_them() {
        assert_eq!(
            yaml(json!({"b": [1, "x"], "a": {"c": true, "d": null}, "e": {}, "f": []})),
            "a:\n  c: true\n  d: null\nb:\n- 1\n- x\ne: {}\nf: []"
        );
        assert_eq!(
            yaml(json!([[1, 2], {"a": 1, "b": 2}])),
            "- - 1\n  - 2\n- a: 1\n  b: 2"
        );
        assert_eq!(
            yaml(
                json!({"s": "yes", "t": "1.5", "u": "", "v": "- x", "w": "a: b", "x": "2001-12-14", "y": "it's", "z": "a\nb\n"})
            ),
            "s: \"yes\"\nt: \"1.5\"\nu: \"\"\nv: '- x'\nw: 'a: b'\nx: \"2001-12-14\"\n\"y\": it's\nz: |\n  a\n  b"
        );
    }

    #[test]
    fn keys_sort_naturally() {
        let mut keys = vec!["a10", "a2", "b", "a", "A", "1"];
        keys.sort_by(|a, b| natural(a, b));
        assert_eq!(keys, ["1", "A", "a", "a2", "a10", "b"]);
    }
}
