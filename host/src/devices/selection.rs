//! Device-group selection rules: `thingName: MyClientDevice* OR thingName: Sensor1`.
//!
//! The grammar is Greengrass client device auth's (`RuleExpression.jjt`): the only selector is
//! `thingName:` followed by a name made of letters, digits, `-`, `_` and escaped colons `\:`,
//! optionally with a leading and/or trailing `*` (or `*` alone); `AND` binds tighter than `OR`;
//! keywords are upper case; there are no parentheses and no `NOT`. Spaces, tabs and carriage
//! returns between tokens are ignored. Unlike Greengrass, `\:` really matches a `:`. A parse error
//! says where and what was expected. Pure logic: no I/O.

use std::fmt;

use thiserror::Error;

/// A rule that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("selection rule {rule:?}: at character {position}: expected {expected}, found {found}")]
pub struct RuleError {
    /// The rule as written.
    pub rule: String,
    /// 1-based character position of the problem.
    pub position: usize,
    /// What the grammar allows there.
    pub expected: &'static str,
    /// What was there instead.
    pub found: String,
}

/// How one `thingName:` pattern matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePattern {
    /// `*`: every thing.
    Any,
    /// `name`: exactly this name.
    Exact(String),
    /// `name*`.
    Prefix(String),
    /// `*name`.
    Suffix(String),
    /// `*name*`.
    Contains(String),
}

impl NamePattern {
    /// Whether `thing` matches.
    pub fn matches(&self, thing: &str) -> bool {
        match self {
            NamePattern::Any => true,
            NamePattern::Exact(n) => thing == n,
            NamePattern::Prefix(n) => thing.starts_with(n.as_str()),
            NamePattern::Suffix(n) => thing.ends_with(n.as_str()),
            NamePattern::Contains(n) => thing.contains(n.as_str()),
        }
    }
}

/// A parsed rule: an OR of ANDs of name patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectionRule {
    alternatives: Vec<Vec<NamePattern>>,
}

impl fmt::Display for SelectionRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} alternative(s)", self.alternatives.len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    ThingName,
    Name(NamePattern),
    Or,
    And,
}

fn describe(token: Option<&(usize, Token)>) -> String {
    match token {
        None => "the end of the rule".to_owned(),
        Some((_, Token::ThingName)) => "'thingName:'".to_owned(),
        Some((_, Token::Or)) => "'OR'".to_owned(),
        Some((_, Token::And)) => "'AND'".to_owned(),
        Some((_, Token::Name(p))) => format!("the name {p:?}"),
    }
}

/// The one selector keyword, `thingName:`.
const SELECTOR: [char; 10] = ['t', 'h', 'i', 'n', 'g', 'N', 'a', 'm', 'e', ':'];

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn tokenize(rule: &str) -> Result<Vec<(usize, Token)>, RuleError> {
    let chars: Vec<char> = rule.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if matches!(chars[i], ' ' | '\t' | '\r') {
            i += 1;
            continue;
        }
        if chars[i..].starts_with(&SELECTOR) {
            tokens.push((i, Token::ThingName));
            i += SELECTOR.len();
            continue;
        }
        let word_end = chars[i..].iter().position(|c| !c.is_ascii_alphabetic()).map(|p| i + p).unwrap_or(chars.len());
        let word: String = chars[i..word_end].iter().collect();
        let after_word = chars.get(word_end).copied();
        let keyword_boundary = after_word.is_none_or(|c| !is_name_char(c) && c != '*' && c != '\\');
        if (word == "OR" || word == "AND") && keyword_boundary {
            tokens.push((i, if word == "OR" { Token::Or } else { Token::And }));
            i = word_end;
            continue;
        }
        let (end, pattern) = name_pattern(rule, &chars, i)?;
        tokens.push((i, Token::Name(pattern)));
        i = end;
    }
    Ok(tokens)
}

/// A thing name pattern starting at `start`: `("*")? (name-char | "\:")+ ("*")? | "*"`; returns
/// where it ends.
fn name_pattern(rule: &str, chars: &[char], start: usize) -> Result<(usize, NamePattern), RuleError> {
    let err = |expected: &'static str, found: String| RuleError {
        rule: rule.to_owned(),
        position: start + 1,
        expected,
        found,
    };
    let mut i = start;
    let leading = chars[start] == '*';
    if leading {
        i += 1;
    }
    let mut name = String::new();
    while i < chars.len() {
        if is_name_char(chars[i]) {
            name.push(chars[i]);
            i += 1;
        } else if chars[i] == '\\' && chars.get(i + 1) == Some(&':') {
            name.push(':');
            i += 2;
        } else {
            break;
        }
    }
    if !leading && chars.get(i) == Some(&':') {
        return Err(err("'thingName:' (the only selector; it is case-sensitive)", format!("{name}:")));
    }
    let trailing = !name.is_empty() && chars.get(i) == Some(&'*');
    if trailing {
        i += 1;
    }
    if name.is_empty() && !leading {
        let found = match chars[start] {
            '\\' => "a backslash not followed by ':'".to_owned(),
            other => format!("{other:?}"),
        };
        return Err(err("'thingName:', 'OR', 'AND' or a thing name", found));
    }
    let pattern = match (leading, trailing) {
        (true, _) if name.is_empty() => NamePattern::Any,
        (true, true) => NamePattern::Contains(name),
        (true, false) => NamePattern::Suffix(name),
        (false, true) => NamePattern::Prefix(name),
        (false, false) => NamePattern::Exact(name),
    };
    Ok((i, pattern))
}

impl SelectionRule {
    /// Parses a rule.
    pub fn parse(rule: &str) -> Result<Self, RuleError> {
        let tokens = tokenize(rule)?;
        let end = rule.chars().count();
        let err = |at: Option<&(usize, Token)>, expected: &'static str| RuleError {
            rule: rule.to_owned(),
            position: at.map(|(p, _)| p + 1).unwrap_or(end + 1),
            expected,
            found: describe(at),
        };
        let mut alternatives = vec![Vec::new()];
        let mut iter = tokens.iter().peekable();
        loop {
            match iter.next() {
                Some((_, Token::ThingName)) => {}
                other => return Err(err(other, "'thingName:'")),
            }
            match iter.next() {
                Some((_, Token::Name(pattern))) => {
                    if let Some(current) = alternatives.last_mut() {
                        current.push(pattern.clone());
                    }
                }
                other => return Err(err(other, "a thing name after 'thingName:'")),
            }
            match iter.next() {
                None => break,
                Some((_, Token::And)) => {}
                Some((_, Token::Or)) => alternatives.push(Vec::new()),
                other => return Err(err(other, "'OR', 'AND' or the end of the rule")),
            }
        }
        Ok(Self { alternatives })
    }

    /// Whether the thing `thing` is selected.
    pub fn matches(&self, thing: &str) -> bool {
        self.alternatives.iter().any(|all| all.iter().all(|p| p.matches(thing)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selects(rule: &str, thing: &str) -> bool {
        SelectionRule::parse(rule).unwrap().matches(thing)
    }

    #[test]
    fn tutorial_rule_selects_both_prefixes() {
        let rule = "thingName: MyClientDevice* OR thingName: MyOtherClientDevice*";
        assert!(selects(rule, "MyClientDevice1"));
        assert!(selects(rule, "MyOtherClientDevice7"));
        assert!(!selects(rule, "OtherDevice"));
    }

    #[test]
    fn wildcards_and_precedence() {
        let table = [
            ("thingName: *", "anything", true),
            ("thingName:*", "", true),
            ("thingName: Sensor1", "Sensor1", true),
            ("thingName: Sensor1", "Sensor10", false),
            ("thingName: *Sensor", "RoomSensor", true),
            ("thingName: *Sensor", "Sensor2", false),
            ("thingName: *ens*", "Sensor2", true),
            // AND binds tighter: A OR (B AND C)
            ("thingName: A* OR thingName: *B AND thingName: C*", "A1", true),
            ("thingName: A* OR thingName: *B AND thingName: C*", "CxB", true),
            ("thingName: A* OR thingName: *B AND thingName: C*", "xB", false),
            ("thingName: a\\:b", "a:b", true),
            ("thingName: a\\:*", "a:z", true),
            ("\tthingName:\r x ", "x", true),
        ];
        for (rule, thing, want) in table {
            assert_eq!(selects(rule, thing), want, "{rule:?} vs {thing:?}");
        }
    }

    #[test]
    fn errors_say_where_and_what_was_expected() {
        let cases = [
            ("", 1, "'thingName:'"),
            ("   ", 4, "'thingName:'"),
            ("thingName:", 11, "a thing name after 'thingName:'"),
            ("thingName: a OR", 16, "'thingName:'"),
            ("thingName: a or thingName: b", 14, "'OR', 'AND' or the end of the rule"),
            ("thingname: a", 1, "'thingName:' (the only selector; it is case-sensitive)"),
            ("thingName: My*Device", 15, "'OR', 'AND' or the end of the rule"),
            ("(thingName: a)", 1, "'thingName:', 'OR', 'AND' or a thing name"),
            ("thingName: a\\b", 13, "'thingName:', 'OR', 'AND' or a thing name"),
            ("thingName: a AND AND thingName: b", 18, "'thingName:'"),
            ("thingName: a/b", 13, "'thingName:', 'OR', 'AND' or a thing name"),
        ];
        for (rule, position, expected) in cases {
            let e = SelectionRule::parse(rule).unwrap_err();
            assert_eq!((e.position, e.expected), (position, expected), "{rule:?}: {e}");
        }
    }

    #[test]
    fn hostile_rules_stay_bounded() {
        let long_name = "a".repeat(100_000);
        let rule = format!("thingName: {long_name}*");
        assert!(selects(&rule, &format!("{long_name}x")));
        let many = vec!["thingName: x"; 5_000].join(" OR ");
        assert!(selects(&many, "x"));
        assert!(SelectionRule::parse("thingName: ü").is_err());
        assert!(SelectionRule::parse("thingName: **").is_err());
    }
}
