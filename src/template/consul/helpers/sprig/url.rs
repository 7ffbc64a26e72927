//! Sprig's `urlParse` and `urlJoin`: Go's `net/url` (`url.Parse`, `URL.Hostname`,
//! `Userinfo.String` and `URL.String`), ported for what these two functions use.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::Value;

use super::super::Function;
use super::super::go::{arity, fail, string};
use super::collections::dict;
use super::text;
use crate::template::consul::values;

/// The URL functions, without the `sprig_` prefix.
pub(in crate::template::consul::helpers) const URL: &[(&str, Function)] = &[
    ("urlParse", |a| {
        arity("urlParse", a, 1)?;
        let url = parse(string("urlParse", &a[0])?)
            .map_err(|why| fail("urlParse", format!("unable to parse url: {why}")))?;
        let userinfo = url
            .user
            .as_ref()
            .map_or_else(String::new, Userinfo::escaped);
        Ok(values::map([
            ("scheme", text(&url.scheme)),
            ("host", text(&url.host)),
            ("hostname", text(hostname(&url.host))),
            ("path", text(&url.path)),
            ("query", text(&url.raw_query)),
            ("opaque", text(&url.opaque)),
            ("fragment", text(&url.fragment)),
            ("userinfo", text(&userinfo)),
        ]))
    }),
    ("urlJoin", |a| {
        arity("urlJoin", a, 1)?;
        let fields = dict("urlJoin", &a[0])?.cloned().unwrap_or_default();
        let field = |key: &str| get(&fields, key);
        let userinfo = field("userinfo")?;
        let user = if userinfo.is_empty() {
            None
        } else {
            parse(&format!("proto://{userinfo}@host"))
                .map_err(|why| {
                    fail(
                        "urlJoin",
                        format!("unable to parse userinfo in dict: {why}"),
                    )
                })?
                .user
        };
        let url = Url {
            scheme: field("scheme")?,
            host: field("host")?,
            path: field("path")?,
            raw_query: field("query")?,
            opaque: field("opaque")?,
            fragment: field("fragment")?,
            user,
            ..Url::default()
        };
        Ok(text(&url.to_go_string()))
    }),
];

/// Sprig's `dictGetOrEmpty`: a string-kinded value, or "" when the key is absent.
fn get(fields: &BTreeMap<Arc<str>, Value>, key: &str) -> gotmpl::Result<String> {
    match fields.get(key) {
        None => Ok(String::new()),
        Some(Value::String(s)) if values::time_of(s).is_none() => Ok(s.to_string()),
        Some(other) => Err(fail(
            "urlJoin",
            format!(
                "unable to parse {key} key, must be of type string, but {} found",
                super::reflect_kind(other)
            ),
        )),
    }
}

/// The parts of Go's `url.URL` these functions use.
#[derive(Debug, Default, PartialEq, Eq)]
struct Url {
    scheme: String,
    opaque: String,
    user: Option<Userinfo>,
    host: String,
    path: String,
    raw_path: String,
    omit_host: bool,
    force_query: bool,
    raw_query: String,
    fragment: String,
}

#[derive(Debug, PartialEq, Eq)]
struct Userinfo {
    username: String,
    password: Option<String>,
}

impl Userinfo {
    /// `Userinfo.String`.
    fn escaped(&self) -> String {
        let mut s = escape(&self.username, Mode::UserPassword);
        if let Some(password) = &self.password {
            s.push(':');
            s.push_str(&escape(password, Mode::UserPassword));
        }
        s
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Path,
    Host,
    UserPassword,
    Fragment,
}

fn should_escape(c: u8, mode: Mode) -> bool {
    if c.is_ascii_alphanumeric() {
        return false;
    }
    if mode == Mode::Host
        && matches!(
            c,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
                | b'<'
                | b'>'
                | b'"'
        )
    {
        return false;
    }
    match c {
        b'-' | b'_' | b'.' | b'~' => return false,
        b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@' => {
            return match mode {
                Mode::Path => c == b'?',
                Mode::UserPassword => matches!(c, b'@' | b'/' | b'?' | b':'),
                Mode::Fragment => false,
                Mode::Host => true,
            };
        }
        _ => {}
    }
    !(mode == Mode::Fragment && matches!(c, b'!' | b'(' | b')' | b'*'))
}

/// Go's `url.escape`.
fn escape(s: &str, mode: Mode) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if should_escape(b, mode) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// Go's `url.unescape` (never in query mode, so `+` stays).
fn unescape(s: &str, mode: Mode) -> Result<String, &'static str> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |b: u8| char::from(b).to_digit(16);
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err("invalid URL escape");
                };
                // Only %25 may escape in a host below 0x80 (a zone's "%").
                if mode == Mode::Host && hi < 8 && &s[i..i + 3] != "%25" {
                    return Err("invalid URL escape");
                }
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(0));
                i += 3;
            }
            b if mode == Mode::Host && b < 0x80 && should_escape(b, mode) => {
                return Err("invalid character in host name");
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "the URL escapes bytes that are not UTF-8")
}

/// `url.Parse`.
fn parse(raw: &str) -> Result<Url, &'static str> {
    let (rest, fragment) = raw.split_once('#').unwrap_or((raw, ""));
    let mut url = parse_without_fragment(rest)?;
    url.fragment = unescape(fragment, Mode::Fragment)?;
    Ok(url)
}

fn parse_without_fragment(raw: &str) -> Result<Url, &'static str> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL");
    }
    let mut url = Url::default();
    if raw == "*" {
        url.path = "*".to_owned();
        return Ok(url);
    }
    let (scheme, mut rest) = scheme(raw)?;
    url.scheme = scheme.to_ascii_lowercase();
    if rest.ends_with('?') && rest.matches('?').count() == 1 {
        url.force_query = true;
        rest = &rest[..rest.len() - 1];
    } else if let Some((before, query)) = rest.split_once('?') {
        url.raw_query = query.to_owned();
        rest = before;
    }
    if !rest.starts_with('/') {
        if !url.scheme.is_empty() {
            url.opaque = rest.to_owned();
            return Ok(url);
        }
        let segment = rest.split('/').next().unwrap_or("");
        if segment.contains(':') {
            return Err("first path segment in URL cannot contain colon");
        }
    }
    if (!url.scheme.is_empty() || !rest.starts_with("///")) && rest.starts_with("//") {
        let after = &rest[2..];
        let (authority, path) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        let (user, host) = parse_authority(authority)?;
        url.user = user;
        url.host = host;
        rest = path;
    } else if !url.scheme.is_empty() && rest.starts_with('/') {
        url.omit_host = true;
    }
    url.path = unescape(rest, Mode::Path)?;
    url.raw_path = if escape(&url.path, Mode::Path) == rest {
        String::new()
    } else {
        rest.to_owned()
    };
    Ok(url)
}

/// Go's `getScheme`.
fn scheme(raw: &str) -> Result<(&str, &str), &'static str> {
    for (i, c) in raw.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i == 0 => return Ok(("", raw)),
            b'0'..=b'9' | b'+' | b'-' | b'.' => {}
            b':' if i == 0 => return Err("missing protocol scheme"),
            b':' => return Ok((&raw[..i], &raw[i + 1..])),
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

fn parse_authority(authority: &str) -> Result<(Option<Userinfo>, String), &'static str> {
    let Some(at) = authority.rfind('@') else {
        return Ok((None, parse_host(authority)?));
    };
    let host = parse_host(&authority[at + 1..])?;
    let userinfo = &authority[..at];
    let valid = userinfo
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&b));
    if !valid {
        return Err("net/url: invalid userinfo");
    }
    let user = match userinfo.split_once(':') {
        None => Userinfo {
            username: unescape(userinfo, Mode::UserPassword)?,
            password: None,
        },
        Some((name, password)) => Userinfo {
            username: unescape(name, Mode::UserPassword)?,
            password: Some(unescape(password, Mode::UserPassword)?),
        },
    };
    Ok((Some(user), host))
}

/// Go's `validOptionalPort`: empty, or `:` and digits.
fn valid_optional_port(port: &str) -> bool {
    port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
}

fn parse_host(host: &str) -> Result<String, &'static str> {
    if host.starts_with('[') {
        let Some(close) = host.rfind(']') else {
            return Err("missing ']' in host");
        };
        if !valid_optional_port(&host[close + 1..]) {
            return Err("invalid port after host");
        }
        // An IPv6 zone ("%25eth0") may hold what a host may not.
        if let Some(zone) = host[..close].find("%25") {
            let head = unescape(&host[..zone], Mode::Host)?;
            let zone_text = unescape(&host[zone..close], Mode::Path)?;
            let tail = unescape(&host[close..], Mode::Host)?;
            return Ok(format!("{head}{zone_text}{tail}"));
        }
    } else if let Some(colon) = host.rfind(':')
        && !valid_optional_port(&host[colon..])
    {
        return Err("invalid port after host");
    }
    unescape(host, Mode::Host)
}

/// `URL.Hostname`: the host without its port or brackets.
fn hostname(host: &str) -> &str {
    let host = match host.rfind(':') {
        Some(colon) if valid_optional_port(&host[colon..]) => &host[..colon],
        _ => host,
    };
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => inner,
        None => host,
    }
}

impl Url {
    /// `URL.String`.
    fn to_go_string(&self) -> String {
        let mut out = String::new();
        if !self.scheme.is_empty() {
            out.push_str(&self.scheme);
            out.push(':');
        }
        if !self.opaque.is_empty() {
            out.push_str(&self.opaque);
        } else {
            // Go writes the authority unless there is none and no scheme, or the host is
            // omitted.
            let bare = self.host.is_empty() && self.user.is_none();
            if !(bare && (self.scheme.is_empty() || self.omit_host)) {
                if !self.host.is_empty() || !self.path.is_empty() || self.user.is_some() {
                    out.push_str("//");
                }
                if let Some(user) = &self.user {
                    out.push_str(&user.escaped());
                    out.push('@');
                }
                out.push_str(&escape(&self.host, Mode::Host));
            }
            let path = if self.path == "*" {
                "*".to_owned()
            } else {
                escape(&self.path, Mode::Path)
            };
            if !path.is_empty() && !path.starts_with('/') && !self.host.is_empty() {
                out.push('/');
            }
            if out.is_empty() && path.split('/').next().unwrap_or("").contains(':') {
                out.push_str("./");
            }
            out.push_str(&path);
        }
        if self.force_query || !self.raw_query.is_empty() {
            out.push('?');
            out.push_str(&self.raw_query);
        }
        if !self.fragment.is_empty() {
            out.push('#');
            out.push_str(&escape(&self.fragment, Mode::Fragment));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_print_as_net_url_does() {
        let url =
            parse("postgres://us%40er:p%2Fss@db.example.com:5432/app%20db?sslmode=require#frag%21")
                .expect("parses");
        assert_eq!(url.scheme, "postgres");
        assert_eq!(url.host, "db.example.com:5432");
        assert_eq!(hostname(&url.host), "db.example.com");
        assert_eq!(url.path, "/app db");
        assert_eq!(url.raw_query, "sslmode=require");
        assert_eq!(url.fragment, "frag!");
        assert_eq!(
            url.user.as_ref().map(Userinfo::escaped).as_deref(),
            Some("us%40er:p%2Fss")
        );
        assert_eq!(
            url.to_go_string(),
            "postgres://us%40er:p%2Fss@db.example.com:5432/app%20db?sslmode=require#frag!"
        );
        assert_eq!(parse("mailto:a@b").expect("opaque").opaque, "a@b");
        assert_eq!(hostname("[::1]:80"), "::1");
        assert!(parse(":x").is_err());
        assert!(parse("a:b/c").is_ok_and(|u| u.scheme == "a"));
        assert!(parse("1a:b").is_err(), "a colon in the first segment");
        assert!(parse("http://h:x/").is_err());
        assert!(parse("http://a b/").is_err());
    }
}
