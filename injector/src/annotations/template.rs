//! Templates in annotations, checked at admission: compiled, so that a syntax error denies the
//! pod instead of failing its start, and refused when written for consul-template.

use crate::Denial;

/// Whether a vault-k8s template is written for consul-template (Go templates): those are
/// refused, while a template in Jinja is accepted as it is.
pub fn looks_like_consul_template(text: &str) -> bool {
    // Go template keywords, followed by anything but a name character or a call's "(".
    const GO_KEYWORDS: [&str; 8] = [
        "with", "range", "end", "if", "else", "define", "template", "block",
    ];
    // consul-template calls take space-separated string arguments; Go variables start with $.
    const GO_STARTS: [&str; 3] = ["secret \"", "pkiCert \"", "$"];
    if text.contains(".Data") || text.contains("{{-") || text.contains("-}}") {
        return true;
    }
    text.match_indices("{{").any(|(i, _)| {
        let after = text[i + 2..].trim_start();
        GO_STARTS.iter().any(|start| after.starts_with(start))
            || GO_KEYWORDS.iter().any(|keyword| {
                after.starts_with(keyword)
                    && after[keyword.len()..]
                        .chars()
                        .next()
                        .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_' && c != '(')
            })
    })
}

pub(super) fn check_vault_k8s_template(key: &str, text: &str) -> Result<(), Denial> {
    if looks_like_consul_template(text) {
        return Err(Denial::unsupported(
            key,
            "it is written for consul-template (Go templates), which hydrant does not run; write \
             it in Jinja in hydrant.dev/template-<name>, where {{ with secret \"p\" }}{{ .Data.data.k }}{{ end }} \
             becomes {{ secret('p').data.k }} (see the README's migration table)",
        ));
    }
    check_template(key, text)
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
    fn consul_template_detection() {
        let go = [
            "{{ with secret \"a\" }}x{{ end }}",
            "{{- with secret \"a\" -}}",
            "{{ range $k, $v := .Data }}{{ end }}",
            "{{ if .Data.x }}y{{ end }}",
            "{{ secret \"pki/issue/x\" \"common_name=a\" }}",
            "{{ $x := 1 }}",
        ];
        for t in go {
            assert!(looks_like_consul_template(t), "{t}");
        }
        let jinja = [
            "{{ secret('a').data.b }}",
            "{% if x %}{{ y }}{% endif %}",
            "{{ endpoint }}",
            "{{ ifconfig }}",
            "plain text",
            "{{ range(3) | list }}",
        ];
        for t in jinja {
            assert!(!looks_like_consul_template(t), "{t}");
        }
    }
}
