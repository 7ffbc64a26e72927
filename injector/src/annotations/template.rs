//! Templates in annotations, checked at admission: parsed, so that a syntax error (or a function
//! hydrant does not run) denies the pod instead of failing its start.

use crate::Denial;

/// Parses and checks a consul-template template (`consul_template::check`) so that a syntax
/// error or a function hydrant does not run denies the pod, naming the annotation, line and
/// column.
pub fn check_consul_template(
    key: &str,
    text: &str,
    left: Option<&str>,
    right: Option<&str>,
) -> Result<(), Denial> {
    const JINJA: &str = "vault.hashicorp.com templates are consul-template's, as in vault-k8s: \
                         a Jinja template goes in hydrant.dev/template-<name>";
    match crate::consul_template::check(text, left.unwrap_or(""), right.unwrap_or("")) {
        // Go parses `secret('p')` (a call with a character constant) and fails only when it
        // runs: a call spelled with parentheses is a Jinja template.
        Ok(()) if calls_with_parentheses(text) => Err(Denial::new(
            crate::Reason::InvalidTemplate,
            format!(
                "{key}: `secret(...)` is Jinja's call syntax, which consul-template's templates \
                 do not have; {JINJA}"
            ),
        )),
        Ok(()) => Ok(()),
        Err(problem) => {
            let mut message = format!("{key}: {problem}");
            if calls_with_parentheses(text) || text.contains("{%") {
                message.push_str("; ");
                message.push_str(JINJA);
            }
            Err(Denial::new(crate::Reason::InvalidTemplate, message))
        }
    }
}

/// Whether a template calls `secret` or `pkiCert` as Jinja does: `secret('...')`.
fn calls_with_parentheses(text: &str) -> bool {
    ["secret('", "secret(\"", "pkiCert('", "pkiCert(\""]
        .iter()
        .any(|call| text.contains(call))
}

/// Compiles a template so that a syntax error denies the pod instead of failing its start.
pub fn check_template(key: &str, text: &str) -> Result<(), Denial> {
    let mut env = minijinja::Environment::new();
    env.set_debug(true);
    match env.template_from_str(text) {
        Ok(_) => Ok(()),
        Err(e) => {
            let line = e.line().unwrap_or(1);
            let column = e
                .range()
                .filter(|r| r.start <= text.len())
                .map(|r| {
                    let start = text[..r.start].rfind('\n').map_or(0, |i| i + 1);
                    text[start..r.start].chars().count() + 1
                })
                .unwrap_or(1);
            Err(Denial::new(
                crate::Reason::InvalidTemplate,
                format!(
                    "{key}: line {line} column {column}: syntax error: {}",
                    e.detail().unwrap_or("invalid syntax")
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consul_templates_are_checked_and_a_jinja_one_is_pointed_to_hydrant_s_family() {
        check_consul_template(
            "k",
            "{{ with secret \"a\" }}{{ .Data.data.x }}{{ end }}",
            None,
            None,
        )
        .expect("consul-template");
        let denial =
            check_consul_template("k", "{{ secret('a').data.b }}", None, None).expect_err("jinja");
        assert!(
            denial.message.contains("hydrant.dev/template-<name>"),
            "{}",
            denial.message
        );
        let denial = check_consul_template("k", "{% if x %}{{ secret('a') ", None, None)
            .expect_err("jinja that does not parse");
        assert!(
            denial.message.starts_with("k: line 1 column"),
            "{}",
            denial.message
        );
        assert!(
            denial.message.contains("hydrant.dev/template-<name>"),
            "{}",
            denial.message
        );
        let denial = check_consul_template("k", "{{ key \"x\" }}", None, None).expect_err("consul");
        assert!(denial.message.contains("\"key\""), "{}", denial.message);
        check_consul_template("k", "<< .x >>", Some("<<"), Some(">>")).expect("delimiters");
    }
}
