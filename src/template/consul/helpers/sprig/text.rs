//! Sprig's regular expressions, paths, random values and `expandenv`.

use gotmpl::Value;

use super::super::go::{self, arity, fail, string};
use super::super::{regex, text};
use super::two;

pub(super) fn regex_match(function: &str, args: &[Value]) -> gotmpl::Result<Value> {
    let (re, s) = two(function, args)?;
    Ok(Value::Bool(regex(function, re)?.is_match(s)))
}

pub(super) fn regex_find(function: &str, args: &[Value]) -> gotmpl::Result<Value> {
    let (re, s) = two(function, args)?;
    Ok(text(
        regex(function, re)?.find(s).map_or("", |m| m.as_str()),
    ))
}

/// `regexFindAll RE S N`: at most N matches (all when N < 0).
pub(super) fn regex_find_all(function: &str, args: &[Value]) -> gotmpl::Result<Value> {
    arity(function, args, 3)?;
    let re = regex(function, string(function, &args[0])?)?;
    let s = string(function, &args[1])?;
    let n = go::int(function, &args[2])?;
    let limit = usize::try_from(n).unwrap_or(usize::MAX);
    go::strings(function, re.find_iter(s).take(limit).map(|m| m.as_str()))
}

/// `regexReplaceAll RE S REPLACEMENT` (`$1` expands unless literal).
pub(super) fn regex_replace(
    function: &str,
    args: &[Value],
    literal: bool,
) -> gotmpl::Result<Value> {
    arity(function, args, 3)?;
    let re = regex(function, string(function, &args[0])?)?;
    let s = string(function, &args[1])?;
    let with = string(function, &args[2])?;
    Ok(text(&if literal {
        re.replace_all(s, regex::NoExpand(with))
    } else {
        re.replace_all(s, with)
    }))
}

/// `regexSplit RE S N`: Go's `Regexp.Split`.
pub(super) fn regex_split(function: &str, args: &[Value]) -> gotmpl::Result<Value> {
    arity(function, args, 3)?;
    let re = regex(function, string(function, &args[0])?)?;
    let s = string(function, &args[1])?;
    let n = go::int(function, &args[2])?;
    if n == 0 {
        return Ok(Value::Nil);
    }
    if !re.as_str().is_empty() && s.is_empty() {
        return go::strings(function, [""]);
    }
    let limit = usize::try_from(n).unwrap_or(usize::MAX);
    let mut parts = Vec::new();
    let (mut begin, mut end) = (0, 0);
    for m in re.find_iter(s).take(limit) {
        if parts.len() == limit - 1 {
            break;
        }
        end = m.start();
        if m.end() != 0 {
            parts.push(&s[begin..end]);
        }
        begin = m.end();
    }
    if end != s.len() {
        parts.push(&s[begin..]);
    }
    go::strings(function, parts)
}

/// Go's `regexp.QuoteMeta`: a backslash before each of `\.+*?()|[]{}^$`.
pub(super) fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Go's `path.Clean`.
pub(super) fn path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Go's `path.Base`.
pub(super) fn path_base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".into();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_owned()
}

/// Go's `path.Dir`.
pub(super) fn path_dir(p: &str) -> String {
    let dir = p.rfind('/').map_or("", |i| &p[..=i]);
    path_clean(dir)
}

/// Go's `path.Ext`.
pub(super) fn path_ext(p: &str) -> &str {
    for (i, c) in p.char_indices().rev() {
        match c {
            '/' => return "",
            '.' => return &p[i..],
            _ => {}
        }
    }
    ""
}

pub(super) fn random_bytes(function: &str, n: usize) -> gotmpl::Result<Vec<u8>> {
    let mut bytes = vec![0; n];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| fail(function, "the system's random generator failed"))?;
    Ok(bytes)
}

/// COUNT characters drawn from `alphabet`.
pub(super) fn random_text(
    function: &str,
    args: &[Value],
    alphabet: &[u8],
) -> gotmpl::Result<Value> {
    arity(function, args, 1)?;
    let count = go::int(function, &args[0])?;
    let count = usize::try_from(count).unwrap_or(0);
    if count > super::super::MAX_BUILD {
        return Err(super::super::too_long(function));
    }
    let bytes = random_bytes(function, count * 2)?;
    let out: String = bytes
        .chunks(2)
        .map(|pair| {
            let n = usize::from(u16::from_le_bytes([pair[0], pair[1]]));
            char::from(alphabet[n % alphabet.len()])
        })
        .collect();
    Ok(text(&out))
}

/// Go's `os.Expand`: `$NAME` and `${NAME}` replaced by `lookup(NAME)`.
pub(super) fn expand(s: &str, lookup: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(0) => {
                    // Go drops a bad "${}".
                    rest = &braced[1..];
                }
                Some(end) => {
                    out.push_str(&lookup(&braced[..end]));
                    rest = &braced[end + 1..];
                }
                None => {
                    rest = "";
                }
            }
            continue;
        }
        let special = after
            .chars()
            .next()
            .filter(|c| "*#$@!?-".contains(*c) || c.is_ascii_digit());
        let len = match special {
            Some(c) => c.len_utf8(),
            None => after
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count(),
        };
        if len == 0 {
            out.push('$');
        } else {
            out.push_str(&lookup(&after[..len]));
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}
