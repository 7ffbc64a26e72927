//! Which redirects the Vault client follows. Every request carries a credential (the token
//! header, or a login's JWT or secret ID in the body), so a redirect decides where that
//! credential goes: one hop at most, never from https to http (Vault's own client refuses that
//! downgrade), and never over plain http to an origin other than the configured one.

use reqwest::Url;

/// The most redirects one request follows (a standby forwarding to the active node is one).
pub const MAX_REDIRECTS: usize = 1;

/// Why a redirect was not followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// More hops than [`MAX_REDIRECTS`].
    #[error(
        "vault redirected more than {MAX_REDIRECTS} time(s); point vault.address at the active node"
    )]
    TooMany,
    /// From https to http.
    #[error("vault redirected from https to plain http ({to}); the token is never sent in clear")]
    Downgrade {
        /// The redirect's target, without credentials or query.
        to: String,
    },
    /// Over plain http to another scheme, host or port than the configured one.
    #[error(
        "vault redirected to another host over plain http ({to}); the token is only sent there \
         over https; point vault.address at that host, or use https"
    )]
    OtherHost {
        /// The redirect's target, without credentials or query.
        to: String,
    },
}

/// Whether a request that started at `configured` and has visited `previous` (the first one
/// included) may follow a redirect to `next`.
pub fn check(configured: &Url, previous: &[Url], next: &Url) -> Result<(), Refusal> {
    if previous.len() > MAX_REDIRECTS {
        return Err(Refusal::TooMany);
    }
    let shown = || shown(next);
    let from = previous.last().unwrap_or(configured);
    if from.scheme() == "https" && next.scheme() != "https" {
        return Err(Refusal::Downgrade { to: shown() });
    }
    if next.scheme() != "https" && next.origin() != configured.origin() {
        return Err(Refusal::OtherHost { to: shown() });
    }
    Ok(())
}

/// The reqwest policy that applies [`check`], for a client whose server is `configured`.
pub fn policy(configured: Url) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        match check(&configured, attempt.previous(), attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(refusal) => attempt.error(refusal),
        }
    })
}

/// A URL as messages show it: scheme, host, port and path; no user, password or query.
fn shown(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        text.parse().expect("url")
    }

    #[test]
    fn redirects_are_followed_only_where_the_credential_stays_safe() {
        let http = url("http://vault:8200/v1/secret/data/a");
        let https = url("https://vault:8200/v1/secret/data/a");
        type Case<'a> = (&'a Url, &'a [&'a str], &'a str, Result<(), &'a str>);
        let cases: [Case<'_>; 8] = [
            (&http, &[], "http://vault:8200/v1/other", Ok(())),
            (&https, &[], "https://vault-2:8200/v1/secret/data/a", Ok(())),
            (&https, &[], "https://vault:8200/v1/x", Ok(())),
            (&https, &[], "http://vault:8200/v1/x", Err("downgrade")),
            (&http, &[], "http://evil:8200/v1/x", Err("other")),
            (&http, &[], "http://vault:8201/v1/x", Err("other")),
            (&http, &[], "https://evil/v1/x", Ok(())),
            (
                &https,
                &["https://vault-2:8200/v1/x"],
                "https://vault-3:8200/v1/x",
                Err("many"),
            ),
        ];
        for (configured, hops, next, expected) in cases {
            let mut previous = vec![configured.clone()];
            previous.extend(hops.iter().map(|h| url(h)));
            let got = check(configured, &previous, &url(next));
            let got = got.map_err(|r| match r {
                Refusal::TooMany => "many",
                Refusal::Downgrade { .. } => "downgrade",
                Refusal::OtherHost { .. } => "other",
            });
            assert_eq!(got, expected, "{configured} -> {next} after {hops:?}");
        }
    }

    #[test]
    fn refusals_show_no_credentials_or_query() {
        let refusal = check(
            &url("http://vault:8200"),
            &[url("http://vault:8200/v1/a")],
            &url("http://user:pw@evil:1/v1/x?token=abc"),
        )
        .expect_err("refused");
        let text = refusal.to_string();
        assert!(text.contains("http://evil:1/v1/x"), "{text}");
        assert!(!text.contains("pw") && !text.contains("abc"), "{text}");
    }
}
