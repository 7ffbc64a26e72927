//! Sprig's word functions from Masterminds/goutils v1.1.1 (`abbrev`, `abbrevboth`, `initials`,
//! `wrap`, `wrapWith`, `swapcase`) and huandu/xstrings v1.4.0 (`camelcase`), the versions
//! OpenBao's agent links.
//!
//! goutils works on a string's bytes, as Go indexes strings: `abbrev` and `wrap` may cut a
//! character in two, and `initials` takes each byte for the character of that number. The
//! bytes come out as Go writes them (see `values::bytes`).

use super::super::go::{self, arity, string};
use super::super::{Function, single};
use super::text;
use crate::template::consul::values;

/// The word functions, without the `sprig_` prefix.
pub(in crate::template::consul::helpers) const WORDS: &[(&str, Function)] = &[
    ("abbrev", |a| {
        arity("abbrev", a, 2)?;
        let width = go::int("abbrev", &a[0])?;
        let s = string("abbrev", &a[1])?;
        if width < 4 {
            return Ok(text(s));
        }
        Ok(values::bytes(&abbreviate(s.as_bytes(), 0, width)))
    }),
    ("abbrevboth", |a| {
        arity("abbrevboth", a, 3)?;
        let left = go::int("abbrevboth", &a[0])?;
        let right = go::int("abbrevboth", &a[1])?;
        let s = string("abbrevboth", &a[2])?;
        if right < 4 || left > 0 && right < 7 {
            return Ok(text(s));
        }
        Ok(values::bytes(&abbreviate(s.as_bytes(), left, right)))
    }),
    ("initials", |a| {
        arity("initials", a, 1)?;
        let s = string("initials", &a[0])?;
        // goutils reads a byte at a time, each as the character of that number.
        let mut out = String::new();
        let mut gap = true;
        for c in s.bytes().map(char::from) {
            if c.is_whitespace() {
                gap = true;
            } else if gap {
                out.push(c);
                gap = false;
            }
        }
        Ok(text(&out))
    }),
    ("wrap", |a| {
        arity("wrap", a, 2)?;
        let width = go::int("wrap", &a[0])?;
        let s = string("wrap", &a[1])?;
        Ok(values::bytes(&wrap(s.as_bytes(), width, b"\n", false)))
    }),
    ("wrapWith", |a| {
        arity("wrapWith", a, 3)?;
        let width = go::int("wrapWith", &a[0])?;
        let separator = string("wrapWith", &a[1])?;
        let s = string("wrapWith", &a[2])?;
        let separator = if separator.is_empty() {
            "\n"
        } else {
            separator
        };
        if s.len().saturating_mul(separator.len() + 1) > super::super::MAX_BUILD {
            return Err(super::super::too_long("wrapWith"));
        }
        Ok(values::bytes(&wrap(
            s.as_bytes(),
            width,
            separator.as_bytes(),
            true,
        )))
    }),
    ("swapcase", |a| {
        arity("swapcase", a, 1)?;
        Ok(text(&swap_case(string("swapcase", &a[0])?)))
    }),
    ("camelcase", |a| {
        arity("camelcase", a, 1)?;
        Ok(text(&camel_case(string("camelcase", &a[0])?)))
    }),
];

/// goutils' `AbbreviateFull` (errors give the empty string, as Sprig ignores them).
fn abbreviate(s: &[u8], offset: i64, width: i64) -> Vec<u8> {
    let len = s.len() as i64;
    if s.is_empty() || width < 4 {
        return Vec::new();
    }
    if len <= width {
        return s.to_vec();
    }
    let mut offset = offset.min(len);
    if len - offset < width - 3 {
        offset = len - (width - 3);
    }
    let at = |i: i64| usize::try_from(i).unwrap_or(0);
    if offset <= 4 {
        return [&s[..at(width - 3)], b"..."].concat();
    }
    if width < 7 {
        return Vec::new();
    }
    if offset + width - 3 < len {
        return [&b"..."[..], &abbreviate(&s[at(offset)..], 0, width - 3)].concat();
    }
    [&b"..."[..], &s[at(len - (width - 3))..]].concat()
}

/// goutils' `WrapCustom`: lines of at most `width` bytes, broken at spaces; a longer word is
/// cut when `long` and kept whole otherwise.
fn wrap(s: &[u8], width: i64, newline: &[u8], long: bool) -> Vec<u8> {
    if s.is_empty() {
        return Vec::new();
    }
    let width = usize::try_from(width.max(1)).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(s.len());
    let mut offset = 0;
    while s.len() - offset > width {
        if s[offset] == b' ' {
            offset += 1;
            continue;
        }
        let end = width + offset + 1;
        if let Some(space) = s[offset..end].iter().rposition(|b| *b == b' ') {
            out.extend_from_slice(&s[offset..offset + space]);
            out.extend_from_slice(newline);
            offset += space + 1;
        } else if long {
            out.extend_from_slice(&s[offset..offset + width]);
            out.extend_from_slice(newline);
            offset += width;
        } else {
            let end = width + offset;
            match s[end..].iter().position(|b| *b == b' ') {
                None => {
                    out.extend_from_slice(&s[offset..]);
                    offset = s.len();
                }
                Some(space) => {
                    out.extend_from_slice(&s[offset..end + space]);
                    out.extend_from_slice(newline);
                    offset = end + space + 1;
                }
            }
        }
    }
    out.extend_from_slice(&s[offset..]);
    out
}

/// goutils' `SwapCase`: upper to lower, lower to upper, a word's first lower-case letter to
/// title case.
fn swap_case(s: &str) -> String {
    let mut whitespace = true;
    s.chars()
        .map(|c| {
            if c.is_uppercase() {
                whitespace = false;
                single(c, c.to_lowercase())
            } else if c.is_lowercase() {
                let upper = single(c, c.to_uppercase());
                if std::mem::take(&mut whitespace) {
                    title(c).unwrap_or(upper)
                } else {
                    upper
                }
            } else {
                whitespace = c.is_whitespace();
                c
            }
        })
        .collect()
}

/// Go's `unicode.ToTitle` where it differs from `ToUpper`: the digraphs.
fn title(c: char) -> Option<char> {
    match c {
        '\u{1c4}'..='\u{1c6}' => Some('\u{1c5}'),
        '\u{1c7}'..='\u{1c9}' => Some('\u{1c8}'),
        '\u{1ca}'..='\u{1cc}' => Some('\u{1cb}'),
        '\u{1f1}'..='\u{1f3}' => Some('\u{1f2}'),
        _ => None,
    }
}

/// xstrings' `ToCamelCase`: connectors (`-`, `_`, spaces) go and the letter after one is upper
/// case, as is the first; a run of connectors keeps all but its last.
fn camel_case(s: &str) -> String {
    let connector = |c: char| c == '-' || c == '_' || c.is_whitespace();
    let upper = |c: char| single(c, c.to_uppercase());
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    let mut r0 = None;
    for c in chars.by_ref() {
        if !connector(c) {
            r0 = Some(upper(c));
            break;
        }
        out.push(c);
    }
    let Some(mut r0) = r0 else {
        return out;
    };
    for c in chars {
        let r1 = r0;
        r0 = c;
        if connector(r0) && connector(r1) {
            out.push(r1);
            continue;
        }
        if connector(r1) {
            r0 = upper(r0);
        } else {
            out.push(r1);
        }
    }
    out.push(r0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases from goutils' and xstrings' own tests.
    #[test]
    fn words_follow_goutils_and_xstrings() {
        let abbrev = |s: &str, offset, width| {
            String::from_utf8(abbreviate(s.as_bytes(), offset, width)).expect("ASCII")
        };
        assert_eq!(abbrev("abcdefg", 0, 6), "abc...");
        assert_eq!(abbrev("abcdefg", 0, 7), "abcdefg");
        assert_eq!(abbrev("abcdefghijklmno", 5, 10), "...fghi...");
        assert_eq!(abbrev("abcdefghijklmno", 12, 10), "...ijklmno");
        assert_eq!(abbrev("abcdefghijklmno", -1, 10), "abcdefg...");
        let wrapped = |s: &str, width, newline: &str, long| {
            String::from_utf8(wrap(s.as_bytes(), width, newline.as_bytes(), long)).expect("ASCII")
        };
        assert_eq!(
            wrapped(
                "Here is one line of text that is going to be wrapped after 20 columns.",
                20,
                "\n",
                false
            ),
            "Here is one line of\ntext that is going\nto be wrapped after\n20 columns."
        );
        assert_eq!(
            wrapped(
                "Click here to jump to the commons website - http://commons.apache.org",
                20,
                "<br />",
                true
            ),
            "Click here to jump<br />to the commons<br />website -<br />http://commons.apach<br />e.org"
        );
        assert_eq!(swap_case("This Is A Test"), "tHIS iS a tEST");
        assert_eq!(swap_case("hello ǆ"), "HELLO ǅ");
        assert_eq!(camel_case("some_words"), "SomeWords");
        assert_eq!(camel_case("_some  words_"), "_Some Words_");
        assert_eq!(camel_case("__"), "__");
        assert_eq!(camel_case("x"), "X");
        assert_eq!(camel_case("http_server"), "HttpServer");
    }
}
