//! Sprig's word functions from Masterminds/goutils v1.1.1 (`abbrev`, `abbrevboth`, `initials`,
//! `wrap`, `wrapWith`, `swapcase`) and huandu/xstrings v1.4.0 (`camelcase`, `snakecase`,
//! `kebabcase`), the versions OpenBao's agent links.
//!
//! goutils works on a string's bytes, as Go indexes strings: `abbrev` and `wrap` may cut a
//! character in two, and `initials` takes each byte for the character of that number. The
//! bytes come out as Go writes them (see `values::bytes`).

use std::sync::LazyLock;

use regex::Regex;

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
    ("snakecase", |a| {
        arity("snakecase", a, 1)?;
        Ok(text(&lower_case_words(string("snakecase", &a[0])?, '_')))
    }),
    ("kebabcase", |a| {
        arity("kebabcase", a, 1)?;
        Ok(text(&lower_case_words(string("kebabcase", &a[0])?, '-')))
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

/// A Unicode general category test, as Go's `unicode` package makes it.
fn category(class: &'static LazyLock<Regex>, c: char) -> bool {
    let mut buf = [0; 4];
    class.is_match(c.encode_utf8(&mut buf))
}

fn class(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|_| Regex::new("$^").expect("an empty regex"))
}

static UPPER: LazyLock<Regex> = LazyLock::new(|| class(r"^\p{Lu}$"));
static LETTER: LazyLock<Regex> = LazyLock::new(|| class(r"^\p{L}$"));
static NUMBER: LazyLock<Regex> = LazyLock::new(|| class(r"^\p{N}$"));
static PUNCT: LazyLock<Regex> = LazyLock::new(|| class(r"^\p{P}$"));

fn is_upper(c: char) -> bool {
    category(&UPPER, c)
}

fn is_number(c: char) -> bool {
    category(&NUMBER, c)
}

fn is_punct(c: char) -> bool {
    category(&PUNCT, c)
}

fn is_connector(c: char) -> bool {
    c == '-' || c == '_' || c.is_whitespace()
}

/// xstrings' `isAlphabet`: a letter, but not a CJK ideograph.
fn is_alphabet(c: char) -> bool {
    category(&LETTER, c)
        && !matches!(c, '\u{4E00}'..='\u{9FCC}' | '\u{3400}'..='\u{4D85}' | '\u{20000}'..='\u{2B81D}')
}

/// What Go's `utf8.DecodeRuneInString` calls an error: U+FFFD, which xstrings skips.
const ERROR: char = '\u{FFFD}';

/// The kinds of xstrings' words.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Word {
    Invalid,
    Number,
    Upper,
    Alphabet,
    Connector,
    Punct,
    Other,
}

/// xstrings' `nextValidRune`: the next character that is not U+FFFD and the bytes up to its
/// end; `prev` when there is none.
fn next_valid(s: &str, prev: char) -> (char, usize) {
    let mut size = 0;
    for c in s.chars() {
        size += c.len_utf8();
        if c != ERROR {
            return (c, size);
        }
    }
    (prev, size)
}

/// xstrings' `nextWord`: the kind of the word at the start of `s`, the word, and the rest.
fn next_word(s: &str) -> (Word, &str, &str) {
    if s.is_empty() {
        return (Word::Invalid, "", "");
    }
    let (mut r, mut size) = next_valid(s, ERROR);
    let mut offset = size;
    if r == ERROR {
        return (Word::Invalid, &s[..offset], &s[offset..]);
    }
    let mut remaining = &s[size..];
    // Takes characters while `keep` holds.
    let run =
        |r: &mut char, offset: &mut usize, remaining: &mut &str, keep: &dyn Fn(char) -> bool| {
            while !remaining.is_empty() {
                let (next, size) = next_valid(remaining, *r);
                *r = next;
                if !keep(next) {
                    break;
                }
                *offset += size;
                *remaining = &remaining[size..];
            }
        };
    let kind = if is_connector(r) {
        run(&mut r, &mut offset, &mut remaining, &is_connector);
        Word::Connector
    } else if is_punct(r) {
        run(&mut r, &mut offset, &mut remaining, &is_punct);
        Word::Punct
    } else if is_upper(r) {
        if !remaining.is_empty() {
            (r, size) = next_valid(remaining, r);
            if is_upper(r) {
                let mut previous = size;
                offset += size;
                remaining = &remaining[size..];
                while !remaining.is_empty() {
                    (r, size) = next_valid(remaining, r);
                    if !is_upper(r) {
                        break;
                    }
                    previous = size;
                    offset += size;
                    remaining = &remaining[size..];
                }
                // The last capital of a run starts the next word ("HTTPServer").
                if !remaining.is_empty() && is_alphabet(r) {
                    offset -= previous;
                    remaining = &s[offset..];
                }
            } else if is_alphabet(r) {
                offset += size;
                remaining = &remaining[size..];
                run(&mut r, &mut offset, &mut remaining, &|c| {
                    is_alphabet(c) && !is_upper(c)
                });
            }
        }
        Word::Upper
    } else if is_alphabet(r) {
        run(&mut r, &mut offset, &mut remaining, &|c| {
            is_alphabet(c) && !is_upper(c)
        });
        Word::Alphabet
    } else if is_number(r) {
        run(&mut r, &mut offset, &mut remaining, &is_number);
        Word::Number
    } else {
        run(&mut r, &mut offset, &mut remaining, &|c| {
            !(is_connector(c) || is_alphabet(c) || is_number(c) || is_punct(c))
        });
        Word::Other
    };
    (kind, &s[..offset], remaining)
}

/// xstrings' `toLower`: an upper-case or connector word in lower case with `connector` for
/// its connectors; any other word as it is.
fn push_lower(out: &mut String, kind: Word, word: &str, connector: char) {
    if kind != Word::Upper && kind != Word::Connector {
        out.push_str(word);
        return;
    }
    for c in word.chars() {
        if is_connector(c) {
            out.push(connector);
        } else if is_upper(c) {
            out.push(single(c, c.to_lowercase()));
        } else {
            out.push(c);
        }
    }
}

/// xstrings' `camelCaseToLowerCase`: `snakecase` with `_`, `kebabcase` with `-`.
fn lower_case_words(s: &str, connector: char) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 2);
    if s.is_empty() {
        return out;
    }
    let (mut kind, mut word, mut remaining) = next_word(s);
    while !remaining.is_empty() {
        if kind != Word::Connector {
            push_lower(&mut out, kind, word, connector);
        }
        let (previous, last) = (kind, word);
        (kind, word, remaining) = next_word(remaining);
        match previous {
            Word::Number => {
                while kind == Word::Alphabet || kind == Word::Number {
                    push_lower(&mut out, kind, word, connector);
                    (kind, word, remaining) = next_word(remaining);
                }
                if !matches!(kind, Word::Invalid | Word::Punct | Word::Connector) {
                    out.push(connector);
                }
            }
            Word::Connector => push_lower(&mut out, previous, last, connector),
            Word::Punct => {}
            _ => {
                if kind != Word::Number {
                    if kind != Word::Connector && kind != Word::Punct {
                        out.push(connector);
                    }
                    continue;
                }
                if remaining.is_empty() {
                    continue;
                }
                let last = word;
                (kind, word, remaining) = next_word(remaining);
                if kind != Word::Alphabet {
                    push_lower(&mut out, Word::Number, last, connector);
                    if kind != Word::Connector && kind != Word::Punct {
                        out.push(connector);
                    }
                    continue;
                }
                out.push(connector);
                push_lower(&mut out, Word::Number, last, connector);
                while kind == Word::Alphabet || kind == Word::Number {
                    push_lower(&mut out, kind, word, connector);
                    (kind, word, remaining) = next_word(remaining);
                }
                if !matches!(kind, Word::Invalid | Word::Connector | Word::Punct) {
                    out.push(connector);
                }
            }
        }
    }
    push_lower(&mut out, kind, word, connector);
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

    /// xstrings v1.4.0's `TestToSnakeCaseAndToKebabCase`, every case.
    #[test]
    fn snake_and_kebab_case_follow_xstrings() {
        let cases = [
            ("HTTPServer", "http_server"),
            ("_camelCase", "_camel_case"),
            ("NoHTTPS", "no_https"),
            ("Wi_thF", "wi_th_f"),
            ("_AnotherTES_TCaseP", "_another_tes_t_case_p"),
            ("ALL", "all"),
            ("_HELLO_WORLD_", "_hello_world_"),
            ("HELLO_WORLD", "hello_world"),
            ("HELLO____WORLD", "hello____world"),
            ("TW", "tw"),
            ("_C", "_c"),
            ("http2xx", "http_2xx"),
            ("HTTP2XX", "http2_xx"),
            ("HTTP20xOK", "http_20x_ok"),
            ("HTTP20xStatus", "http_20x_status"),
            ("HTTP-20xStatus", "http_20x_status"),
            ("a", "a"),
            ("Duration2m3s", "duration_2m3s"),
            ("Bld4Floor3rd", "bld4_floor_3rd"),
            (" _-_ ", "_____"),
            ("a1b2c3d", "a_1b2c3d"),
            ("A//B%%2c", "a//b%%2c"),
            ("HTTP状态码404/502Error", "http_状态码404/502_error"),
            ("中文(字符)", "中文(字符)"),
            ("混合ABCWords与123数字456", "混合_abc_words_与123_数字456"),
            ("  sentence case  ", "__sentence_case__"),
            (
                " Mixed-hyphen case _and SENTENCE_case and UPPER-case",
                "_mixed_hyphen_case__and_sentence_case_and_upper_case",
            ),
            (
                "FROM CamelCase to snake/kebab-case",
                "from_camel_case_to_snake/kebab_case",
            ),
            ("", ""),
            (
                "Abc\u{FFFD}E\u{FFFD}f\u{FFFD}d\u{FFFD}2\u{FFFD}00z\u{FFFD}ZZ\u{FFFD}ZZ",
                "abc_\u{FFFD}e\u{FFFD}f\u{FFFD}d_\u{FFFD}2\u{FFFD}00z_\u{FFFD}zz\u{FFFD}zz",
            ),
            (
                "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}",
                "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}",
            ),
            ("abc_123_def", "abc_123_def"),
        ];
        for (input, want) in cases {
            assert_eq!(lower_case_words(input, '_'), want, "{input:?}");
            assert_eq!(
                lower_case_words(input, '-'),
                want.replace('_', "-"),
                "{input:?}"
            );
        }
    }
}
