//! The syntax of a Vault Agent configuration, before any key means anything: HCL (read as Vault
//! Agent's HCL 1 reads it) or its JSON form, into one tree of keyed items with their positions.
//!
//! hcl-edit parses HCL 2, which is HCL 1's syntax and more. Where the two read the same text
//! differently, HCL 1 wins: a quoted string keeps `${...}` as written (HCL 1 has no
//! interpolation, and consul-template text often holds shell `${VAR}`), a number keeps its text
//! (`0640` is octal to HCL 1), and anything HCL 2 evaluates (variables, calls, operators) is
//! refused.

use std::fmt;

use hcl_edit::Span as _;
use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::structure::{BlockLabel, Body, Structure};

/// A place in a file: line and column, both from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    /// The line, from 1.
    pub line: usize,
    /// The column in characters, from 1.
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One `key = value` or `key "label" { ... }`: a block's labels are kept apart from its body.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Item {
    pub(super) key: String,
    pub(super) labels: Vec<String>,
    pub(super) value: Node,
    /// Where the item starts; `None` in JSON, which keeps no positions.
    pub(super) pos: Option<Pos>,
}

/// A value as written.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Node {
    Str(String),
    /// A number's text as written (`0640`, `1.5`, `-1`).
    Num(String),
    Bool(bool),
    Null,
    List(Vec<Node>),
    /// A block's body or an object: items in order, keys may repeat.
    Map(Vec<Item>),
}

impl Node {
    /// What the value is, for messages.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Node::Str(_) => "a string",
            Node::Num(_) => "a number",
            Node::Bool(_) => "a boolean",
            Node::Null => "null",
            Node::List(_) => "a list",
            Node::Map(_) => "a block",
        }
    }
}

/// A syntax error: where, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where, when known.
    pub pos: Option<Pos>,
    /// What is wrong.
    pub message: String,
}

/// Reads HCL into items.
pub(super) fn parse_hcl(text: &str) -> Result<Vec<Item>, SyntaxError> {
    let body = hcl_edit::parser::parse_body(text).map_err(|e| SyntaxError {
        pos: Some(Pos {
            line: e.location().line(),
            column: e.location().column(),
        }),
        message: format!("not valid HCL: {}", e.message()),
    })?;
    Hcl { text }.body(&body)
}

struct Hcl<'a> {
    text: &'a str,
}

impl Hcl<'_> {
    fn pos(&self, span: Option<std::ops::Range<usize>>) -> Option<Pos> {
        span.map(|s| pos_at(self.text, s.start))
    }

    fn raw(&self, span: Option<std::ops::Range<usize>>) -> &str {
        span.and_then(|s| self.text.get(s)).unwrap_or_default()
    }

    fn body(&self, body: &Body) -> Result<Vec<Item>, SyntaxError> {
        body.iter()
            .map(|structure| match structure {
                Structure::Attribute(a) => Ok(Item {
                    key: a.key.as_str().to_owned(),
                    labels: Vec::new(),
                    value: self.expr(&a.value)?,
                    pos: self.pos(a.span()),
                }),
                Structure::Block(b) => Ok(Item {
                    key: b.ident.as_str().to_owned(),
                    labels: b
                        .labels
                        .iter()
                        .map(|l| match l {
                            BlockLabel::String(s) => s.value().clone(),
                            BlockLabel::Ident(i) => i.as_str().to_owned(),
                        })
                        .collect(),
                    value: Node::Map(self.body(&b.body)?),
                    pos: self.pos(b.span()),
                }),
            })
            .collect()
    }

    fn expr(&self, expr: &Expression) -> Result<Node, SyntaxError> {
        Ok(match expr {
            Expression::Null(_) => Node::Null,
            Expression::Bool(b) => Node::Bool(*b.value()),
            Expression::Number(_) => Node::Num(self.raw(expr.span()).trim().to_owned()),
            Expression::String(_) | Expression::StringTemplate(_) => {
                let raw = self.raw(expr.span()).trim();
                let inner = raw
                    .strip_prefix('"')
                    .and_then(|r| r.strip_suffix('"'))
                    .unwrap_or(raw);
                Node::Str(unquote(inner).map_err(|message| SyntaxError {
                    pos: self.pos(expr.span()),
                    message,
                })?)
            }
            Expression::HeredocTemplate(h) => {
                Node::Str(heredoc(self.raw(expr.span()), h.indent().is_some()))
            }
            Expression::Array(a) => {
                Node::List(a.iter().map(|e| self.expr(e)).collect::<Result<_, _>>()?)
            }
            Expression::Object(o) => Node::Map(
                o.iter()
                    .map(|(key, value)| {
                        let name = match key {
                            ObjectKey::Ident(i) => i.as_str().to_owned(),
                            ObjectKey::Expression(e) => match self.expr(e)? {
                                Node::Str(s) | Node::Num(s) => s,
                                other => {
                                    return Err(SyntaxError {
                                        pos: self.pos(e.span()),
                                        message: format!(
                                            "an object key must be a name or a string, not {}",
                                            other.kind()
                                        ),
                                    });
                                }
                            },
                        };
                        Ok(Item {
                            key: name,
                            labels: Vec::new(),
                            value: self.expr(value.expr())?,
                            pos: self.pos(key.span()),
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Expression::Parenthesis(p) => self.expr(p.inner())?,
            _ => {
                return Err(SyntaxError {
                    pos: self.pos(expr.span()),
                    message: format!(
                        "{:?} is an expression; Vault Agent's HCL takes only strings, numbers, booleans, lists and blocks (quote the value)",
                        self.raw(expr.span()).trim()
                    ),
                });
            }
        })
    }
}

/// The line and column of a byte offset.
pub(super) fn pos_at(text: &str, offset: usize) -> Pos {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Pos {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

/// A quoted string's content as HCL 1 reads it: Go's escapes, and `${...}` kept as written.
fn unquote(inner: &str) -> Result<String, String> {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let escaped = chars.next().ok_or("a string ends with a lone backslash")?;
        let simple = match escaped {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            '\'' => Some('\''),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            continue;
        }
        let digits = match escaped {
            'x' => 2,
            'u' => 4,
            'U' => 8,
            _ => return Err(format!("\\{escaped} is not an escape a string can hold")),
        };
        let hex: String = chars.by_ref().take(digits).collect();
        let code = u32::from_str_radix(&hex, 16)
            .ok()
            .filter(|_| hex.len() == digits)
            .and_then(char::from_u32)
            .ok_or_else(|| format!("\\{escaped}{hex} is not a valid escape"))?;
        out.push(code);
    }
    Ok(out)
}

/// A heredoc's text, as HCL 1 reads it: every line up to the closing marker, with its newline;
/// `<<-` removes the closing marker's indentation when every line has it.
fn heredoc(raw: &str, indented: bool) -> String {
    let Some((_, rest)) = raw.split_once('\n') else {
        return String::new();
    };
    let mut lines: Vec<&str> = rest.split_inclusive('\n').collect();
    let closing = lines.pop().unwrap_or_default();
    let indent = &closing[..closing.len() - closing.trim_start().len()];
    if indented && !indent.is_empty() && lines.iter().all(|l| l.starts_with(indent)) {
        lines.iter().map(|l| &l[indent.len()..]).collect()
    } else {
        lines.concat()
    }
}

/// Reads the JSON form into items: an array of objects is the same block given several times,
/// an object is a block, anything else a value.
pub(super) fn parse_json(text: &str) -> Result<Vec<Item>, SyntaxError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| SyntaxError {
        pos: Some(Pos {
            line: e.line(),
            column: e.column(),
        }),
        message: format!("not valid JSON: {e}"),
    })?;
    match json_node(&value) {
        Node::Map(items) => Ok(items),
        other => Err(SyntaxError {
            pos: None,
            message: format!("the document is {}, not an object", other.kind()),
        }),
    }
}

fn json_node(value: &serde_json::Value) -> Node {
    use serde_json::Value;
    match value {
        Value::Null => Node::Null,
        Value::Bool(b) => Node::Bool(*b),
        Value::Number(n) => Node::Num(n.to_string()),
        Value::String(s) => Node::Str(s.clone()),
        Value::Array(a) => Node::List(a.iter().map(json_node).collect()),
        Value::Object(o) => Node::Map(
            o.iter()
                .flat_map(|(key, value)| match value {
                    Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_object) => {
                        a.iter().map(|v| json_item(key, v)).collect::<Vec<_>>()
                    }
                    _ => vec![json_item(key, value)],
                })
                .collect(),
        ),
    }
}

fn json_item(key: &str, value: &serde_json::Value) -> Item {
    Item {
        key: key.to_owned(),
        labels: Vec::new(),
        value: json_node(value),
        pos: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Item {
        let mut items = parse_hcl(text).expect("parses");
        assert_eq!(items.len(), 1, "{items:?}");
        items.remove(0)
    }

    #[test]
    fn blocks_keep_their_labels_and_positions() {
        let item = one(
            "\n\nauto_auth {\n  method \"kubernetes\" {\n    config = { role = \"app\" }\n  }\n}\n",
        );
        assert_eq!(item.key, "auto_auth");
        assert_eq!(item.pos, Some(Pos { line: 3, column: 1 }));
        let Node::Map(inner) = &item.value else {
            panic!("{item:?}")
        };
        assert_eq!(inner[0].labels, ["kubernetes"]);
        assert_eq!(inner[0].pos, Some(Pos { line: 4, column: 3 }));
    }

    #[test]
    fn strings_are_read_as_hcl_1_reads_them() {
        let item = one(r#"contents = "a ${HOME} \"q\" \t \u00e9 $${x} {{ .Data }}""#);
        assert_eq!(
            item.value,
            Node::Str("a ${HOME} \"q\" \t é $${x} {{ .Data }}".into())
        );
        let item = one("perms = 0640");
        assert_eq!(item.value, Node::Num("0640".into()));
        let err = parse_hcl("address = var.addr").expect_err("refused");
        assert!(err.message.contains("is an expression"), "{}", err.message);
    }

    #[test]
    fn heredocs_keep_their_lines() {
        let item = one("contents = <<EOT\n{{ with secret \"a\" }}\n  ${x}\n{{ end }}\nEOT\n");
        assert_eq!(
            item.value,
            Node::Str("{{ with secret \"a\" }}\n  ${x}\n{{ end }}\n".into())
        );
        let item = one("contents = <<-EOT\n    a\n      b\n    EOT\n");
        assert_eq!(item.value, Node::Str("a\n  b\n".into()));
    }

    #[test]
    fn a_syntax_error_names_line_and_column() {
        let err = parse_hcl("vault {\n  address = \"http://x\"\n  retry {\n}\n").expect_err("bad");
        assert!(err.pos.is_some(), "{err:?}");
        assert!(err.message.starts_with("not valid HCL"), "{}", err.message);
        let err = parse_hcl("vault {\n  address: \"x\"\n}\n").expect_err("bad");
        assert_eq!(err.pos.map(|p| p.line), Some(2), "{err:?}");
    }

    #[test]
    fn json_arrays_of_objects_are_repeated_blocks() {
        let items = parse_json(
            r#"{"template": [{"destination": "a"}, {"destination": "b"}], "x": {"command": ["a", "b"]}}"#,
        )
        .expect("parses");
        let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["template", "template", "x"]);
        let Node::Map(x) = &items[2].value else {
            panic!()
        };
        assert_eq!(
            x[0].value,
            Node::List(vec![Node::Str("a".into()), Node::Str("b".into())])
        );
        let err = parse_json("{\n \"a\": }").expect_err("bad");
        assert_eq!(err.pos.map(|p| p.line), Some(2));
    }
}
