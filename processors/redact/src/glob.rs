//! Simple globs for field paths (`data.annotations.*`, `*.actor`) and secret-like key names
//! (`*token*`, `*_key`).
//!
//! Syntax: `*` matches any run of characters, dots and brackets included (so
//! `data.annotations.*` also matches an annotation named `app.kubernetes.io/name`); `?`
//! matches one character; everything else matches itself. There are no character classes:
//! `[` and `]` are literal, as in `data.inputs[0].name`.
//!
//! Invariant: matching never allocates and never panics; it runs in O(pattern × text) at worst.

/// A compiled glob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Glob {
    pattern: Box<[u8]>,
    /// ASCII case-insensitive (key names) or exact (paths).
    case_insensitive: bool,
    /// The pattern's form, for the common ones matched without the general algorithm.
    shape: Shape,
}

/// `lit`, `lit*`, `*lit` and `*lit*` with `lit` free of wildcards (every default secret-key
/// pattern is one of these) are matched as a comparison, a prefix, a suffix or a substring
/// test; anything else by [`wildcard`]. Both give the same answer (a property test).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Exact,
    Prefix,
    Suffix,
    Contains,
    General,
}

impl Shape {
    fn of(pattern: &[u8]) -> Shape {
        let (lead, rest) = match pattern.split_first() {
            Some((b'*', rest)) => (true, rest),
            _ => (false, pattern),
        };
        let (trail, lit) = match rest.split_last() {
            Some((b'*', lit)) => (true, lit),
            _ => (false, rest),
        };
        if lit.is_empty() || lit.iter().any(|b| matches!(b, b'*' | b'?')) {
            return Shape::General;
        }
        match (lead, trail) {
            (false, false) => Shape::Exact,
            (false, true) => Shape::Prefix,
            (true, false) => Shape::Suffix,
            (true, true) => Shape::Contains,
        }
    }

    /// The literal between the leading and trailing stars.
    fn literal(self, pattern: &[u8]) -> &[u8] {
        let lo = usize::from(matches!(self, Shape::Suffix | Shape::Contains));
        let hi = pattern.len() - usize::from(matches!(self, Shape::Prefix | Shape::Contains));
        pattern.get(lo..hi).unwrap_or_default()
    }
}

/// Why a glob was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GlobError {
    Empty,
    Whitespace,
    DoubleStar,
    EmptySegment,
    BadIndex,
}

impl GlobError {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            GlobError::Empty => "is empty",
            GlobError::Whitespace => "contains whitespace or a control character",
            GlobError::DoubleStar => {
                "contains `**`, which is not supported: `*` already matches across dots"
            }
            GlobError::EmptySegment => "has an empty segment (starts or ends with `.`, or `..`)",
            GlobError::BadIndex => {
                "has a bracket that is not an array index: write `[0]`, `[12]` or `[*]`"
            }
        }
    }
}

impl Glob {
    /// A field-path glob: dotted segments, array indexes in brackets.
    pub(crate) fn path(pattern: &str) -> Result<Glob, GlobError> {
        check_common(pattern)?;
        if pattern.starts_with('.') || pattern.ends_with('.') || pattern.contains("..") {
            return Err(GlobError::EmptySegment);
        }
        check_brackets(pattern)?;
        Ok(Glob {
            pattern: pattern.as_bytes().into(),
            case_insensitive: false,
            shape: Shape::of(pattern.as_bytes()),
        })
    }

    /// A key-name glob, matched without regard to ASCII case.
    pub(crate) fn key(pattern: &str) -> Result<Glob, GlobError> {
        check_common(pattern)?;
        let pattern = pattern.to_ascii_lowercase().into_bytes();
        Ok(Glob {
            shape: Shape::of(&pattern),
            pattern: pattern.into(),
            case_insensitive: true,
        })
    }

    /// The longest literal run of the pattern (what any match must contain).
    pub(crate) fn longest_literal(&self) -> &[u8] {
        self.pattern
            .split(|b| *b == b'*' || *b == b'?')
            .max_by_key(|s| s.len())
            .unwrap_or_default()
    }

    /// Whether the concatenation of `parts` matches.
    pub(crate) fn matches_parts(&self, parts: &[&str]) -> bool {
        let text = Parts::new(parts);
        wildcard(&self.pattern, &text, self.case_insensitive)
    }

    /// Whether `text` matches.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let t = text.as_bytes();
        let lit = self.shape.literal(&self.pattern);
        let eq = |a: &[u8]| {
            if self.case_insensitive {
                a.eq_ignore_ascii_case(lit)
            } else {
                a == lit
            }
        };
        match self.shape {
            Shape::Exact => eq(t),
            Shape::Prefix => t.get(..lit.len()).is_some_and(eq),
            Shape::Suffix => t
                .len()
                .checked_sub(lit.len())
                .and_then(|s| t.get(s..))
                .is_some_and(eq),
            Shape::Contains => t.windows(lit.len()).any(eq),
            Shape::General => self.matches_parts(&[text]),
        }
    }

    /// Whether the pattern holds a wildcard.
    pub(crate) fn has_wildcard(&self) -> bool {
        self.pattern.iter().any(|b| *b == b'*' || *b == b'?')
    }
}

fn check_common(pattern: &str) -> Result<(), GlobError> {
    if pattern.is_empty() {
        return Err(GlobError::Empty);
    }
    if pattern.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(GlobError::Whitespace);
    }
    if pattern.contains("**") {
        return Err(GlobError::DoubleStar);
    }
    Ok(())
}

fn check_brackets(pattern: &str) -> Result<(), GlobError> {
    let mut rest = pattern;
    while let Some(open) = rest.find(['[', ']']) {
        let after = rest.get(open..).unwrap_or_default();
        if after.starts_with(']') {
            return Err(GlobError::BadIndex);
        }
        let inner_and_rest = after.get(1..).unwrap_or_default();
        let Some(close) = inner_and_rest.find(']') else {
            return Err(GlobError::BadIndex);
        };
        let inner = inner_and_rest.get(..close).unwrap_or_default();
        let ok = inner == "*" || (!inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return Err(GlobError::BadIndex);
        }
        rest = inner_and_rest.get(close + 1..).unwrap_or_default();
    }
    Ok(())
}

/// Up to a few string slices seen as one byte string, without copying them.
struct Parts<'a> {
    parts: &'a [&'a str],
    len: usize,
}

impl<'a> Parts<'a> {
    fn new(parts: &'a [&'a str]) -> Self {
        Self {
            parts,
            len: parts.iter().map(|p| p.len()).sum(),
        }
    }

    fn byte(&self, mut i: usize) -> u8 {
        for p in self.parts {
            if i < p.len() {
                return p.as_bytes().get(i).copied().unwrap_or(0);
            }
            i -= p.len();
        }
        0
    }
}

/// Classic linear-time wildcard matching with one backtrack point (`*` is the only
/// variable-length token, so remembering the last star suffices).
fn wildcard(pattern: &[u8], text: &Parts<'_>, ci: bool) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len {
        let tc = text.byte(t);
        let tc = if ci { tc.to_ascii_lowercase() } else { tc };
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&pc) if pc == b'?' || pc == tc => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .unwrap_or_default()
        .iter()
        .all(|b| *b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let g = Glob::path("data.annotations.*").unwrap();
        assert!(g.matches("data.annotations.owner"));
        assert!(g.matches("data.annotations.app.kubernetes.io/name"));
        assert!(!g.matches("data.actor"));
        assert!(g.matches_parts(&["data.annotations.", "owner"]));
        let g = Glob::path("*.actor").unwrap();
        assert!(g.matches("data.actor"));
        assert!(!g.matches("data.actors"));
        let g = Glob::path("data.inputs[*].name").unwrap();
        assert!(g.matches_parts(&["data.inputs[", "12", "].name"]));
        assert!(!g.matches("data.inputs[0].namespace"));
        let g = Glob::path("subject").unwrap();
        assert!(g.matches("subject") && !g.matches("subjects") && !g.has_wildcard());
        assert!(Glob::path("data.a?tor").unwrap().matches("data.actor"));
    }

    #[test]
    fn keys_ignore_case() {
        let g = Glob::key("*_KEY").unwrap();
        assert!(g.matches("aws_secret_access_key"));
        assert!(g.matches("API_KEY"));
        assert!(!g.matches("keyring"));
        assert_eq!(Glob::key("*token*").unwrap().longest_literal(), b"token");
    }

    proptest::proptest! {
        #[test]
        fn shaped_globs_match_as_the_general_algorithm_does(
            pattern in "[*]?[a-cA-C_?.]{0,4}[*]?",
            text in "[a-cA-C_.]{0,8}",
        ) {
            for glob in [Glob::key(&pattern), Glob::path(&pattern)].into_iter().flatten() {
                let general = wildcard(&glob.pattern, &Parts::new(&[&text]), glob.case_insensitive);
                proptest::prop_assert_eq!(glob.matches(&text), general, "{:?} {:?}", glob, text);
            }
        }
    }

    #[test]
    fn shapes() {
        assert_eq!(Glob::key("*token*").unwrap().shape, Shape::Contains);
        assert_eq!(Glob::key("*_key").unwrap().shape, Shape::Suffix);
        assert_eq!(Glob::path("data.*").unwrap().shape, Shape::Prefix);
        assert_eq!(Glob::path("subject").unwrap().shape, Shape::Exact);
        assert_eq!(Glob::path("data.a?tor").unwrap().shape, Shape::General);
        assert_eq!(Glob::key("*").unwrap().shape, Shape::General);
        assert!(Glob::key("*").unwrap().matches("anything"));
        assert!(Glob::key("*_KEY").unwrap().matches("API_Key"));
        assert!(!Glob::key("*_key").unwrap().matches("_ke"));
    }

    #[test]
    fn bad_globs() {
        assert_eq!(Glob::path(""), Err(GlobError::Empty));
        assert_eq!(Glob::path("data. actor"), Err(GlobError::Whitespace));
        assert_eq!(Glob::path("data.**"), Err(GlobError::DoubleStar));
        assert_eq!(Glob::path(".data"), Err(GlobError::EmptySegment));
        assert_eq!(Glob::path("data..x"), Err(GlobError::EmptySegment));
        assert_eq!(Glob::path("data.inputs[x].name"), Err(GlobError::BadIndex));
        assert_eq!(Glob::path("data.inputs[0.name"), Err(GlobError::BadIndex));
        assert_eq!(Glob::path("data.inputs]0"), Err(GlobError::BadIndex));
        assert!(Glob::path("data.inputs[0].name").is_ok());
    }
}
