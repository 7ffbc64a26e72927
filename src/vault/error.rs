//! Vault failures, each naming what failed and what to do next. None carries a response body:
//! bodies hold secrets.

use std::path::PathBuf;

use super::Operation;

/// A failure talking to Vault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No HTTP answer: connection refused, DNS, timeout.
    #[error(
        "vault at {address} is unreachable: {reason}; check vault.address and that Vault can be \
         reached from here"
    )]
    Unreachable {
        /// The configured address.
        address: String,
        /// The innermost causes of the transport error.
        reason: String,
    },
    /// The TLS handshake failed: Vault's certificate is not trusted or names another host.
    #[error(
        "TLS to vault at {address} failed: {reason}; check vault.ca_cert (or VAULT_CACERT, or the injector's --vault-ca-cert) and vault.tls_server_name"
    )]
    Tls {
        /// The configured address.
        address: String,
        /// What rustls said.
        reason: String,
    },
    /// Vault answered with a redirect that would send the credential where it must not go.
    #[error("vault at {address}: {refusal}")]
    Redirect {
        /// The configured address.
        address: String,
        /// Which rule the redirect broke.
        refusal: super::redirect::Refusal,
    },
    /// A request was still waiting for its answer when the deadline came.
    #[error(
        "vault did not answer {what} before retry.deadline; check Vault's health, or raise \
         retry.deadline"
    )]
    Unanswered {
        /// What was asked, such as "reading secret/data/app/db".
        what: String,
    },
    /// Vault answered 5xx (sealed, standby, overloaded) or 429.
    #[error("vault at {address} answered {status} {operation} {path}: {message}", operation = .operation.gerund())]
    Unavailable {
        /// The configured address.
        address: String,
        /// HTTP status.
        status: u16,
        /// What was being done.
        operation: Operation,
        /// The Vault path.
        path: String,
        /// Vault's own error text.
        message: String,
    },
    /// The auth method refused the credentials.
    #[error("login denied: {method} auth at mount {mount:?} refused {who}: {message}")]
    LoginDenied {
        /// The auth method.
        method: &'static str,
        /// The auth mount path.
        mount: String,
        /// The role, or which credential file, was refused.
        who: String,
        /// Vault's own error text.
        message: String,
    },
    /// The token's policies do not allow the request.
    #[error(
        "permission denied {operation} {path}: the token's policies [{policies}] do not allow it; \
         check the policies of the role the agent logs in with",
        operation = .operation.gerund(),
        policies = .policies.join(", ")
    )]
    PermissionDenied {
        /// What was being done.
        operation: Operation,
        /// The Vault path.
        path: String,
        /// The policies of the token in use.
        policies: Vec<String>,
    },
    /// Nothing at that path.
    #[error("secret not found: {path}{hint}", hint = not_found_hint(.path))]
    NotFound {
        /// The Vault path.
        path: String,
    },
    /// Any other 4xx: bad parameters, unsupported path.
    #[error("vault refused {operation} {path} ({status}): {message}", operation = .operation.gerund())]
    Refused {
        /// HTTP status.
        status: u16,
        /// What was being done.
        operation: Operation,
        /// The Vault path.
        path: String,
        /// Vault's own error text.
        message: String,
    },
    /// A 2xx answer whose body is not a Vault response.
    #[error("vault returned an unreadable response {operation} {path}", operation = .operation.gerund())]
    InvalidResponse {
        /// What was being done.
        operation: Operation,
        /// The Vault path.
        path: String,
    },
    /// A credential file (JWT, role ID, secret ID, token) cannot be read.
    #[error("cannot read the {what} file {}: {error}", .path.display())]
    CredentialFile {
        /// Which credential.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error (in the message, not the source chain, so it is shown once).
        error: std::io::Error,
    },
    /// A credential file holds more than the credential.
    #[error(
        "the {what} file {} holds more than one line or a control character; it must hold the \
         {what} alone",
        .path.display()
    )]
    MalformedCredential {
        /// Which credential.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A credential file is empty.
    #[error("the {what} file {} is empty; check the volume that provides it", .path.display())]
    EmptyCredential {
        /// Which credential.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A transient failure that outlasted the retry deadline.
    #[error(
        "{last} (gave up after {attempts} attempt{s} over {waited:.1?})",
        s = if *.attempts == 1 { "" } else { "s" }
    )]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// Time from the first attempt to giving up.
        waited: std::time::Duration,
        /// The last failure.
        last: Box<Error>,
    },
    /// `hydrant render --secrets-file`: the file does not hold a path a template reads.
    #[error(
        "secret {path} is not in the secrets file {}; add it there, mapped to what secret() returns (for KV v2, {{data: {{...}}}})",
        .file.display()
    )]
    NotInFile {
        /// The Vault path.
        path: String,
        /// The secrets file.
        file: PathBuf,
    },
    /// The Vault settings cannot be used.
    #[error("config invalid: {key}: {problem}")]
    Config {
        /// The config key.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
}

impl Error {
    /// Whether trying again later may succeed: Vault unreachable, sealed, overloaded.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Unreachable { .. } | Error::Unanswered { .. } | Error::Unavailable { .. }
        )
    }

    /// A fixed label for metrics and structured logs: one of [`ErrorKind::ALL`]'s.
    pub fn kind(&self) -> &'static str {
        self.class().label()
    }

    /// What kind of failure this is; a failure given up on is its last one's kind.
    pub fn class(&self) -> ErrorKind {
        match self {
            Error::Unreachable { .. } => ErrorKind::Unreachable,
            Error::Tls { .. } => ErrorKind::Tls,
            Error::Redirect { .. } => ErrorKind::Redirect,
            Error::Unanswered { .. } => ErrorKind::Unanswered,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::LoginDenied { .. } => ErrorKind::LoginDenied,
            Error::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Refused { .. } => ErrorKind::Refused,
            Error::InvalidResponse { .. } => ErrorKind::InvalidResponse,
            Error::CredentialFile { .. } => ErrorKind::CredentialFile,
            Error::MalformedCredential { .. } => ErrorKind::MalformedCredential,
            Error::EmptyCredential { .. } => ErrorKind::EmptyCredential,
            Error::GaveUp { last, .. } => last.class(),
            Error::NotInFile { .. } => ErrorKind::NotInFile,
            Error::Config { .. } => ErrorKind::Config,
        }
    }
}

/// Declares [`ErrorKind`], [`ErrorKind::ALL`] and [`ErrorKind::label`] from one list, so that a
/// kind [`Error::kind`] gives cannot be missing from `ALL` (the agent's fetch-failure series at
/// zero).
macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident => $label:literal,)*) => {
        /// The kinds of [`Error`], each with its fixed label.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorKind {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorKind {
            /// Every kind, once.
            pub const ALL: &[ErrorKind] = &[$(ErrorKind::$variant,)*];

            /// The label of metrics and logs.
            pub fn label(self) -> &'static str {
                match self {
                    $(ErrorKind::$variant => $label,)*
                }
            }
        }
    };
}

kinds! {
    /// No HTTP answer.
    Unreachable => "unreachable",
    /// The TLS handshake failed.
    Tls => "tls",
    /// A redirect the credential must not follow.
    Redirect => "redirect",
    /// No answer before the deadline.
    Unanswered => "unanswered",
    /// 5xx or 429.
    Unavailable => "unavailable",
    /// The auth method refused the credentials.
    LoginDenied => "login_denied",
    /// 403.
    PermissionDenied => "permission_denied",
    /// 404.
    NotFound => "not_found",
    /// Another 4xx.
    Refused => "refused",
    /// A 2xx that is not a Vault response.
    InvalidResponse => "invalid_response",
    /// A credential file cannot be read.
    CredentialFile => "credential_file",
    /// A credential file holds more than the credential.
    MalformedCredential => "malformed_credential",
    /// A credential file is empty.
    EmptyCredential => "empty_credential",
    /// Not in `hydrant render`'s secrets file.
    NotInFile => "not_in_file",
    /// The Vault settings cannot be used.
    Config => "config",
}

fn not_found_hint(path: &str) -> &'static str {
    let mut segments = path.split('/');
    let _mount = segments.next();
    if segments.next() == Some("data") {
        ""
    } else {
        " (for a KV v2 secret engine the path needs /data/ after the mount, as in secret/data/app/db)"
    }
}

/// What stands for Vault's own text when it refused a write.
const WRITE_REFUSED: &str = "vault's reason is not shown, as it may quote the parameters, which may be secrets; check them against what the path allows (for PKI, the role's allowed_domains and max_ttl)";

/// Turns a rustify error into one of ours, keeping Vault's messages (except about writes) and
/// dropping bodies.
pub(super) fn classify(
    e: rustify::errors::ClientError,
    address: &str,
    operation: Operation,
    path: &str,
    policies: &[String],
) -> Error {
    use rustify::errors::ClientError as E;
    match &e {
        E::ServerResponseError { code, content } => {
            let (code, path) = (*code, path.to_owned());
            // Vault's text about a write may echo its parameters (`common name <value> not
            // allowed by this role`), which may be secrets (hardening #9): it is not kept.
            let message = match operation {
                Operation::Write => WRITE_REFUSED.to_owned(),
                Operation::Read | Operation::Login => vault_message(content.as_deref()),
            };
            match code {
                403 => Error::PermissionDenied {
                    operation,
                    path,
                    policies: policies.to_vec(),
                },
                404 => Error::NotFound { path },
                429 | 500..=599 => Error::Unavailable {
                    address: address.to_owned(),
                    status: code,
                    operation,
                    path,
                    message,
                },
                status => Error::Refused {
                    status,
                    operation,
                    path,
                    message,
                },
            }
        }
        // Sending or receiving failed: the network, DNS, TLS, a timeout.
        E::RequestError { .. } | E::ResponseError { .. } => {
            if let Some(refusal) = redirect_refusal(&e) {
                return Error::Redirect {
                    address: address.to_owned(),
                    refusal,
                };
            }
            match tls_failure(&e) {
                Some(reason) => Error::Tls {
                    address: address.to_owned(),
                    reason,
                },
                None => Error::Unreachable {
                    address: address.to_owned(),
                    reason: innermost(&e),
                },
            }
        }
        // Anything else is a response hydrant cannot read, or a request it could not build. The
        // cause is not kept: a parse error quotes the body, which may hold secrets.
        _ => Error::InvalidResponse {
            operation,
            path: path.to_owned(),
        },
    }
}

/// The causes in an error's chain, outermost first. An `io::Error` that wraps another error
/// reports that error's source as its own, so the wrapped error is visited explicitly.
fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut current = Some(e);
    while let Some(err) = current {
        out.push(err);
        current = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    out
}

/// The redirect the client refused to follow, if that is why the request failed.
fn redirect_refusal(e: &(dyn std::error::Error + 'static)) -> Option<super::redirect::Refusal> {
    causes(e)
        .into_iter()
        .find_map(|c| c.downcast_ref::<super::redirect::Refusal>())
        .cloned()
}

/// The rustls error behind a failed request, if the failure was the TLS handshake.
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    causes(e)
        .into_iter()
        .find_map(|c| c.downcast_ref::<rustls::Error>())
        .map(|tls| tls.to_string())
}

/// The two innermost causes, which say what happened ("tcp connect error: Connection refused")
/// without the layers of "error sending request" around them.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut texts: Vec<String> = Vec::new();
    for cause in causes(e).into_iter().rev() {
        let text = cause.to_string();
        // An outer error that repeats its cause's text adds nothing.
        if texts.iter().any(|t| text.contains(t.as_str())) {
            continue;
        }
        texts.push(text);
        if texts.len() == 2 {
            break;
        }
    }
    texts.reverse();
    texts.join(": ")
}

/// Vault's `{"errors": [...]}` as one line. Vault wraps messages in "1 error occurred:\n\t* ...";
/// only the messages are kept.
pub(super) fn vault_message(content: Option<&str>) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<String>,
    }
    let Some(errors) = content.and_then(|c| serde_json::from_str::<Errors>(c).ok()) else {
        return "no error message".to_owned();
    };
    let lines: Vec<&str> = errors
        .errors
        .iter()
        .flat_map(|e| e.lines())
        .map(|line| line.trim().trim_start_matches("* ").trim())
        .filter(|line| !line.is_empty() && !is_error_count_header(line))
        .collect();
    if lines.is_empty() {
        "no error message".to_owned()
    } else {
        lines.join("; ")
    }
}

fn is_error_count_header(line: &str) -> bool {
    line.ends_with("error occurred:") || line.ends_with("errors occurred:")
}

/// An error and its causes on one line, without repeating a cause that its parent already shows.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(e);
    while let Some(err) = current {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    // The innermost causes say the most ("Connection refused"); keep the outer ones for context.
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind has a label of its own, and a failure given up on keeps its last one's kind.
    #[test]
    fn every_kind_has_its_own_label_and_gave_up_keeps_the_last_kind() {
        let labels: std::collections::BTreeSet<&str> =
            ErrorKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels.len(), ErrorKind::ALL.len(), "{labels:?}");
        let gave_up = Error::GaveUp {
            attempts: 3,
            waited: std::time::Duration::from_secs(1),
            last: Box::new(Error::NotFound {
                path: "secret/data/x".into(),
            }),
        };
        assert_eq!(gave_up.class(), ErrorKind::NotFound);
        assert_eq!(gave_up.kind(), "not_found");
    }

    #[test]
    fn vault_messages_are_flattened_to_one_line() {
        let cases = [
            (r#"{"errors":["permission denied"]}"#, "permission denied"),
            (
                r#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#,
                "permission denied",
            ),
            (
                r#"{"errors":["2 errors occurred:\n\t* a\n\t* b\n\n"]}"#,
                "a; b",
            ),
            (r#"{"errors":[]}"#, "no error message"),
            ("not json", "no error message"),
        ];
        for (body, want) in cases {
            assert_eq!(vault_message(Some(body)), want, "{body}");
        }
        assert_eq!(vault_message(None), "no error message");
    }

    #[test]
    fn statuses_map_to_the_right_errors() {
        let classify_code = |code| {
            classify(
                rustify::errors::ClientError::ServerResponseError {
                    code,
                    content: Some(r#"{"errors":["x"]}"#.into()),
                },
                "http://v",
                Operation::Read,
                "secret/data/a",
                &["app".into()],
            )
        };
        assert!(matches!(classify_code(403), Error::PermissionDenied { .. }));
        assert!(matches!(classify_code(404), Error::NotFound { .. }));
        assert!(matches!(
            classify_code(400),
            Error::Refused { status: 400, .. }
        ));
        for code in [429, 500, 503] {
            assert!(classify_code(code).is_transient(), "{code} is transient");
        }
        assert!(!classify_code(403).is_transient());
        let message = classify_code(403).to_string();
        assert!(message.contains("reading secret/data/a"), "{message}");
        assert!(message.contains("[app]"), "{message}");
    }

    #[test]
    fn an_unreadable_response_is_not_retried_and_does_not_quote_the_body() {
        let e = classify(
            rustify::errors::ClientError::ResponseParseError {
                source: anyhow::anyhow!("invalid type: string \"hunter2\", expected u64"),
                content: Some(r#"{"data":{"password":"hunter2"}}"#.into()),
            },
            "http://v",
            Operation::Read,
            "secret/data/a",
            &[],
        );
        assert!(matches!(e, Error::InvalidResponse { .. }), "{e}");
        assert!(!e.is_transient());
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    /// hardening #9: Vault echoes parameters in its reasons for refusing a write.
    #[test]
    fn vault_s_text_about_a_refused_write_is_never_quoted() {
        for code in [400, 500] {
            let e = classify(
                rustify::errors::ClientError::ServerResponseError {
                    code,
                    content: Some(
                        r#"{"errors":["common name Zq9-leaky.example.org not allowed by this role"]}"#
                            .into(),
                    ),
                },
                "http://v",
                Operation::Write,
                "pki/issue/web",
                &[],
            );
            let message = e.to_string();
            assert!(!message.contains("Zq9"), "{message}");
            assert!(message.contains("writing pki/issue/web"), "{message}");
            assert!(message.contains(&format!("{code}")), "{message}");
        }
    }

    #[test]
    fn not_found_hints_at_kv2_data_segment_only_when_missing() {
        let with = Error::NotFound {
            path: "secret/app/db".into(),
        };
        assert!(with.to_string().contains("needs /data/"));
        let without = Error::NotFound {
            path: "secret/data/app/db".into(),
        };
        assert_eq!(without.to_string(), "secret not found: secret/data/app/db");
    }
}
