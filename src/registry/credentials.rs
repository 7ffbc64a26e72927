//! Registry credentials from a `.dockerconfigjson` document (what a Secret of type
//! `kubernetes.io/dockerconfigjson` holds, and what `docker login` writes): the user and
//! password for one registry. Pure.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde::Deserialize;

/// A user and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user.
    pub username: String,
    /// The password (or token).
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The registry a `.dockerconfigjson` key names: `https://index.docker.io/v1/`,
/// `registry.example:5000` and `http://registry.example:5000/v2` name their host and port,
/// lower-cased; Docker Hub's names are one.
fn host(key: &str) -> String {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        _ => host,
    }
}

/// The credentials `text` (a `.dockerconfigjson` document) gives for `registry` (a host and
/// optional port, as an image reference names it); `None` when it names none. The error says
/// what is wrong with the document, never a value in it.
pub fn credentials_for(text: &str, registry: &str) -> Result<Option<Credentials>, String> {
    let config: DockerConfig = serde_json::from_str(text).map_err(|e| {
        format!(
            "is not a .dockerconfigjson document ({{\"auths\": {{\"registry.example\": {{\"auth\": \"base64 of user:password\"}}}}}}): line {} column {}",
            e.line(),
            e.column()
        )
    })?;
    let wanted = host(registry);
    let Some((key, entry)) = config.auths.iter().find(|(key, _)| host(key) == wanted) else {
        return Ok(None);
    };
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Some(Credentials {
            username: username.clone(),
            password: password.clone(),
        }));
    }
    let Some(auth) = &entry.auth else {
        return Err(format!(
            "auths[{key:?}] has neither auth nor username and password"
        ));
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| format!("auths[{key:?}].auth is not base64 of user:password"))?;
    let (username, password) = decoded
        .split_once(':')
        .ok_or_else(|| format!("auths[{key:?}].auth is not base64 of user:password"))?;
    Ok(Some(Credentials {
        username: username.to_owned(),
        password: password.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    }

    #[test]
    fn the_entry_of_the_image_s_registry_is_found_in_every_spelling() {
        let text = serde_json::json!({"auths": {
            "https://index.docker.io/v1/": {"auth": basic("hub", "h-pw")},
            "registry.example:5000": {"username": "u", "password": "p:w"},
            "http://Other.Example/v2/": {"auth": basic("o", "pass:with:colons")},
        }})
        .to_string();
        let found = |registry| credentials_for(&text, registry).expect("valid");
        let hub = found("index.docker.io").expect("Docker Hub");
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("hub", "h-pw")
        );
        assert_eq!(found("docker.io"), Some(hub));
        let port = found("registry.example:5000").expect("with its port");
        assert_eq!(port.password, "p:w");
        assert_eq!(
            found("registry.example"),
            None,
            "another port is another registry"
        );
        let other = found("other.example").expect("case and scheme ignored");
        assert_eq!(other.password, "pass:with:colons");
        assert_eq!(found("ghcr.io"), None);
        assert_eq!(credentials_for("{}", "ghcr.io"), Ok(None));
    }

    #[test]
    fn a_broken_document_is_refused_without_its_values() {
        let cases = [
            ("{\"auths\": ", "is not a .dockerconfigjson document"),
            (
                "{\"auths\": {\"r.example\": {\"auth\": \"!!secret!!\"}}}",
                "auths[\"r.example\"].auth is not base64 of user:password",
            ),
            (
                "{\"auths\": {\"r.example\": {}}}",
                "has neither auth nor username and password",
            ),
        ];
        for (text, expected) in cases {
            let error = credentials_for(text, "r.example").expect_err(text);
            assert!(error.contains(expected), "{error}");
            assert!(!error.contains("secret"), "{error}");
        }
        let credentials = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{credentials:?}").contains("hunter2"));
    }
}
