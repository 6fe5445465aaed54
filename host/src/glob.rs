//! Greengrass resource globs: the matching used by `accessControl` and device policies.
//!
//! Greengrass authorizes resources with `WildcardTrie.matchesStandard`: `*` matches any run of
//! characters (including `/`), everything else is literal, and `+`/`#` are *not* MQTT wildcards
//! here. `${*}`, `${?}` and `${$}` write a literal `*`, `?` and `$`. Pure logic: no I/O.

/// One piece of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// Characters that must appear verbatim.
    Literal(String),
    /// `*`: any run of characters, possibly empty.
    Star,
}

/// A compiled Greengrass resource pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
}

impl Glob {
    /// Compiles `pattern`. Every string is a valid pattern.
    pub fn new(pattern: &str) -> Self {
        let mut tokens = Vec::new();
        let mut literal = String::new();
        let mut rest = pattern;
        while let Some(c) = rest.chars().next() {
            let escaped = ["${*}", "${?}", "${$}"].iter().find(|e| rest.starts_with(**e));
            if let Some(escape) = escaped {
                literal.push_str(&escape[2..3]);
                rest = &rest[escape.len()..];
                continue;
            }
            if c == '*' {
                if !literal.is_empty() {
                    tokens.push(Token::Literal(std::mem::take(&mut literal)));
                }
                if tokens.last() != Some(&Token::Star) {
                    tokens.push(Token::Star);
                }
            } else {
                literal.push(c);
            }
            rest = &rest[c.len_utf8()..];
        }
        if !literal.is_empty() {
            tokens.push(Token::Literal(literal));
        }
        Self { tokens }
    }

    /// True when the whole of `text` matches the pattern.
    pub fn matches(&self, text: &str) -> bool {
        match_tokens(&self.tokens, text)
    }
}

/// `text` as a pattern that matches exactly `text`: `*`, `?` and `$` written as escapes (a
/// client id put into a policy by `${iot:Connection.Thing.ThingName}` must not become a
/// wildcard).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '*' | '?' | '$' => {
                out.push_str("${");
                out.push(c);
                out.push('}');
            }
            c => out.push(c),
        }
    }
    out
}

/// Greedy match with backtracking to the last star: O(len(text) × tokens) worst case, no recursion.
fn match_tokens(tokens: &[Token], text: &str) -> bool {
    let mut t = 0; // index into tokens
    let mut pos = 0; // byte offset into text
    let mut backtrack: Option<(usize, usize)> = None; // (token after star, text offset to retry from)
    loop {
        match tokens.get(t) {
            Some(Token::Star) => {
                backtrack = Some((t + 1, pos));
                t += 1;
                continue;
            }
            Some(Token::Literal(lit)) => {
                let anchored_at_end = t + 1 == tokens.len() && backtrack.is_some();
                if anchored_at_end {
                    // A trailing literal after a star must end the text.
                    if text.len() >= pos + lit.len() && text.ends_with(lit.as_str()) {
                        return true;
                    }
                } else if text[pos..].starts_with(lit.as_str()) {
                    pos += lit.len();
                    t += 1;
                    continue;
                }
            }
            None if pos == text.len() => return true,
            None => {}
        }
        // Mismatch: let the last star swallow one more character, or fail.
        let Some((after_star, from)) = backtrack else {
            return false;
        };
        let Some(c) = text[from..].chars().next() else {
            return false;
        };
        let retry = from + c.len_utf8();
        backtrack = Some((after_star, retry));
        t = after_star;
        pos = retry;
        if t == tokens.len() {
            return true; // trailing star swallows the rest
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).matches(text)
    }

    #[test]
    fn star_alone_matches_everything() {
        assert!(m("*", ""));
        assert!(m("*", "clients/a/hello/world"));
        assert!(m("**", "x"));
    }

    #[test]
    fn literal_patterns_match_only_themselves() {
        assert!(m("clients/+/hello/world", "clients/+/hello/world"));
        assert!(!m("clients/+/hello/world", "clients/MyClientDevice1/hello/world"));
        assert!(!m("a", "ab"));
        assert!(!m("ab", "a"));
        assert!(m("", ""));
        assert!(!m("", "a"));
    }

    #[test]
    fn star_matches_any_run_including_slashes() {
        assert!(m("$aws/things/MyClientDevice*/shadow", "$aws/things/MyClientDevice1/shadow"));
        assert!(m("$aws/things/MyClientDevice*/shadow", "$aws/things/MyClientDevice/shadow"));
        assert!(!m("$aws/things/MyClientDevice*/shadow", "$aws/things/Other/shadow"));
        assert!(m("factory/*/status", "factory/a/b/status"));
        assert!(m("mqtt:topic:clients/*", "mqtt:topic:clients/x/y"));
        assert!(m("*abc", "xxabc"));
        assert!(!m("*abc", "abcx"));
        assert!(m("a*b*c", "a-b-b-c"));
        assert!(!m("a*b*c", "a-c-b"));
        assert!(m("*a*", "banana"));
        assert!(m("a*a", "aa"));
        assert!(!m("a*a", "a"));
    }

    #[test]
    fn escapes_write_literal_specials() {
        assert!(m("a${*}b", "a*b"));
        assert!(!m("a${*}b", "axb"));
        assert!(m("${$}aws/*", "$aws/x"));
        assert!(m("what${?}", "what?"));
        assert!(m("${", "${"));
    }

    #[test]
    fn hostile_inputs_stay_linear_enough_and_unicode_safe() {
        let text = "a".repeat(10_000);
        assert!(!m("*a*a*a*a*a*b", &text));
        assert!(m("*ü*", "xxüyy"));
        assert!(!m("ü", "u"));
        assert!(m("*", "日本語"));
        assert!(m("日*語", "日本語"));
    }
}
