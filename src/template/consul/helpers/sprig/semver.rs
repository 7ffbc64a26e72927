//! Sprig's `semver` and `semverCompare`: Masterminds/semver v3 (v3.4.0, the one OpenBao's agent
//! links), ported rather than taken from the `semver` crate, whose rules are Cargo's: a bare
//! `1.2.3` is a caret there and an exact match here, and Cargo has no `||`, hyphen ranges,
//! `v` prefixes or two-part versions (`1.2`), which Masterminds reads.
//!
//! A version's methods (`.Compare`, `.IncMajor`...) are not there: `semver` returns a map of
//! its parts (`.Major`, `.Minor`, `.Patch`, `.Prerelease`, `.Metadata`, `.Original`), which
//! prints as a map where Go prints `1.2.3`.

use std::cmp::Ordering;
use std::sync::LazyLock;

use gotmpl::Value;
use regex::Regex;

use super::super::Function;
use super::super::go::{arity, fail, string};
use super::text;
use crate::template::consul::values;

/// The semver functions, without the `sprig_` prefix.
pub(in crate::template::consul::helpers) const SEMVER: &[(&str, Function)] = &[
    ("semver", |a| {
        arity("semver", a, 1)?;
        let original = string("semver", &a[0])?;
        let v = Version::parse(original)
            .ok_or_else(|| fail("semver", "the text is not a semantic version"))?;
        Ok(values::map([
            ("Major", Value::Uint(v.major)),
            ("Minor", Value::Uint(v.minor)),
            ("Patch", Value::Uint(v.patch)),
            ("Prerelease", text(&v.pre)),
            ("Metadata", text(&v.metadata)),
            ("Original", text(original)),
        ]))
    }),
    ("semverCompare", |a| {
        arity("semverCompare", a, 2)?;
        let constraint = string("semverCompare", &a[0])?;
        let version = string("semverCompare", &a[1])?;
        let constraints = Constraints::parse(constraint).ok_or_else(|| {
            fail(
                "semverCompare",
                "the constraint is not one Masterminds/semver reads",
            )
        })?;
        let version = Version::parse(version)
            .ok_or_else(|| fail("semverCompare", "the version is not a semantic version"))?;
        Ok(Value::Bool(constraints.check(&version)))
    }),
];

/// A version's text: the loose form Masterminds coerces (`v1`, `1.2`, `01.2.3`).
const LOOSE: &str = r"v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";
/// A constraint's version, with `x`, `X` and `*` wildcards.
const CV: &str = r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";
/// The operators; the empty one (after `=`) is an exact match or a wildcard's range.
const OPS: &str = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^";

fn regex(pattern: String) -> Regex {
    // The patterns are constants; a failure here is a bug caught by the tests.
    Regex::new(&pattern).unwrap_or_else(|_| Regex::new("$^").expect("an empty regex"))
}

static VERSION: LazyLock<Regex> = LazyLock::new(|| regex(format!("^{LOOSE}$")));
static CONSTRAINT: LazyLock<Regex> = LazyLock::new(|| regex(format!(r"^\s*({OPS})\s*({CV})\s*$")));
static RANGE: LazyLock<Regex> = LazyLock::new(|| regex(format!(r"\s*({CV})\s+-\s+({CV})\s*")));
static FIND: LazyLock<Regex> = LazyLock::new(|| regex(format!(r"({OPS})\s*({CV})")));
static VALID: LazyLock<Regex> = LazyLock::new(|| {
    regex(format!(
        r"^(\s*({OPS})\s*({CV})\s*)((?:\s+|,\s*)({OPS})\s*({CV})\s*)*$"
    ))
});

/// A version as Masterminds' `NewVersion` reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: String,
    metadata: String,
}

const ALLOWED: fn(char) -> bool = |c| c.is_ascii_alphanumeric() || c == '-';

impl Version {
    fn parse(v: &str) -> Option<Version> {
        let m = VERSION.captures(v)?;
        let segment = |i: usize| -> Option<u64> {
            match m.get(i) {
                Some(s) => s.as_str().trim_start_matches('.').parse().ok(),
                None => Some(0),
            }
        };
        let version = Version {
            major: segment(1)?,
            minor: segment(2)?,
            patch: segment(3)?,
            pre: m.get(5).map_or("", |s| s.as_str()).to_owned(),
            metadata: m.get(8).map_or("", |s| s.as_str()).to_owned(),
        };
        let pre_ok = version.pre.is_empty()
            || version.pre.split('.').all(|p| {
                if p.is_empty() {
                    false
                } else if p.bytes().all(|b| b.is_ascii_digit()) {
                    !(p.len() > 1 && p.starts_with('0'))
                } else {
                    p.chars().all(ALLOWED)
                }
            });
        let metadata_ok = version.metadata.is_empty()
            || version
                .metadata
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(ALLOWED));
        (pre_ok && metadata_ok).then_some(version)
    }

    fn compare(&self, other: &Version) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => compare_prerelease(&self.pre, &other.pre),
            })
    }
}

fn compare_prerelease(a: &str, b: &str) -> Ordering {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    for i in 0..a.len().max(b.len()) {
        let part = compare_part(
            a.get(i).copied().unwrap_or(""),
            b.get(i).copied().unwrap_or(""),
        );
        if part != Ordering::Equal {
            return part;
        }
    }
    Ordering::Equal
}

/// Masterminds' `comparePrePart`: a missing part is less, numbers are less than words.
fn compare_part(s: &str, o: &str) -> Ordering {
    if s == o {
        return Ordering::Equal;
    }
    if s.is_empty() {
        return Ordering::Less;
    }
    if o.is_empty() {
        return Ordering::Greater;
    }
    let number = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| p.parse::<u64>().ok())
            .flatten()
    };
    match (number(s), number(o)) {
        (None, None) => s.cmp(o),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (Some(x), Some(y)) => {
            if x > y {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    TildeOrEqual,
    NotEqual,
    Greater,
    Less,
    GreaterEqual,
    LessEqual,
    Tilde,
    Caret,
}

#[derive(Debug)]
struct Constraint {
    op: Op,
    con: Version,
    minor_dirty: bool,
    patch_dirty: bool,
    dirty: bool,
}

/// Alternatives (`||`), each a list of constraints that must all hold, and whether any of them
/// names a prerelease (which lets prereleases match).
#[derive(Debug)]
struct Constraints(Vec<(Vec<Constraint>, bool)>);

fn is_x(s: &str) -> bool {
    matches!(s, "x" | "X" | "*")
}

impl Constraint {
    fn parse(c: &str) -> Option<Constraint> {
        let m = CONSTRAINT.captures(c)?;
        let group = |i: usize| m.get(i).map_or("", |g| g.as_str());
        let op = match group(1) {
            "" | "=" => Op::TildeOrEqual,
            "!=" => Op::NotEqual,
            ">" => Op::Greater,
            "<" => Op::Less,
            ">=" | "=>" => Op::GreaterEqual,
            "<=" | "=<" => Op::LessEqual,
            "~" | "~>" => Op::Tilde,
            _ => Op::Caret,
        };
        let (major, minor, patch, pre) = (group(3), group(4), group(5), group(6));
        let (mut minor_dirty, mut patch_dirty, mut dirty) = (false, false, false);
        let version = if is_x(major) || major.is_empty() {
            dirty = true;
            format!("0.0.0{pre}")
        } else if is_x(minor.trim_start_matches('.')) || minor.is_empty() {
            (minor_dirty, dirty) = (true, true);
            format!("{major}.0.0{pre}")
        } else if is_x(patch.trim_start_matches('.')) || patch.is_empty() {
            (patch_dirty, dirty) = (true, true);
            format!("{major}{minor}.0{pre}")
        } else {
            group(2).to_owned()
        };
        Some(Constraint {
            op,
            con: Version::parse(&version)?,
            minor_dirty,
            patch_dirty,
            dirty,
        })
    }

    fn check(&self, v: &Version, include_pre: bool) -> bool {
        if !v.pre.is_empty() && !include_pre {
            return false;
        }
        let c = &self.con;
        match self.op {
            Op::NotEqual => {
                if self.dirty {
                    if c.major != v.major {
                        return true;
                    }
                    if c.minor != v.minor && !self.minor_dirty {
                        return true;
                    } else if self.minor_dirty {
                        return false;
                    } else if c.patch != v.patch && !self.patch_dirty {
                        return true;
                    } else if self.patch_dirty {
                        return (!v.pre.is_empty() || !c.pre.is_empty())
                            && compare_prerelease(&v.pre, &c.pre) != Ordering::Equal;
                    }
                }
                v.compare(c) != Ordering::Equal
            }
            Op::Greater => {
                if !self.dirty {
                    return v.compare(c) == Ordering::Greater;
                }
                if v.major != c.major {
                    return v.major > c.major;
                }
                if self.minor_dirty {
                    return false;
                }
                if self.patch_dirty {
                    return v.minor > c.minor;
                }
                v.compare(c) == Ordering::Greater
            }
            Op::Less => v.compare(c) == Ordering::Less,
            Op::GreaterEqual => v.compare(c) != Ordering::Less,
            Op::LessEqual => {
                if !self.dirty {
                    return v.compare(c) != Ordering::Greater;
                }
                !(v.major > c.major || v.major == c.major && v.minor > c.minor && !self.minor_dirty)
            }
            Op::Tilde => self.tilde(v),
            Op::TildeOrEqual if self.dirty => self.tilde(v),
            Op::TildeOrEqual => v.compare(c) == Ordering::Equal,
            Op::Caret => {
                if v.compare(c) == Ordering::Less {
                    return false;
                }
                if c.major > 0 || self.minor_dirty {
                    return v.major == c.major;
                }
                if v.major > 0 {
                    return false;
                }
                if c.minor > 0 || self.patch_dirty {
                    return v.minor == c.minor;
                }
                if v.minor > 0 {
                    return false;
                }
                c.patch == v.patch
            }
        }
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.con;
        if v.compare(c) == Ordering::Less {
            return false;
        }
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        v.major == c.major && (v.minor == c.minor || self.minor_dirty)
    }
}

impl Constraints {
    /// Masterminds' `NewConstraint`.
    fn parse(text: &str) -> Option<Constraints> {
        // `1.2 - 1.4` is `>= 1.2, <= 1.4`.
        let mut rewritten = text.to_owned();
        for m in RANGE.captures_iter(text) {
            let whole = m.get(0).map_or("", |g| g.as_str());
            let (from, to) = (
                m.get(1).map_or("", |g| g.as_str()),
                m.get(11).map_or("", |g| g.as_str()),
            );
            rewritten = rewritten.replacen(whole, &format!(">= {from}, <= {to} "), 1);
        }
        let mut alternatives = Vec::new();
        for part in rewritten.split("||") {
            if !VALID.is_match(part) {
                return None;
            }
            let mut found: Vec<&str> = FIND.find_iter(part).map(|m| m.as_str()).collect();
            if found.is_empty() {
                found.push(part);
            }
            let constraints = found
                .into_iter()
                .map(Constraint::parse)
                .collect::<Option<Vec<_>>>()?;
            let has_pre = constraints.iter().any(|c| !c.con.pre.is_empty());
            alternatives.push((constraints, has_pre));
        }
        Some(Constraints(alternatives))
    }

    fn check(&self, v: &Version) -> bool {
        self.0
            .iter()
            .any(|(all, has_pre)| all.iter().all(|c| c.check(v, *has_pre)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Masterminds/semver v3.4.0's `TestConstraintsCheck`, every case.
    #[test]
    fn constraints_check_as_masterminds_checks_them() {
        let cases = [
            ("*", "1.2.3", true),
            ("~0.0.0", "1.2.3", true),
            ("0.x.x", "1.2.3", false),
            ("0.0.x", "1.2.3", false),
            ("0.0.0", "1.2.3", false),
            ("*", "1.2.3", true),
            ("^0.0.0", "1.2.3", false),
            ("= 2.0", "1.2.3", false),
            ("= 2.0", "2.0.0", true),
            ("4.1", "4.1.0", true),
            ("4.1.x", "4.1.3", true),
            ("1.x", "1.4", true),
            ("!=4.1", "4.1.0", false),
            ("!=4.1-alpha", "4.1.0-alpha", false),
            ("!=4.1-alpha", "4.1.1-alpha", false),
            ("!=4.1-alpha", "4.1.0", true),
            ("!=4.1", "5.1.0", true),
            ("!=4.x", "5.1.0", true),
            ("!=4.x", "4.1.0", false),
            ("!=4.1.x", "4.2.0", true),
            ("!=4.2.x", "4.2.3", false),
            (">1.1", "4.1.0", true),
            (">1.1", "1.1.0", false),
            ("<1.1", "0.1.0", true),
            ("<1.1", "1.1.0", false),
            ("<1.1", "1.1.1", false),
            ("<1.x", "1.1.1", false),
            ("<1.x", "0.1.1", true),
            ("<1.x", "2.0.0", false),
            ("<1.1.x", "1.2.1", false),
            ("<1.1.x", "1.1.500", false),
            ("<1.1.x", "1.0.500", true),
            ("<1.2.x", "1.1.1", true),
            (">=1.1", "4.1.0", true),
            (">=1.1", "4.1.0-beta", false),
            (">=1.1", "1.1.0", true),
            (">=1.1", "0.0.9", false),
            ("<=1.1", "0.1.0", true),
            ("<=1.1", "0.1.0-alpha", false),
            ("<=1.1-a", "0.1.0-alpha", true),
            ("<=1.1", "1.1.0", true),
            ("<=1.x", "1.1.0", true),
            ("<=2.x", "3.0.0", false),
            ("<=1.1", "1.1.1", true),
            ("<=1.1.x", "1.2.500", false),
            ("<=4.5", "3.4.0", true),
            ("<=4.5", "3.7.0", true),
            ("<=4.5", "4.6.3", false),
            (">1.1, <2", "1.1.1", false),
            (">1.1, <2", "1.2.1", true),
            (">1.1, <3", "4.3.2", false),
            (">=1.1, <2, !=1.2.3", "1.2.3", false),
            (">1.1 <2", "1.1.1", false),
            (">1.1 <2", "1.2.1", true),
            (">1.1    <3", "4.3.2", false),
            (">=1.1    <2    !=1.2.3", "1.2.3", false),
            (">=1.1, <2, !=1.2.3 || > 3", "4.1.2", true),
            (">=1.1, <2, !=1.2.3 || > 3", "3.1.2", false),
            (">=1.1, <2, !=1.2.3 || >= 3", "3.0.0", true),
            (">=1.1, <2, !=1.2.3 || > 3", "3.0.0", false),
            (">=1.1, <2, !=1.2.3 || > 3", "1.2.3", false),
            (">=1.1 <2 !=1.2.3", "1.2.3", false),
            (">=1.1 <2 !=1.2.3 || > 3", "4.1.2", true),
            (">=1.1 <2 !=1.2.3 || > 3", "3.1.2", false),
            (">=1.1 <2 !=1.2.3 || >= 3", "3.0.0", true),
            (">=1.1 <2 !=1.2.3 || > 3", "3.0.0", false),
            (">=1.1 <2 !=1.2.3 || > 3", "1.2.3", false),
            ("> 1.1, <     2", "1.1.1", false),
            (">   1.1, <2", "1.2.1", true),
            (">1.1, <  3", "4.3.2", false),
            (">= 1.1, <     2, !=1.2.3", "1.2.3", false),
            ("> 1.1 < 2", "1.1.1", false),
            (">1.1 < 2", "1.2.1", true),
            ("> 1.1    <3", "4.3.2", false),
            (">=1.1    < 2    != 1.2.3", "1.2.3", false),
            (">= 1.1, <2, !=1.2.3 || > 3", "4.1.2", true),
            (">= 1.1, <2, != 1.2.3 || > 3", "3.1.2", false),
            (">= 1.1, <2, != 1.2.3 || >= 3", "3.0.0", true),
            (">= 1.1, <2, !=1.2.3 || > 3", "3.0.0", false),
            (">= 1.1, <2, !=1.2.3 || > 3", "1.2.3", false),
            (">= 1.1 <2 != 1.2.3", "1.2.3", false),
            (">= 1.1 <2 != 1.2.3 || > 3", "4.1.2", true),
            (">= 1.1 <2 != 1.2.3 || > 3", "3.1.2", false),
            (">= 1.1 <2 != 1.2.3 || >= 3", "3.0.0", true),
            (">= 1.1 < 2 !=1.2.3 || > 3", "3.0.0", false),
            (">=1.1 < 2 !=1.2.3 || > 3", "1.2.3", false),
            (">= 1.0.0  <= 2.0.0-beta", "1.0.1-beta", true),
            (">= 1.0.0  <= 2.0.0-beta", "1.0.1", true),
            (">= 1.0.0  <= 2.0.0-beta", "3.0.0", false),
            (">= 1.0.0  <= 2.0.0-beta || > 3", "1.0.1-beta", true),
            (">= 1.0.0  <= 2.0.0-beta || > 3", "3.0.1-beta", false),
            (
                ">= 1.0.0  <= 2.0.0-beta != 1.0.1 || > 3",
                "1.0.1-beta",
                true,
            ),
            (
                ">= 1.0.0  <= 2.0.0-beta != 1.0.1-beta || > 3",
                "1.0.1-beta",
                false,
            ),
            (">= 1.0.0-0  <= 2.0.0", "1.0.1-beta", true),
            ("1.1 - 2", "1.1.1", true),
            ("1.5.0 - 4.5", "3.7.0", true),
            ("1.1-3", "4.3.2", false),
            ("^1.1", "1.1.1", true),
            ("^1.1", "4.3.2", false),
            ("^1.x", "1.1.1", true),
            ("^2.x", "1.1.1", false),
            ("^1.x", "2.1.1", false),
            ("^1.x", "1.1.1-beta1", false),
            ("^1.1.2-alpha", "1.2.1-beta1", true),
            ("^1.2.x-alpha", "1.1.1-beta1", false),
            ("^0.0.1", "0.0.1", true),
            ("^0.0.1", "0.3.1", false),
            ("~*", "2.1.1", true),
            ("~1", "2.1.1", false),
            ("~1", "1.3.5", true),
            ("~1", "1.4", true),
            ("~1.x", "2.1.1", false),
            ("~1.x", "1.3.5", true),
            ("~1.x", "1.4", true),
            ("~1.1", "1.1.1", true),
            ("~1.1", "1.1.1-alpha", false),
            ("~1.1-alpha", "1.1.1-beta", true),
            ("~1.1.1-beta", "1.1.1-alpha", false),
            ("~1.1.1-beta", "1.1.1", true),
            ("~1.2.3", "1.2.5", true),
            ("~1.2.3", "1.2.2", false),
            ("~1.2.3", "1.3.2", false),
            ("~1.1", "1.2.3", false),
            ("~1.3", "2.4.5", false),
            ("1.0.0 - 2.0.0 <=2.0.0", "1.5.0", true),
            ("1.0.0 - 2.0.0, <=2.0.0", "1.5.0", true),
        ];
        for (constraint, version, want) in cases {
            let c = Constraints::parse(constraint).expect(constraint);
            let v = Version::parse(version).expect(version);
            assert_eq!(c.check(&v), want, "{constraint} {version}");
        }
        for bad in ["", "1.2.3 ||", ">>1", "1.2.3.4", "foo"] {
            assert!(Constraints::parse(bad).is_none(), "{bad}");
        }
        for bad in [
            "",
            "1.2.3.4",
            "1.2-",
            "1.2.3-01",
            "1.2.3+a..b",
            "99999999999999999999",
        ] {
            assert!(Version::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(
            Version::parse("v01.2-rc.1+b"),
            Some(Version {
                major: 1,
                minor: 2,
                patch: 0,
                pre: "rc.1".into(),
                metadata: "b".into()
            })
        );
    }
}
