//! npm-style version ranges, as Greengrass recipes write `VersionRequirement`.
//!
//! Greengrass uses a port of node-semver, so `>=2.2.0 <2.5.0` (space = AND), `^1.0.0`, `~2.0.0`,
//! `1.x`, `*`, `1.2.3 - 1.4.0` and `||` alternatives all mean what npm says. Each form is
//! desugared into comparator sets; a version matches when every comparator of some set holds.
//! A pre-release version only matches a set that names the same `major.minor.patch` with a
//! pre-release (npm's rule). Pure logic: no I/O.

use std::fmt;

use semver::Version;
use thiserror::Error;

/// A range that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{range:?} is not a version range: {problem} (examples: ^2.6.0, >=2.2.0 <2.5.0, ~1.2, 1.x, 1.0.0 - 1.4.0)")]
pub struct RangeError {
    /// The text as written.
    pub range: String,
    /// What is wrong.
    pub problem: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Comparator {
    op: Op,
    version: Version,
}

impl Comparator {
    fn holds(&self, v: &Version) -> bool {
        match self.op {
            Op::Lt => v < &self.version,
            Op::Le => v <= &self.version,
            Op::Gt => v > &self.version,
            Op::Ge => v >= &self.version,
            Op::Eq => v == &self.version,
        }
    }
}

/// A parsed npm version range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRange {
    text: String,
    sets: Vec<Vec<Comparator>>,
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A possibly partial version: `1`, `1.2`, `1.2.3-beta.1`, with `x`/`*` wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Partial {
    major: Option<u64>,
    minor: Option<u64>,
    patch: Option<u64>,
    pre: semver::Prerelease,
}

fn v(major: u64, minor: u64, patch: u64) -> Version {
    Version::new(major, minor, patch)
}

/// `major.minor.patch-0`: the lowest version of that triple, below every pre-release of it.
fn floor(major: u64, minor: u64, patch: u64) -> Version {
    let mut version = v(major, minor, patch);
    version.pre = semver::Prerelease::new("0").unwrap_or_default();
    version
}

fn parse_partial(text: &str) -> Result<Partial, String> {
    let text = text.trim_start_matches(['v', '=']);
    let (core, pre) = match text.split_once('-') {
        Some((_, "")) => return Err(format!("{text:?} has an empty pre-release")),
        Some((core, rest)) => (core, rest.split('+').next().unwrap_or("")),
        None => (text.split('+').next().unwrap_or(""), ""),
    };
    let pre = if pre.is_empty() {
        semver::Prerelease::EMPTY
    } else {
        semver::Prerelease::new(pre).map_err(|e| format!("bad pre-release {pre:?}: {e}"))?
    };
    let mut parts = core.split('.');
    let mut next = |name: &str| -> Result<Option<u64>, String> {
        match parts.next() {
            None | Some("x" | "X" | "*") => Ok(None),
            Some(n) if n.len() > 1 && n.starts_with('0') => Err(format!("{name} {n:?} has a leading zero")),
            Some(n) => n.parse::<u64>().map(Some).map_err(|_| format!("{name} {n:?} is not a number")),
        }
    };
    let major = next("major")?;
    let minor = next("minor")?;
    let patch = next("patch")?;
    if parts.next().is_some() {
        return Err(format!("{core:?} has more than three parts"));
    }
    if core.is_empty() {
        return Err("empty version".to_owned());
    }
    if (major.is_none() && (minor.is_some() || patch.is_some())) || (minor.is_none() && patch.is_some()) {
        return Err(format!("{core:?} has a number after a wildcard"));
    }
    Ok(Partial { major, minor, patch, pre })
}

impl Partial {
    fn full(&self) -> Option<Version> {
        Some(Version { pre: self.pre.clone(), ..v(self.major?, self.minor?, self.patch?) })
    }

    fn lower(&self) -> Version {
        self.full().unwrap_or_else(|| v(self.major.unwrap_or(0), self.minor.unwrap_or(0), self.patch.unwrap_or(0)))
    }

    /// Exclusive upper bound of an X-range (`1.x` → `2.0.0-0`), or `None` for `*`.
    fn x_upper(&self) -> Option<Version> {
        match (self.major, self.minor, self.patch) {
            (None, _, _) => None,
            (Some(m), None, _) => Some(floor(m + 1, 0, 0)),
            (Some(m), Some(n), None) => Some(floor(m, n + 1, 0)),
            (Some(_), Some(_), Some(_)) => None,
        }
    }
}

fn cmp(op: Op, version: Version) -> Comparator {
    Comparator { op, version }
}

fn desugar_simple(token: &str) -> Result<Vec<Comparator>, String> {
    let (op, rest) = ["<=", ">=", "<", ">", "=", "~>", "~", "^"]
        .iter()
        .find_map(|op| token.strip_prefix(op).map(|rest| (*op, rest)))
        .unwrap_or(("", token));
    let p = parse_partial(rest)?;
    let lower = p.lower();
    Ok(match op {
        "^" => {
            let upper = match (p.major, p.minor, p.patch) {
                (None, _, _) => return Ok(vec![cmp(Op::Ge, v(0, 0, 0))]),
                (Some(0), None, _) => floor(1, 0, 0),
                (Some(0), Some(0), None) => floor(0, 1, 0),
                (Some(0), Some(0), Some(patch)) => floor(0, 0, patch + 1),
                (Some(0), Some(minor), _) => floor(0, minor + 1, 0),
                (Some(major), _, _) => floor(major + 1, 0, 0),
            };
            vec![cmp(Op::Ge, lower), cmp(Op::Lt, upper)]
        }
        "~" | "~>" => {
            let upper = match (p.major, p.minor) {
                (None, _) => return Ok(vec![cmp(Op::Ge, v(0, 0, 0))]),
                (Some(major), None) => floor(major + 1, 0, 0),
                (Some(major), Some(minor)) => floor(major, minor + 1, 0),
            };
            vec![cmp(Op::Ge, lower), cmp(Op::Lt, upper)]
        }
        "" | "=" => match (p.full(), p.x_upper()) {
            (Some(exact), _) => vec![cmp(Op::Eq, exact)],
            (None, Some(upper)) => vec![cmp(Op::Ge, lower), cmp(Op::Lt, upper)],
            (None, None) => vec![cmp(Op::Ge, v(0, 0, 0))],
        },
        ">=" => vec![cmp(Op::Ge, lower)],
        "<" => match p.full() {
            Some(exact) => vec![cmp(Op::Lt, exact)],
            None if p.major.is_none() => vec![cmp(Op::Lt, floor(0, 0, 0))],
            None => vec![cmp(Op::Lt, floor(lower.major, lower.minor, lower.patch))],
        },
        ">" => match (p.full(), p.x_upper()) {
            (Some(exact), _) => vec![cmp(Op::Gt, exact)],
            (None, Some(upper)) => vec![cmp(Op::Ge, Version { pre: semver::Prerelease::EMPTY, ..upper })],
            (None, None) => vec![cmp(Op::Lt, floor(0, 0, 0))],
        },
        "<=" => match (p.full(), p.x_upper()) {
            (Some(exact), _) => vec![cmp(Op::Le, exact)],
            (None, Some(upper)) => vec![cmp(Op::Lt, upper)],
            (None, None) => vec![cmp(Op::Ge, v(0, 0, 0))],
        },
        _ => return Err(format!("unknown operator {op:?}")),
    })
}

fn desugar_hyphen(low: &str, high: &str) -> Result<Vec<Comparator>, String> {
    let low = parse_partial(low)?;
    let high = parse_partial(high)?;
    let mut out = vec![cmp(Op::Ge, low.lower())];
    match (high.full(), high.x_upper()) {
        (Some(exact), _) => out.push(cmp(Op::Le, exact)),
        (None, Some(upper)) => out.push(cmp(Op::Lt, upper)),
        (None, None) => {}
    }
    Ok(out)
}

/// Joins operators to their versions (`>= 1.2` → `>=1.2`) and splits on whitespace.
fn tokens(set: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut pending_op = String::new();
    for word in set.split_whitespace() {
        if !word.is_empty() && word.chars().all(|c| matches!(c, '<' | '>' | '=' | '~' | '^')) {
            pending_op.push_str(word);
            continue;
        }
        out.push(format!("{pending_op}{word}"));
        pending_op.clear();
    }
    if !pending_op.is_empty() {
        out.push(pending_op);
    }
    out
}

impl VersionRange {
    /// Parses an npm range.
    pub fn parse(text: &str) -> Result<Self, RangeError> {
        let err = |problem: String| RangeError { range: text.to_owned(), problem };
        let mut sets = Vec::new();
        for alternative in text.split("||") {
            let words = tokens(alternative);
            let set = match words.as_slice() {
                [] => vec![cmp(Op::Ge, v(0, 0, 0))],
                [low, dash, high] if dash == "-" => desugar_hyphen(low, high).map_err(&err)?,
                words => {
                    let mut set = Vec::new();
                    for word in words {
                        if word == "-" {
                            return Err(err("a hyphen range needs a version on each side".to_owned()));
                        }
                        set.extend(desugar_simple(word).map_err(&err)?);
                    }
                    set
                }
            };
            sets.push(set);
        }
        Ok(Self { text: text.trim().to_owned(), sets })
    }

    /// Whether `version` satisfies the range.
    pub fn matches(&self, version: &Version) -> bool {
        self.sets.iter().any(|set| {
            set.iter().all(|c| c.holds(version))
                && (version.pre.is_empty()
                    || set.iter().any(|c| {
                        !c.version.pre.is_empty()
                            && c.version.pre.as_str() != "0"
                            && (c.version.major, c.version.minor, c.version.patch)
                                == (version.major, version.minor, version.patch)
                    }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(range: &str, version: &str) -> bool {
        VersionRange::parse(range).unwrap().matches(&Version::parse(version).unwrap())
    }

    #[test]
    fn tutorial_requirements_accept_turfs_builtins() {
        assert!(ok("^2.6.0", "2.14.0"));
        assert!(ok("^2.2.0", "2.3.2"));
        assert!(!ok("^2.6.0", "2.5.9"));
        assert!(!ok("^2.6.0", "3.0.0"));
    }

    #[test]
    fn caret_and_tilde_follow_npm() {
        let table = [
            ("^1.2.3", "1.9.9", true),
            ("^1.2.3", "2.0.0", false),
            ("^0.2.3", "0.2.9", true),
            ("^0.2.3", "0.3.0", false),
            ("^0.0.3", "0.0.3", true),
            ("^0.0.3", "0.0.4", false),
            ("^1.2.x", "1.3.0", true),
            ("^0.x", "0.9.0", true),
            ("^0.x", "1.0.0", false),
            ("~1.2.3", "1.2.9", true),
            ("~1.2.3", "1.3.0", false),
            ("~1.2", "1.2.0", true),
            ("~1", "1.9.0", true),
            ("~1", "2.0.0", false),
            ("~>1.2", "1.2.5", true),
        ];
        for (range, version, want) in table {
            assert_eq!(ok(range, version), want, "{range} vs {version}");
        }
    }

    #[test]
    fn x_ranges_comparators_hyphens_and_alternatives() {
        let table = [
            ("*", "0.0.1", true),
            ("", "5.0.0", true),
            ("1.x", "1.5.0", true),
            ("1.x", "2.0.0", false),
            ("1.2.X", "1.2.7", true),
            ("1", "1.0.1", true),
            ("1.2.3", "1.2.3", true),
            ("=1.2.3", "1.2.4", false),
            (">=2.2.0 <2.5.0", "2.4.9", true),
            (">=2.2.0 <2.5.0", "2.5.0", false),
            (">= 2.2.0 < 2.5.0", "2.3.0", true),
            (">1.2", "1.2.9", false),
            (">1.2", "1.3.0", true),
            ("<=1.2", "1.2.9", true),
            ("<=1.2", "1.3.0", false),
            ("<1", "0.9.9", true),
            ("<1", "1.0.0", false),
            ("1.2.3 - 1.4.0", "1.4.0", true),
            ("1.2.3 - 1.4.0", "1.4.1", false),
            ("1.2 - 1.4", "1.4.9", true),
            ("1.2 - 1.4", "1.5.0", false),
            ("1.2 - 1.4", "1.1.9", false),
            ("1.x || >=2.5.0", "2.6.0", true),
            ("1.x || >=2.5.0", "2.4.0", false),
        ];
        for (range, version, want) in table {
            assert_eq!(ok(range, version), want, "{range:?} vs {version}");
        }
    }

    #[test]
    fn prereleases_match_only_when_the_range_names_their_triple() {
        assert!(!ok("^1.0.0", "1.1.0-beta.1"));
        assert!(ok(">=1.1.0-alpha <1.2.0", "1.1.0-beta.1"));
        assert!(!ok(">=1.1.0-alpha <1.2.0", "1.1.1-beta.1"));
        assert!(!ok("*", "1.0.0-rc.1"));
    }

    #[test]
    fn garbage_is_rejected_with_examples() {
        for bad in ["^^1", "a.b.c", "1.2.3.4", "01.2.3", ">=", "1.x.3", "1 - ", "- 1", "1.2.3-", "^1.2.3-!!"] {
            let err = VersionRange::parse(bad).unwrap_err();
            assert!(err.to_string().contains("examples"), "{bad}: {err}");
        }
    }
}
