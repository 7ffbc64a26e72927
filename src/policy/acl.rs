//! Vault ACL policies in HCL: parsed with hcl-edit (which keeps line positions for errors) into
//! path rules, and written back in one normal form so that two spellings of the same policy
//! compare equal.

use std::collections::BTreeSet;

use hcl_edit::Ident;
use hcl_edit::expr::{Array, Expression};
use hcl_edit::structure::{Attribute, Block, Body, Structure};
use hcl_edit::{Decorate as _, Span as _};

/// The capabilities Vault knows.
pub const CAPABILITIES: [&str; 10] = [
    "create",
    "read",
    "update",
    "patch",
    "delete",
    "list",
    "sudo",
    "deny",
    "subscribe",
    "recover",
];

/// One `path "..." { capabilities = [...] }` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The path pattern.
    pub path: String,
    /// The capabilities, sorted.
    pub capabilities: BTreeSet<String>,
    /// The line of the rule in its file (1-based).
    pub line: usize,
}

/// A parsed policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The rules, in file order.
    pub rules: Vec<Rule>,
}

/// A problem in a policy file: the line and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The line (1-based), when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses a policy. Only `path` blocks with `capabilities` are accepted: anything else is
/// refused, so that nothing a policy grants goes unchecked.
pub fn parse(text: &str) -> Result<Policy, Vec<ParseError>> {
    let body = hcl_edit::parser::parse_body(text).map_err(|e| {
        vec![ParseError {
            line: Some(e.location().line()),
            message: format!("not valid HCL: {}", e.message()),
        }]
    })?;
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for structure in body.iter() {
        let line = structure.span().map(|s| line_of(text, s.start));
        let Structure::Block(block) = structure else {
            errors.push(ParseError {
                line,
                message: "only path blocks belong in a policy".to_owned(),
            });
            continue;
        };
        let label = match block.labels.as_slice() {
            [label] if block.ident.as_str() == "path" => label.as_str().to_owned(),
            _ => {
                errors.push(ParseError {
                    line,
                    message: format!(
                        "{} block: a policy holds path \"...\" {{ capabilities = [...] }} blocks only",
                        block.ident.as_str()
                    ),
                });
                continue;
            }
        };
        if label.chars().any(char::is_control) || label.contains("${") || label.contains("%{") {
            errors.push(ParseError {
                line,
                message: format!(
                    "path {label:?} holds a control character or a template sequence (${{ or %{{), which no Vault path needs"
                ),
            });
            continue;
        }
        let mut capabilities = None;
        for inner in block.body.iter() {
            let inner_line = inner.span().map(|s| line_of(text, s.start)).or(line);
            match inner {
                Structure::Attribute(a) if a.key.as_str() == "capabilities" => {
                    match strings(&a.value) {
                        Some(list) => capabilities = Some(list),
                        None => errors.push(ParseError {
                            line: inner_line,
                            message: format!(
                                "path {label:?}: capabilities must be a list of strings"
                            ),
                        }),
                    }
                }
                Structure::Attribute(a) => errors.push(ParseError {
                    line: inner_line,
                    message: format!(
                        "path {label:?}: {} is not checked by hydrant, so it is refused; grant with capabilities only",
                        a.key.as_str()
                    ),
                }),
                Structure::Block(b) => errors.push(ParseError {
                    line: inner_line,
                    message: format!("path {label:?}: a {} block does not belong here", b.ident.as_str()),
                }),
            }
        }
        let Some(capabilities) = capabilities else {
            errors.push(ParseError {
                line,
                message: format!("path {label:?}: has no capabilities"),
            });
            continue;
        };
        for c in &capabilities {
            if !CAPABILITIES.contains(&c.as_str()) {
                errors.push(ParseError {
                    line,
                    message: format!(
                        "path {label:?}: {c:?} is not a capability; use {}",
                        CAPABILITIES.join(", ")
                    ),
                });
            }
        }
        if let Some(first) = rules.iter().find(|r: &&Rule| r.path == label) {
            errors.push(ParseError {
                line,
                message: format!(
                    "path {label:?} is also given on line {}; give each path once",
                    first.line
                ),
            });
        }
        rules.push(Rule {
            path: label,
            capabilities: capabilities.into_iter().collect(),
            line: line.unwrap_or(0),
        });
    }
    if errors.is_empty() {
        Ok(Policy { rules })
    } else {
        Err(errors)
    }
}

fn strings(expr: &Expression) -> Option<Vec<String>> {
    let Expression::Array(array) = expr else {
        return None;
    };
    array
        .iter()
        .map(|e| match e {
            Expression::String(s) => Some(s.value().clone()),
            _ => None,
        })
        .collect()
}

impl Policy {
    /// The policy in normal form: rules sorted by path, capabilities sorted, one layout,
    /// written by hcl-edit's encoder so that any path reads back as itself.
    pub fn normal_form(&self) -> String {
        let mut rules: Vec<&Rule> = self.rules.iter().collect();
        rules.sort_by(|a, b| a.path.cmp(&b.path));
        let mut out = String::new();
        for rule in rules {
            let capabilities: Array = rule
                .capabilities
                .iter()
                .map(|c| Expression::from(c.as_str()))
                .collect();
            let mut attribute = Attribute::new(Ident::new("capabilities"), capabilities);
            attribute.decor_mut().set_prefix("  ");
            let block = Block::builder(Ident::new("path"))
                .label(rule.path.as_str())
                .attribute(attribute)
                .build();
            out.push_str(&Body::builder().block(block).build().to_string());
        }
        out
    }
}
