//! The scanner: finds the spans of one string that detectors match.
//!
//! One string is read in two linear passes and nothing is allocated unless something is
//! found:
//! 1. an Aho-Corasick automaton over the literal prefixes and keywords (`AKIA`, `ghp_`,
//!    `glpat-`, `xoxb-`, `eyJ`, `-----BEGIN `, `AccountKey=`, the secret-like key words such
//!    as `token` or `password`, and the redactor's own outputs `hmac:` and `[REDACTED`),
//!    ASCII case-insensitive, each hit verified by its detector;
//! 2. one byte loop that only stops on bytes that can start a structured value (a digit at
//!    a word boundary, `@`, `:`, `+`, `(`, an uppercase letter at a word boundary) and tries
//!    the matching detectors there (numbers: IPv4, SSN, phone, card; e-mail; IPv6; URL
//!    credentials; international phone; IBAN).
//!
//! Findings are then merged: overlapping spans become one span reported under the most
//! specific detector ([`Detector`] declaration order). A finding that lies entirely inside
//! the redactor's own output (`hmac:<16 hex>`, `[REDACTED…]`) is discarded, which is what
//! makes redaction idempotent.
//!
//! Invariants: never panics on any input (every byte access is bounds-checked: a position
//! past either end reads as NUL, which no detector accepts); runs in time linear in the
//! input for every detector except that PEM blocks and e-mail look-backs are bounded.

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};

use crate::detector::Detector;
use crate::glob::Glob;

/// A span of the scanned string and the detector that matched it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Finding {
    pub start: usize,
    pub end: usize,
    pub detector: Detector,
}

/// What a literal hit of the automaton means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    AwsAccess,
    AwsSecretWord,
    GcpApi,
    AzureKey,
    AzureSig,
    Github,
    GithubPat,
    Gitlab,
    Slack,
    SlackHook,
    Jwt,
    Pem,
    ProtectToken,
    ProtectMask,
}

const LITERALS: &[(&str, Trigger)] = &[
    ("AKIA", Trigger::AwsAccess),
    ("ASIA", Trigger::AwsAccess),
    ("secret_access_key", Trigger::AwsSecretWord),
    ("SECRET_ACCESS_KEY", Trigger::AwsSecretWord),
    ("SecretAccessKey", Trigger::AwsSecretWord),
    ("secretaccesskey", Trigger::AwsSecretWord),
    ("aws_secret_key", Trigger::AwsSecretWord),
    ("AWS_SECRET_KEY", Trigger::AwsSecretWord),
    ("AIza", Trigger::GcpApi),
    ("AccountKey=", Trigger::AzureKey),
    ("SharedAccessKey=", Trigger::AzureKey),
    ("sig=", Trigger::AzureSig),
    ("ghp_", Trigger::Github),
    ("gho_", Trigger::Github),
    ("ghu_", Trigger::Github),
    ("ghs_", Trigger::Github),
    ("ghr_", Trigger::Github),
    ("github_pat_", Trigger::GithubPat),
    ("glpat-", Trigger::Gitlab),
    ("glptt-", Trigger::Gitlab),
    ("gldt-", Trigger::Gitlab),
    ("glrt-", Trigger::Gitlab),
    ("glcbt-", Trigger::Gitlab),
    ("glimt-", Trigger::Gitlab),
    ("GR1348941", Trigger::Gitlab),
    ("xoxb-", Trigger::Slack),
    ("xoxp-", Trigger::Slack),
    ("xoxa-", Trigger::Slack),
    ("xoxr-", Trigger::Slack),
    ("xoxs-", Trigger::Slack),
    ("xoxe-", Trigger::Slack),
    ("hooks.slack.com/services/", Trigger::SlackHook),
    ("eyJ", Trigger::Jwt),
    ("-----BEGIN ", Trigger::Pem),
    ("hmac:", Trigger::ProtectToken),
    ("[REDACTED", Trigger::ProtectMask),
];

/// What kind of secret-like key a key name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// `*pass*` keys: any value that is not a placeholder is a secret.
    Password,
    /// Other secret-like keys: only high-entropy values are.
    Generic,
}

/// Recognises secret-like key names (`*token*`, `*_key`, …) minus the excluded ones.
#[derive(Clone, Debug)]
pub(crate) struct KeyMatcher {
    patterns: Vec<Glob>,
    exclude: Vec<Glob>,
    /// The longest literal of each pattern: a key must contain one to match. None without
    /// patterns.
    words: Option<KeyWords>,
    /// The shortest of those literals: a shorter key matches no pattern.
    min_len: usize,
}

/// How the key words are searched: a pair table when they fit one (the default patterns
/// do), else an automaton.
#[derive(Clone, Debug)]
enum KeyWords {
    Table(PairTable),
    Automaton(AhoCorasick),
}

impl KeyWords {
    fn new(lits: &[&[u8]]) -> Option<KeyWords> {
        if lits.is_empty() {
            return None;
        }
        if let Some(table) = PairTable::new(lits, true) {
            return Some(KeyWords::Table(table));
        }
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(lits)
            .ok()
            .map(KeyWords::Automaton)
    }

    fn is_match(&self, key: &str) -> bool {
        match self {
            KeyWords::Table(table) => table.is_match(key.as_bytes()),
            KeyWords::Automaton(ac) => ac.is_match(key),
        }
    }
}

impl KeyMatcher {
    pub(crate) fn new(patterns: Vec<Glob>, exclude: Vec<Glob>) -> Self {
        let lits: Vec<&[u8]> = patterns.iter().map(Glob::longest_literal).collect();
        let words = KeyWords::new(&lits);
        let min_len = lits.iter().map(|l| l.len()).min().unwrap_or(0);
        Self {
            patterns,
            exclude,
            words,
            min_len,
        }
    }

    /// Whether `key` is secret-like, and how.
    pub(crate) fn kind(&self, key: &str) -> Option<KeyKind> {
        let words = self.words.as_ref()?;
        if key.len() < self.min_len || !words.is_match(key) {
            return None;
        }
        if !self.patterns.iter().any(|g| g.matches(key))
            || self.exclude.iter().any(|g| g.matches(key))
        {
            return None;
        }
        if contains_ci(key.as_bytes(), b"pass") {
            Some(KeyKind::Password)
        } else {
            Some(KeyKind::Generic)
        }
    }
}

/// Strings shorter than this are searched for [`LITERALS`] by a [`PairTable`]: the
/// automaton's SIMD search needs a longer haystack to pay for its setup, and falls back to
/// Rabin-Karp below it.
const SHORT_STRING: usize = 64;

/// Up to 64 literals of at least two bytes, found in a string by testing each pair of
/// adjacent bytes against two tables: which literals have this first byte, which have this
/// second byte (one bit per literal). Only where both admit a literal is it compared. On
/// the short strings events are made of this costs less than an automaton search.
#[derive(Clone, Debug)]
pub(crate) struct PairTable {
    first: Box<[u64; 256]>,
    second: Box<[u64; 256]>,
    literals: Vec<Box<[u8]>>,
    /// ASCII case-insensitive.
    ci: bool,
}

impl PairTable {
    /// None when there are more than 64 literals or one is shorter than two bytes.
    pub(crate) fn new<L: AsRef<[u8]>>(literals: &[L], ci: bool) -> Option<PairTable> {
        if literals.len() > 64 {
            return None;
        }
        let mut first = Box::new([0u64; 256]);
        let mut second = Box::new([0u64; 256]);
        for (k, lit) in literals.iter().enumerate() {
            let &[c0, c1, ..] = lit.as_ref() else {
                return None;
            };
            for (table, c) in [(&mut first, c0), (&mut second, c1)] {
                let cases = if ci {
                    [c.to_ascii_lowercase(), c.to_ascii_uppercase()]
                } else {
                    [c, c]
                };
                for c in cases {
                    if let Some(slot) = table.get_mut(usize::from(c)) {
                        *slot |= 1 << k;
                    }
                }
            }
        }
        Some(PairTable {
            first,
            second,
            literals: literals.iter().map(|l| l.as_ref().into()).collect(),
            ci,
        })
    }

    /// Calls `f(start, k)` for each position of `b` where literal `k` starts (the first such
    /// literal in list order), in order of `start`.
    #[inline]
    pub(crate) fn each(&self, b: &[u8], mut f: impl FnMut(usize, usize)) {
        for i in 0..b.len().saturating_sub(1) {
            let first = self.first.get(usize::from(at(b, i))).copied().unwrap_or(0);
            if first == 0 {
                continue;
            }
            let mut cands = first
                & self
                    .second
                    .get(usize::from(at(b, i + 1)))
                    .copied()
                    .unwrap_or(0);
            while cands != 0 {
                let k = cands.trailing_zeros() as usize;
                cands &= cands - 1;
                if let Some(lit) = self.literals.get(k)
                    && let Some(window) = b.get(i..i + lit.len())
                    && (if self.ci {
                        window.eq_ignore_ascii_case(lit)
                    } else {
                        window == &**lit
                    })
                {
                    f(i, k);
                    break;
                }
            }
        }
    }

    /// Whether `b` contains one of the literals.
    pub(crate) fn is_match(&self, b: &[u8]) -> bool {
        let mut found = false;
        self.each(b, |_, _| found = true);
        found
    }
}

/// The scanner for one policy: which detectors are on and which keys are secret-like.
#[derive(Clone, Debug)]
pub(crate) struct Scanner {
    ac: AhoCorasick,
    /// [`LITERALS`] for strings shorter than [`SHORT_STRING`] (always built: a test checks
    /// they fit one).
    table: Option<PairTable>,
    enabled: [bool; Detector::ALL.len()],
    keys: KeyMatcher,
}

impl Scanner {
    pub(crate) fn new(
        enabled: [bool; Detector::ALL.len()],
        keys: KeyMatcher,
    ) -> Result<Self, aho_corasick::BuildError> {
        let pats: Vec<&str> = LITERALS.iter().map(|(p, _)| *p).collect();
        // Exact case and leftmost-longest, so that the automaton can use its SIMD prefilter:
        // a string holding none of the literals is skipped at memory speed. Secret-like key
        // words (any case) are found by the byte pass at `=` / `:` instead.
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&pats)
            .or_else(|_| {
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&pats)
            })?;
        let table = PairTable::new(&pats, false);
        Ok(Self {
            ac,
            table,
            enabled,
            keys,
        })
    }

    fn on(&self, d: Detector) -> bool {
        self.enabled.get(d.index()).copied().unwrap_or(false)
    }

    /// Finds the spans of `s` to redact, sorted and non-overlapping, into `out` (cleared
    /// first). `key` is the name the value sits under (an annotation key, a JSON member
    /// name), for the secret-like-key detector.
    pub(crate) fn scan(&self, s: &str, key: Option<&str>, out: &mut Vec<Finding>) {
        out.clear();
        let mut protect: Vec<(usize, usize)> = Vec::new();
        self.literal_pass(s, out, &mut protect);
        self.byte_pass(s.as_bytes(), out);
        if self.on(Detector::SecretKeyEntropy)
            && let Some(k) = key
            && let Some(kind) = self.keys.kind(k)
        {
            let b = s.as_bytes();
            let (vs, ve) = trim_span(b, 0, b.len());
            let (vs, ve) = strip_auth_scheme(b, vs, ve);
            if value_is_secret(kind, b.get(vs..ve).unwrap_or_default()) {
                out.push(Finding {
                    start: vs,
                    end: ve,
                    detector: Detector::SecretKeyEntropy,
                });
            }
        }
        if !out.is_empty() {
            normalize(out, &protect);
        }
    }

    fn literal_pass(&self, s: &str, out: &mut Vec<Finding>, protect: &mut Vec<(usize, usize)>) {
        let b = s.as_bytes();
        self.each_literal(s, |ps, k| {
            let Some(&(lit, trigger)) = LITERALS.get(k) else {
                return;
            };
            let (lit, pe) = (lit.as_bytes(), ps + lit.len());
            let found: Option<(usize, usize, Detector)> = match trigger {
                Trigger::AwsAccess => self.aws_access(b, ps, pe, lit),
                Trigger::AwsSecretWord => self.aws_secret(b, ps, pe).or_else(|| {
                    let (ws, we) = expand_word(b, ps, pe);
                    self.secret_assignment(b, ws, we)
                }),
                Trigger::GcpApi => self.gcp_api(b, ps, pe, lit),
                Trigger::AzureKey => self.azure_key(b, pe, lit),
                Trigger::AzureSig => self.azure_sig(b, ps, pe, lit),
                Trigger::Github => {
                    self.prefixed(b, ps, pe, lit, Detector::GithubToken, is_alnum, 36)
                }
                Trigger::GithubPat => {
                    self.prefixed(b, ps, pe, lit, Detector::GithubToken, is_word, 22)
                }
                Trigger::Gitlab => {
                    self.prefixed(b, ps, pe, lit, Detector::GitlabToken, is_b64url, 20)
                }
                Trigger::Slack => {
                    self.prefixed(b, ps, pe, lit, Detector::SlackToken, is_alnum_dash, 10)
                }
                Trigger::SlackHook => self.slack_hook(b, pe),
                Trigger::Jwt => self.jwt(b, ps, lit),
                Trigger::Pem => self.pem(s, ps, pe, lit),
                Trigger::ProtectToken => {
                    if lit == b"hmac:" && token_at(b, ps) {
                        protect.push((ps, ps + TOKEN_LEN));
                    }
                    None
                }
                Trigger::ProtectMask => {
                    if lit == b"[REDACTED"
                        && let Some(end) = mask_end(b, pe)
                    {
                        protect.push((ps, end));
                    }
                    None
                }
            };
            if let Some((start, end, detector)) = found
                && end > start
            {
                out.push(Finding {
                    start,
                    end,
                    detector,
                });
            }
        });
    }

    /// Calls `f(start, k)` for every occurrence of `LITERALS[k]` in `s`, in order of `start`
    /// (at most one literal starts at any position: none is a prefix of another). Strings
    /// shorter than [`SHORT_STRING`] are searched with the pair table, longer ones with the
    /// automaton; both find the same occurrences (a property test).
    fn each_literal(&self, s: &str, mut f: impl FnMut(usize, usize)) {
        if s.len() < SHORT_STRING
            && let Some(table) = &self.table
        {
            table.each(s.as_bytes(), f);
            return;
        }
        // Leftmost-longest matches, restarting one byte after each match start: every
        // literal occurrence is seen (none of the literals is a prefix of another).
        let mut from = 0;
        while from < s.len() {
            let Some(m) = self.ac.find(Input::new(s).span(from..s.len())) else {
                break;
            };
            from = m.start() + 1;
            f(m.start(), m.pattern().as_usize());
        }
    }

    // ---- literal-prefixed detectors -------------------------------------------------

    /// `AKIA` / `ASIA` + 16 uppercase letters or digits.
    fn aws_access(&self, b: &[u8], ps: usize, pe: usize, lit: &[u8]) -> Option<Hit> {
        if !self.on(Detector::AwsAccessKey) || !(lit == b"AKIA" || lit == b"ASIA") {
            return None;
        }
        if is_alnum(before(b, ps)) {
            return None;
        }
        let e = run(b, pe, |c| c.is_ascii_uppercase() || c.is_ascii_digit());
        (e - pe == 16 && !is_alnum(at(b, e))).then_some((ps, e, Detector::AwsAccessKey))
    }

    /// `aws_secret_access_key = <40 base64 characters>`.
    fn aws_secret(&self, b: &[u8], ps: usize, pe: usize) -> Option<Hit> {
        if !self.on(Detector::AwsSecretKey) {
            return None;
        }
        let (ws, we) = expand_word(b, ps, pe);
        let (vs, ve) = assignment_value(b, ws, we)?;
        let v = b.get(vs..ve)?;
        (v.len() == 40
            && v.iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'/' || *c == b'+'))
        .then_some((vs, ve, Detector::AwsSecretKey))
    }

    /// `AIza` + 35 characters of `[A-Za-z0-9_-]`.
    fn gcp_api(&self, b: &[u8], ps: usize, pe: usize, lit: &[u8]) -> Option<Hit> {
        if !self.on(Detector::GcpApiKey) || lit != b"AIza" || is_b64url(before(b, ps)) {
            return None;
        }
        let e = run(b, pe, is_b64url);
        (e - pe == 35).then_some((ps, e, Detector::GcpApiKey))
    }

    /// `AccountKey=` / `SharedAccessKey=` + at least 20 base64 characters (the value only).
    fn azure_key(&self, b: &[u8], pe: usize, lit: &[u8]) -> Option<Hit> {
        if !self.on(Detector::AzureStorageKey)
            || !(lit == b"AccountKey=" || lit == b"SharedAccessKey=")
        {
            return None;
        }
        let e = run(b, pe, |c| {
            c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=')
        });
        (e - pe >= 20).then_some((pe, e, Detector::AzureStorageKey))
    }

    /// `?…sv=…&sig=<signature>` in a URL query (a shared access signature).
    fn azure_sig(&self, b: &[u8], ps: usize, pe: usize, lit: &[u8]) -> Option<Hit> {
        if !self.on(Detector::AzureSasToken) || lit != b"sig=" {
            return None;
        }
        if !matches!(before(b, ps), b'?' | b'&') {
            return None;
        }
        let window = b.get(ps.saturating_sub(1024)..ps)?;
        if !contains(window, b"sv=") {
            return None;
        }
        let e = run(b, pe, |c| {
            c.is_ascii_alphanumeric() || matches!(c, b'%' | b'+' | b'/' | b'=' | b'_' | b'-')
        });
        (e - pe >= 20).then_some((pe, e, Detector::AzureSasToken))
    }

    /// A lowercase vendor prefix followed by at least `min` characters of `class`.
    #[allow(clippy::too_many_arguments)]
    fn prefixed(
        &self,
        b: &[u8],
        ps: usize,
        pe: usize,
        lit: &[u8],
        d: Detector,
        class: fn(u8) -> bool,
        min: usize,
    ) -> Option<Hit> {
        if !self.on(d) || is_alnum(before(b, ps)) {
            return None;
        }
        // The automaton ignores case; vendor prefixes are exact.
        let exact = LITERALS.iter().any(|(p, _)| p.as_bytes() == lit);
        if !exact {
            return None;
        }
        let e = run(b, pe, class);
        (e - pe >= min && e - pe <= 512).then_some((ps, e, d))
    }

    /// `hooks.slack.com/services/T…/B…/…` (the path part).
    fn slack_hook(&self, b: &[u8], pe: usize) -> Option<Hit> {
        if !self.on(Detector::SlackToken) {
            return None;
        }
        let e = run(b, pe, |c| {
            c.is_ascii_alphanumeric() || matches!(c, b'/' | b'_' | b'-')
        });
        (e - pe >= 20).then_some((pe, e, Detector::SlackToken))
    }

    /// `eyJ…` `.` `…` `.` `…` (three to five base64url segments, header starting `eyJ`).
    fn jwt(&self, b: &[u8], ps: usize, lit: &[u8]) -> Option<Hit> {
        if !self.on(Detector::Jwt) || lit != b"eyJ" {
            return None;
        }
        if is_b64url(before(b, ps)) || before(b, ps) == b'.' {
            return None;
        }
        let e1 = run(b, ps, is_b64url);
        if e1 - ps < 10 || at(b, e1) != b'.' {
            return None;
        }
        let e2 = run(b, e1 + 1, is_b64url);
        if e2 - (e1 + 1) < 2 || at(b, e2) != b'.' {
            return None;
        }
        let mut e = run(b, e2 + 1, is_b64url);
        let mut segments = 3;
        while segments < 5 && at(b, e) == b'.' && is_b64url(at(b, e + 1)) {
            e = run(b, e + 1, is_b64url);
            segments += 1;
        }
        (at(b, e) != b'.' || !is_b64url(at(b, e + 1))).then_some((ps, e, Detector::Jwt))
    }

    /// `-----BEGIN … PRIVATE KEY-----` through its `-----END …-----` line, or to the end of
    /// the string when the block is cut off.
    fn pem(&self, s: &str, ps: usize, pe: usize, lit: &[u8]) -> Option<Hit> {
        if !self.on(Detector::PrivateKey) || lit != b"-----BEGIN " {
            return None;
        }
        let b = s.as_bytes();
        let head = b.get(pe..(pe + 80).min(b.len()))?;
        let label_len = find(head, b"-----")?;
        let label = head.get(..label_len)?;
        if !contains(label, b"PRIVATE KEY") {
            return None;
        }
        let body_start = pe + label_len + 5;
        let rest = b.get(body_start..).unwrap_or_default();
        let mut from = 0;
        while let Some(off) = rest.get(from..).and_then(|r| find(r, b"-----END ")) {
            let end_label = body_start + from + off + 9;
            let tail = b.get(end_label..).unwrap_or_default();
            if tail.starts_with(label)
                && tail
                    .get(label.len()..)
                    .is_some_and(|t| t.starts_with(b"-----"))
            {
                return Some((ps, end_label + label.len() + 5, Detector::PrivateKey));
            }
            from += off + 9;
        }
        Some((ps, b.len(), Detector::PrivateKey))
    }

    /// `password=…`, `"api_token": "…"`, `--secret …`: the value under a secret-like key,
    /// when it passes the entropy rules of [`value_is_secret`].
    fn secret_assignment(&self, b: &[u8], ws: usize, we: usize) -> Option<Hit> {
        if !self.on(Detector::SecretKeyEntropy) {
            return None;
        }
        // `scheme://user:password@host`: the URL-credentials detector's business.
        if before(b, ws) == b'/' && ws >= 2 && before(b, ws - 1) == b'/' {
            return None;
        }
        let word = std::str::from_utf8(b.get(ws..we)?).ok()?;
        let kind = self.keys.kind(word.trim_start_matches('-'))?;
        let (vs, ve) = assignment_value(b, ws, we)?;
        let (vs, ve) = strip_auth_scheme(b, vs, ve);
        let (vs, ve) = if ve == vs && at(b, ve) == b' ' {
            // `Authorization: Bearer <token>` where the scheme ended the unquoted value.
            let s2 = ve + 1;
            (s2, run(b, s2, |c| !is_value_stop(c)))
        } else {
            (vs, ve)
        };
        value_is_secret(kind, b.get(vs..ve)?).then_some((vs, ve, Detector::SecretKeyEntropy))
    }

    // ---- the byte pass ---------------------------------------------------------------

    fn byte_pass(&self, b: &[u8], out: &mut Vec<Finding>) {
        let n = b.len();
        let mut i = 0;
        // End of the last finding of this pass: look-backs never cross it.
        let mut floor = 0;
        // IPv6 candidates already examined end here.
        let mut v6_until = 0;
        while i < n {
            // Skip to the next byte that can start something.
            match b
                .get(i..)
                .and_then(|rest| rest.iter().position(|c| is_interesting(*c)))
            {
                Some(k) => i += k,
                None => break,
            }
            let c = at(b, i);
            let hit = match c {
                b'0'..=b'9' => {
                    let hit = if num_boundary(b, i) {
                        self.numeric(b, i)
                    } else {
                        None
                    };
                    if hit.is_none() {
                        // No digit or capital later in this word is at a word boundary.
                        i = run(b, i, is_word);
                        continue;
                    }
                    hit
                }
                b'@' => self.email(b, i, floor),
                b'=' => self.key_value(b, i, floor),
                b'-' => {
                    if at(b, i + 1) == b'-' && !is_key_char(before(b, i)) {
                        self.flag_value(b, i)
                    } else {
                        None
                    }
                }
                b':' => {
                    if at(b, i + 1) == b'/' && at(b, i + 2) == b'/' {
                        self.url_credentials(b, i)
                    } else if let Some(hit) = self.key_value(b, i, floor) {
                        Some(hit)
                    } else if i >= v6_until {
                        let (hit, until) = self.ipv6(b, i, floor);
                        v6_until = until;
                        hit
                    } else {
                        None
                    }
                }
                b'+' => self.phone_intl(b, i),
                b'(' => self.phone_paren(b, i),
                _ => {
                    let hit = if is_word(before(b, i)) {
                        None
                    } else {
                        self.iban(b, i)
                    };
                    if hit.is_none() {
                        // As for digits: nothing else in this word can start a finding.
                        i = run(b, i, is_word);
                        continue;
                    }
                    hit
                }
            };
            match hit {
                Some((start, end, detector)) if end > start => {
                    out.push(Finding {
                        start,
                        end,
                        detector,
                    });
                    floor = end;
                    i = end.max(i + 1);
                }
                _ => i += 1,
            }
        }
    }

    /// `key=value`, `key: value`, `"key": "value"` at the `=` or `:` at `i`, when the key
    /// word before it is secret-like (in any case).
    fn key_value(&self, b: &[u8], i: usize, floor: usize) -> Option<Hit> {
        if !self.on(Detector::SecretKeyEntropy) {
            return None;
        }
        let mut we = i;
        while we > floor && i - we < 4 && matches!(before(b, we), b' ' | b'\t') {
            we -= 1;
        }
        if we > floor && matches!(before(b, we), b'"' | b'\'') {
            we -= 1;
        }
        let mut ws = we;
        while ws > floor && we - ws < 128 && is_key_char(before(b, ws)) {
            ws -= 1;
        }
        if ws == we {
            return None;
        }
        self.secret_assignment(b, ws, we)
    }

    /// `--password value` / `--token=value` at the `--` at `i`.
    fn flag_value(&self, b: &[u8], i: usize) -> Option<Hit> {
        if !self.on(Detector::SecretKeyEntropy) {
            return None;
        }
        let we = run(b, i, is_key_char);
        if we - i > 128 || matches!(at(b, we), b'=' | b':') {
            // `--key=value` is handled at its `=`.
            return None;
        }
        self.secret_assignment(b, i, we)
    }

    /// A run of digit groups starting at a word boundary: IPv4, US SSN, NANP phone number or
    /// payment card.
    fn numeric(&self, b: &[u8], i: usize) -> Option<Hit> {
        // A first digit run that runs into a letter or `_` (hex identifiers, `23T10`) is one
        // group that does not end the number: every detector below would refuse it.
        if is_word(at(b, run(b, i, |c| c.is_ascii_digit()))) {
            return None;
        }
        let g = Groups::read(b, i);
        if self.on(Detector::Ipv4)
            && g.sep == b'.'
            && g.count == 4
            && g.ends_ok(b, 4)
            && ipv4(b, &g)
        {
            return Some((i, g.end(4), Detector::Ipv4));
        }
        if self.on(Detector::UsSsn)
            && g.sep == b'-'
            && g.count == 3
            && g.ends_ok(b, 3)
            && g.lens() == [3, 2, 4]
            && ssn(b, &g)
        {
            return Some((i, g.end(3), Detector::UsSsn));
        }
        if self.on(Detector::Phone) && matches!(g.sep, b'-' | b'.' | b' ') {
            for k in [3, 4] {
                if k <= g.count && g.ends_ok(b, k) && nanp(b, &g, k) {
                    return Some((i, g.end(k), Detector::Phone));
                }
            }
        }
        if self.on(Detector::PaymentCard) && matches!(g.sep, 0 | b' ' | b'-') {
            for k in (1..=g.count).rev() {
                if g.ends_ok(b, k) && card(b, &g, k) {
                    return Some((i, g.end(k), Detector::PaymentCard));
                }
            }
        }
        None
    }

    /// `local@domain.tld` around the `@` at `a`.
    fn email(&self, b: &[u8], a: usize, floor: usize) -> Option<Hit> {
        if !self.on(Detector::Email) {
            return None;
        }
        let mut s0 = a;
        while s0 > floor && a - s0 < 65 && is_email_local(before(b, s0)) {
            s0 -= 1;
        }
        while s0 < a && at(b, s0) == b'.' {
            s0 += 1;
        }
        if s0 == a || a - s0 > 64 || before(b, a) == b'.' || is_email_local(before(b, s0)) {
            return None;
        }
        // `https://user@host`: a URL user name, not an address.
        if before(b, s0) == b'/' && s0 >= 2 && before(b, s0 - 1) == b'/' {
            return None;
        }
        let mut j = a + 1;
        let mut labels = 0;
        let mut last;
        loop {
            let ls = j;
            j = run(b, j, |c| c.is_ascii_alphanumeric() || c == b'-');
            if j == ls || at(b, ls) == b'-' || before(b, j) == b'-' || j - a > 254 {
                return None;
            }
            labels += 1;
            last = (ls, j);
            if at(b, j) == b'.' && is_alnum(at(b, j + 1)) {
                j += 1;
            } else {
                break;
            }
        }
        let tld = b.get(last.0..last.1)?;
        if labels < 2 || tld.len() < 2 || !tld.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        // `git@github.com:org/repo.git` (scp-like git remote), `user@host:path`.
        if at(b, j) == b':' && (is_alnum(at(b, j + 1)) || matches!(at(b, j + 1), b'/' | b'~')) {
            return None;
        }
        if at(b, j) == b'@' {
            return None;
        }
        Some((s0, j, Detector::Email))
    }

    /// `scheme://user:password@host`: the user-info part, when it holds a password.
    fn url_credentials(&self, b: &[u8], colon: usize) -> Option<Hit> {
        if !self.on(Detector::UrlCredentials) {
            return None;
        }
        let mut s0 = colon;
        while s0 > 0 && is_scheme(before(b, s0)) {
            s0 -= 1;
        }
        if s0 == colon || !at(b, s0).is_ascii_alphabetic() || is_word(before(b, s0)) {
            return None;
        }
        let us = colon + 3;
        let ae = run(b, us, |c| {
            !(c.is_ascii_whitespace()
                || c.is_ascii_control()
                || matches!(
                    c,
                    b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>' | b'\\' | b'`'
                ))
        });
        let authority = b.get(us..ae)?;
        let at_sign = authority.iter().rposition(|c| *c == b'@')?;
        let userinfo = authority.get(..at_sign)?;
        let colon_in = userinfo.iter().position(|c| *c == b':')?;
        if colon_in + 1 >= userinfo.len() {
            return None;
        }
        Some((us, us + at_sign, Detector::UrlCredentials))
    }

    /// An IPv6 address around the `:` at `i`. Also returns where the candidate ended, so
    /// that its other colons are not tried again.
    fn ipv6(&self, b: &[u8], i: usize, floor: usize) -> (Option<Hit>, usize) {
        if !self.on(Detector::Ipv6) {
            return (None, i + 1);
        }
        let mut st = i;
        while st > floor && i - st < 4 && at(b, st.wrapping_sub(1)).is_ascii_hexdigit() {
            st -= 1;
        }
        let p = before(b, st);
        if is_word(p) || p == b'.' || (p == b':' && st != i) {
            return (None, i + 1);
        }
        let mut e = run(b, i, |c| c.is_ascii_hexdigit() || c == b':' || c == b'.');
        if e - st > 45 {
            return (None, e);
        }
        let until = e;
        while e > i && at(b, e - 1) == b'.' {
            e -= 1;
        }
        if e > i + 1 && at(b, e - 1) == b':' && at(b, e - 2) != b':' {
            e -= 1;
        }
        if is_word(at(b, e)) {
            return (None, until);
        }
        let Some(cand) = b.get(st..e) else {
            return (None, until);
        };
        if cand.iter().filter(|c| **c == b':').count() < 3 {
            return (None, until);
        }
        let Ok(text) = std::str::from_utf8(cand) else {
            return (None, until);
        };
        match text.parse::<std::net::Ipv6Addr>() {
            Ok(ip) if !ip.is_loopback() && !ip.is_unspecified() => {
                (Some((st, e, Detector::Ipv6)), until)
            }
            _ => (None, until),
        }
    }

    /// `+` country code and number: 8 to 15 digits with single separators.
    fn phone_intl(&self, b: &[u8], i: usize) -> Option<Hit> {
        if !self.on(Detector::Phone) || is_word(before(b, i)) || before(b, i) == b'+' {
            return None;
        }
        if !matches!(at(b, i + 1), b'1'..=b'9') {
            return None;
        }
        let mut j = i + 1;
        let mut digits = 0;
        let mut best = None;
        loop {
            let ds = j;
            j = run(b, j, |c| c.is_ascii_digit());
            digits += j - ds;
            if digits > 15 {
                break;
            }
            if digits >= 8 && !is_word(at(b, j)) {
                best = Some(j);
            }
            // up to two separators between groups: `) `, ` (`, `-`, `.`, ` `
            let mut k = j;
            let mut seps = 0;
            while seps < 2 && matches!(at(b, k), b' ' | b'-' | b'.' | b'(' | b')') {
                k += 1;
                seps += 1;
            }
            if seps == 0 || !at(b, k).is_ascii_digit() {
                break;
            }
            j = k;
        }
        let end = best?;
        if matches!(at(b, end), b'.' | b'-' | b':') && at(b, end + 1).is_ascii_digit() {
            return None;
        }
        Some((i, end, Detector::Phone))
    }

    /// `(415) 555-2671`.
    fn phone_paren(&self, b: &[u8], i: usize) -> Option<Hit> {
        if !self.on(Detector::Phone) || is_word(before(b, i)) {
            return None;
        }
        let area = i + 1;
        if !(matches!(at(b, area), b'2'..=b'9') && digits_at(b, area, 3) && at(b, area + 3) == b')')
        {
            return None;
        }
        let mut j = area + 4;
        if at(b, j) == b' ' {
            j += 1;
        }
        if !(matches!(at(b, j), b'2'..=b'9') && digits_at(b, j, 3)) {
            return None;
        }
        j += 3;
        if !matches!(at(b, j), b'-' | b'.' | b' ') || !digits_at(b, j + 1, 4) {
            return None;
        }
        let e = j + 5;
        (!is_word(at(b, e)) && !number_continues(b, e)).then_some((i, e, Detector::Phone))
    }

    /// An IBAN (country code, check digits, BBAN of the country's length; compact or in
    /// groups of four) whose mod-97 checksum is 1.
    fn iban(&self, b: &[u8], i: usize) -> Option<Hit> {
        if !self.on(Detector::Iban) {
            return None;
        }
        if !(at(b, i + 1).is_ascii_uppercase()
            && at(b, i + 2).is_ascii_digit()
            && at(b, i + 3).is_ascii_digit())
        {
            return None;
        }
        let country = [at(b, i), at(b, i + 1)];
        let len = IBAN_LENGTHS
            .iter()
            .find(|(c, _)| c.as_bytes() == country)
            .map(|(_, l)| usize::from(*l))?;
        let mut chars = [0u8; 34];
        let mut n = 0;
        let mut j = i;
        while n < len {
            let c = at(b, j);
            if c.is_ascii_uppercase() || c.is_ascii_digit() {
                *chars.get_mut(n)? = c;
                n += 1;
                j += 1;
            } else if c == b' ' && n % 4 == 0 && n > 0 && at(b, j + 1).is_ascii_alphanumeric() {
                j += 1;
            } else {
                return None;
            }
        }
        if is_word(at(b, j)) {
            return None;
        }
        // Move the first four characters to the end, letters as 10..35, mod 97.
        let mut rem: u32 = 0;
        for &c in chars.get(4..len)?.iter().chain(chars.get(..4)?) {
            let v = if c.is_ascii_digit() {
                u32::from(c - b'0')
            } else {
                u32::from(c - b'A') + 10
            };
            rem = if v >= 10 {
                (rem * 100 + v) % 97
            } else {
                (rem * 10 + v) % 97
            };
        }
        (rem == 1).then_some((i, j, Detector::Iban))
    }
}

type Hit = (usize, usize, Detector);

/// Sorts findings, drops those entirely inside the redactor's own output, and merges
/// overlapping ones into one span under the most specific detector.
fn normalize(out: &mut Vec<Finding>, protect: &[(usize, usize)]) {
    out.retain(|f| {
        !protect
            .iter()
            .any(|(ps, pe)| *ps <= f.start && f.end <= *pe)
    });
    out.sort_unstable_by_key(|f| (f.start, f.detector));
    let mut merged: usize = 0;
    for k in 0..out.len() {
        let Some(&f) = out.get(k) else { break };
        if merged > 0
            && let Some(last) = out.get_mut(merged - 1)
            && f.start < last.end
        {
            last.end = last.end.max(f.end);
            last.detector = last.detector.min(f.detector);
            continue;
        }
        if let Some(slot) = out.get_mut(merged) {
            *slot = f;
        }
        merged += 1;
    }
    out.truncate(merged);
}

// ---- digit groups ---------------------------------------------------------------------

const MAX_GROUPS: usize = 8;

/// Runs of digits separated by one repeated separator (`-`, ` ` or `.`).
struct Groups {
    spans: [(usize, usize); MAX_GROUPS],
    count: usize,
    sep: u8,
    /// More groups followed than were kept.
    overflow: bool,
}

impl Groups {
    fn read(b: &[u8], i: usize) -> Groups {
        let mut g = Groups {
            spans: [(0, 0); MAX_GROUPS],
            count: 0,
            sep: 0,
            overflow: false,
        };
        let mut j = i;
        loop {
            let st = j;
            j = run(b, j, |c| c.is_ascii_digit());
            match g.spans.get_mut(g.count) {
                Some(slot) => *slot = (st, j),
                None => {
                    g.overflow = true;
                    break;
                }
            }
            g.count += 1;
            let c = at(b, j);
            if matches!(c, b'-' | b' ' | b'.')
                && (g.sep == 0 || g.sep == c)
                && at(b, j + 1).is_ascii_digit()
            {
                g.sep = c;
                j += 1;
            } else {
                break;
            }
        }
        g
    }

    fn end(&self, k: usize) -> usize {
        self.spans.get(k.wrapping_sub(1)).map_or(0, |s| s.1)
    }

    fn len(&self, k: usize) -> usize {
        self.spans.get(k).map_or(0, |s| s.1 - s.0)
    }

    fn lens(&self) -> [usize; 3] {
        [self.len(0), self.len(1), self.len(2)]
    }

    /// Whether the first `k` groups can stand alone: what follows them is not part of the
    /// same number. A shorter prefix is only taken for space-separated groups.
    fn ends_ok(&self, b: &[u8], k: usize) -> bool {
        if k == 0 || k > self.count {
            return false;
        }
        if k < self.count || self.overflow {
            return self.sep == b' ';
        }
        let e = self.end(k);
        let c = at(b, e);
        !is_word(c) && !number_continues(b, e)
    }

    /// The digits of the first `k` groups, in order.
    fn digits<'b>(&self, b: &'b [u8], k: usize) -> impl Iterator<Item = u8> + 'b {
        let spans = self.spans;
        spans
            .into_iter()
            .take(k)
            .flat_map(move |(s, e)| b.get(s..e).unwrap_or_default().iter().map(|c| c - b'0'))
    }

    fn value(&self, b: &[u8], k: usize) -> u32 {
        self.spans
            .get(k)
            .and_then(|(s, e)| b.get(*s..*e))
            .unwrap_or_default()
            .iter()
            .fold(0u32, |acc, c| {
                acc.saturating_mul(10).saturating_add(u32::from(c - b'0'))
            })
    }
}

fn ipv4(b: &[u8], g: &Groups) -> bool {
    for k in 0..4 {
        let len = g.len(k);
        let first = g.spans.get(k).map_or(0, |s| at(b, s.0));
        if len == 0 || len > 3 || (len > 1 && first == b'0') || g.value(b, k) > 255 {
            return false;
        }
    }
    // Not addresses of anyone: "this network", loopback, netmasks and broadcast.
    !matches!(g.value(b, 0), 0 | 127 | 255)
}

fn ssn(b: &[u8], g: &Groups) -> bool {
    let (area, group, serial) = (g.value(b, 0), g.value(b, 1), g.value(b, 2));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// North American numbers: `415-555-2671`, `415.555.2671`, `415 555 2671`, `1-415-555-2671`.
fn nanp(b: &[u8], g: &Groups, k: usize) -> bool {
    let (off, ok_lens) = match k {
        3 => (0, g.len(0) == 3 && g.len(1) == 3 && g.len(2) == 4),
        4 => (
            1,
            g.len(0) == 1 && g.value(b, 0) == 1 && g.len(1) == 3 && g.len(2) == 3 && g.len(3) == 4,
        ),
        _ => return false,
    };
    let first = |k: usize| g.spans.get(k).map_or(0, |s| at(b, s.0));
    ok_lens && matches!(first(off), b'2'..=b'9') && matches!(first(off + 1), b'2'..=b'9')
}

/// 13 to 19 digits (unbroken, or in the groupings printed on cards) that pass the Luhn check
/// and start with a card network's prefix.
fn card(b: &[u8], g: &Groups, k: usize) -> bool {
    let total: usize = (0..k).map(|x| g.len(x)).sum();
    if !(13..=19).contains(&total) {
        return false;
    }
    if k > 1 {
        let fours = (0..k - 1).all(|x| g.len(x) == 4) && (1..=4).contains(&g.len(k - 1));
        let amex = k == 3 && g.len(0) == 4 && g.len(1) == 6 && (4..=5).contains(&g.len(2));
        if !(fours || amex) {
            return false;
        }
    }
    let mut digits = [0u8; 19];
    for (slot, d) in digits.iter_mut().zip(g.digits(b, k)) {
        *slot = d;
    }
    let digits = digits.get(..total).unwrap_or_default();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(idx, d)| {
            let d = u32::from(*d);
            if idx % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    if !sum.is_multiple_of(10) {
        return false;
    }
    let p2 = digits
        .iter()
        .take(2)
        .fold(0u32, |a, d| a * 10 + u32::from(*d));
    let p4 = digits
        .iter()
        .take(4)
        .fold(0u32, |a, d| a * 10 + u32::from(*d));
    match digits.first() {
        Some(4) => true,                        // Visa
        Some(5) => (51..=55).contains(&p2),     // Mastercard
        Some(2) => (2221..=2720).contains(&p4), // Mastercard 2-series
        Some(3) => matches!(p2, 30 | 34..=39),  // Amex, Diners, JCB
        Some(6) => true,                        // Discover, UnionPay, Maestro
        _ => false,
    }
}

// ---- key = value -----------------------------------------------------------------------

/// Widens a keyword hit to the whole key word (`DB_PASSWORD`, `client-secret`,
/// `spring.datasource.password`).
fn expand_word(b: &[u8], mut s: usize, mut e: usize) -> (usize, usize) {
    while s > 0 && is_key_char(before(b, s)) {
        s -= 1;
    }
    e = run(b, e, is_key_char);
    (s, e)
}

/// The value assigned to the key word `b[ws..we]`: `key=value`, `key: value`,
/// `"key": "value"`, `key => 'value'`, `--key value`. Quoted values run to their closing
/// quote (or the end of the line); bare ones to whitespace or punctuation.
fn assignment_value(b: &[u8], ws: usize, we: usize) -> Option<(usize, usize)> {
    let mut j = we;
    let q0 = before(b, ws);
    if matches!(q0, b'"' | b'\'') && at(b, j) == q0 {
        j += 1;
    }
    let k = skip_blanks(b, j);
    let c = at(b, k);
    let mut v = if c == b'=' || c == b':' {
        let mut k2 = k + 1;
        if matches!(at(b, k2), b'=' | b'>') {
            k2 += 1;
        }
        skip_blanks(b, k2)
    } else if at(b, ws) == b'-' && k > j && at(b, k) != b'-' && k - j == 1 {
        k
    } else {
        return None;
    };
    let q = at(b, v);
    if matches!(q, b'"' | b'\'' | b'`') {
        v += 1;
        let e = run(b, v, |c| c != q && c != b'\n' && c != 0);
        Some((v, e))
    } else {
        Some((v, run(b, v, |c| !is_value_stop(c))))
    }
}

/// `Bearer xyz` / `Basic xyz` / `token xyz`: the credential after the scheme.
fn strip_auth_scheme(b: &[u8], vs: usize, ve: usize) -> (usize, usize) {
    let v = b.get(vs..ve).unwrap_or_default();
    for scheme in [&b"bearer"[..], b"basic", b"token", b"bot"] {
        if v.len() >= scheme.len()
            && v.get(..scheme.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
        {
            let after = vs + scheme.len();
            if after == ve {
                return (ve, ve);
            }
            if at(b, after) == b' ' {
                return (after + 1, ve);
            }
        }
    }
    (vs, ve)
}

/// The entropy rules of the `secret_key_entropy` detector (see the README).
pub(crate) fn value_is_secret(kind: KeyKind, v: &[u8]) -> bool {
    let (s, e) = trim_span(v, 0, v.len());
    let v = v.get(s..e).unwrap_or_default();
    if is_placeholder(v) {
        return false;
    }
    match kind {
        KeyKind::Password => v.len() >= 4,
        KeyKind::Generic => {
            if v.len() < 8 || v.iter().any(u8::is_ascii_whitespace) {
                return false;
            }
            let classes = [
                v.iter().any(u8::is_ascii_lowercase),
                v.iter().any(u8::is_ascii_uppercase),
                v.iter().any(u8::is_ascii_digit),
            ]
            .iter()
            .filter(|x| **x)
            .count();
            classes >= 2 && shannon_entropy(v) >= 3.0
        }
    }
}

/// Values that stand for a secret without being one: references (`${VAR}`, `{{ x }}`,
/// `<token>`), masks, our own tokens, booleans, paths, a run of one character.
fn is_placeholder(v: &[u8]) -> bool {
    let Some(&first) = v.first() else {
        return true;
    };
    if matches!(first, b'$' | b'%' | b'{' | b'<' | b'*' | b'/' | b'~' | b'[') {
        return true;
    }
    if v.iter().all(|c| *c == first) {
        return true;
    }
    if v.len() == TOKEN_LEN && token_at(v, 0) {
        return true;
    }
    const WORDS: [&[u8]; 12] = [
        b"true",
        b"false",
        b"null",
        b"none",
        b"nil",
        b"undefined",
        b"redacted",
        b"masked",
        b"hidden",
        b"empty",
        b"unset",
        b"required",
    ];
    WORDS.iter().any(|w| w.eq_ignore_ascii_case(v))
}

fn shannon_entropy(v: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &c in v {
        if let Some(x) = counts.get_mut(usize::from(c)) {
            *x += 1;
        }
    }
    let n = v.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

// ---- the redactor's own outputs ----------------------------------------------------------

/// Length of `hmac:` + 16 hex digits.
pub(crate) const TOKEN_LEN: usize = 21;

/// Whether `b[i..]` starts with a token `hmac:<16 lowercase hex>` not followed by a word
/// character.
pub(crate) fn token_at(b: &[u8], i: usize) -> bool {
    b.get(i..i + 5) == Some(b"hmac:")
        && (i + 5..i + TOKEN_LEN).all(|k| matches!(at(b, k), b'0'..=b'9' | b'a'..=b'f'))
        && !is_word(at(b, i + TOKEN_LEN))
}

/// The end of a mask `[REDACTED]` / `[REDACTED:name]` whose `[REDACTED` ends at `pe`.
fn mask_end(b: &[u8], pe: usize) -> Option<usize> {
    let e = run(b, pe, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b':' | b'-')
    });
    (at(b, e) == b']' && e - pe <= 64).then_some(e + 1)
}

// ---- byte helpers ------------------------------------------------------------------------

/// The byte at `i`, or NUL past the end.
#[inline]
fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

/// The byte before `i`, or NUL at the start.
#[inline]
fn before(b: &[u8], i: usize) -> u8 {
    if i == 0 { 0 } else { at(b, i - 1) }
}

/// The end of the run of `class` bytes starting at `i`.
#[inline]
fn run(b: &[u8], mut i: usize, class: impl Fn(u8) -> bool) -> usize {
    while i < b.len() && class(at(b, i)) {
        i += 1;
    }
    i
}

fn skip_blanks(b: &[u8], i: usize) -> usize {
    let e = run(b, i, |c| c == b' ' || c == b'\t');
    if e - i > 4 { i } else { e }
}

fn trim_span(b: &[u8], mut s: usize, mut e: usize) -> (usize, usize) {
    while s < e && at(b, s).is_ascii_whitespace() {
        s += 1;
    }
    while e > s && at(b, e - 1).is_ascii_whitespace() {
        e -= 1;
    }
    (s, e)
}

/// Whether a `.` or `-` and a digit follow `e` (the number goes on).
fn number_continues(b: &[u8], e: usize) -> bool {
    matches!(at(b, e), b'.' | b'-') && at(b, e + 1).is_ascii_digit()
}

fn digits_at(b: &[u8], i: usize, n: usize) -> bool {
    (i..i + n).all(|k| at(b, k).is_ascii_digit())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

fn is_alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn is_b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

fn is_alnum_dash(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-'
}

fn is_key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')
}

fn is_scheme(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.')
}

fn is_email_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_value_stop(c: u8) -> bool {
    c.is_ascii_whitespace()
        || c.is_ascii_control()
        || matches!(
            c,
            b',' | b';' | b'&' | b'"' | b'\'' | b'`' | b'<' | b'>' | b')' | b']' | b'}' | b'\\'
        )
}

/// A digit at a word boundary that is not inside a dotted, dashed or colon-separated number
/// already examined from its start.
fn num_boundary(b: &[u8], i: usize) -> bool {
    let p = before(b, i);
    if is_word(p) || p == b'+' {
        return false;
    }
    let p2 = if i >= 2 { at(b, i - 2) } else { 0 };
    match p {
        b'.' => !is_alnum(p2),
        b'-' | b':' => !p2.is_ascii_digit(),
        _ => true,
    }
}

/// Bytes that can start something the byte pass looks for.
#[inline]
fn is_interesting(c: u8) -> bool {
    INTERESTING.get(usize::from(c)).copied().unwrap_or(false)
}

// Indexing in a const initializer is checked at compile time.
#[allow(clippy::indexing_slicing)]
static INTERESTING: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_digit()
            || b.is_ascii_uppercase()
            || matches!(b, b'@' | b':' | b'+' | b'(' | b'=' | b'-');
        c += 1;
    }
    t
};

/// IBAN lengths by country (SWIFT IBAN registry).
const IBAN_LENGTHS: &[(&str, u8)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    fn scanner() -> Scanner {
        Policy::default_policy().compile().unwrap().scanner
    }

    #[test]
    fn no_literal_is_a_prefix_of_another() {
        for (a, _) in LITERALS {
            for (b, _) in LITERALS {
                assert!(a == b || !b.starts_with(a), "{a} is a prefix of {b}");
            }
        }
    }

    fn literals_by_automaton(s: &str) -> Vec<(usize, usize)> {
        let scanner = scanner();
        let mut found = Vec::new();
        // Padded past the short-string limit with a byte no literal holds.
        let long = format!("{s}{}", "\u{1}".repeat(SHORT_STRING));
        scanner.each_literal(&long, |i, k| found.push((i, k)));
        found
    }

    fn literals_by_tables(s: &str) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        let table = scanner().table.expect("the literals fit a pair table");
        table.each(s.as_bytes(), |i, k| found.push((i, k)));
        found
    }

    #[test]
    fn key_words_by_pair_table_ignore_case() {
        let t = PairTable::new(&["token", "_key", "secret"], true).unwrap();
        assert!(t.is_match(b"GITHUB_TOKEN"));
        assert!(t.is_match(b"api_Key"));
        assert!(t.is_match(b"client-SeCrEt"));
        assert!(!t.is_match(b"tokn"));
        assert!(!t.is_match(b"key"));
        assert!(PairTable::new(&["a"], true).is_none());
        let many: Vec<String> = (0..65).map(|i| format!("w{i}")).collect();
        assert!(PairTable::new(&many, true).is_none());
        let exact = PairTable::new(&["AKIA"], false).unwrap();
        assert!(exact.is_match(b"xAKIA") && !exact.is_match(b"akia"));
    }

    #[test]
    fn literal_tables_find_what_the_automaton_finds_in_examples() {
        let mut every = String::new();
        for (lit, _) in LITERALS {
            every.push_str(lit);
            every.push_str(&lit[..lit.len() - 1]);
        }
        for s in [
            "",
            "A",
            "AKIAASIA",
            "-----BEGIN -----BEGIN",
            "hmac:hmac[REDACTED",
            "xoxb-xoxp-",
            "eyJeyJeyJ",
            every.as_str(),
        ] {
            assert_eq!(literals_by_tables(s), literals_by_automaton(s), "{s:?}");
        }
        let seen: std::collections::BTreeSet<usize> = literals_by_tables(&every)
            .into_iter()
            .map(|(_, k)| k)
            .collect();
        assert_eq!(seen.len(), LITERALS.len(), "every literal found");
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        #[test]
        fn literal_tables_find_what_the_automaton_finds(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    (0..LITERALS.len(), 0usize..3).prop_map(|(k, cut)| {
                        let lit = LITERALS[k].0;
                        lit[..(lit.len() - cut).max(1)].to_owned()
                    }),
                    "[A-Za-z0-9_=:/ .-]{0,6}",
                ],
                0..12,
            )
        ) {
            let s: String = parts.concat();
            proptest::prop_assert_eq!(literals_by_tables(&s), literals_by_automaton(&s));
        }

        #[test]
        fn key_word_table_agrees_with_the_automaton(key in "[a-zA-Z_.-]{0,6}(_?(tok|TOKEN|Secret|key|pass|word|auth))*[a-z_-]{0,4}") {
            let keys = &scanner().keys;
            let Some(KeyWords::Table(table)) = &keys.words else {
                panic!("the default key words fit a pair table");
            };
            let lits: Vec<&[u8]> = keys.patterns.iter().map(Glob::longest_literal).collect();
            let ac = AhoCorasick::builder().ascii_case_insensitive(true).build(&lits).unwrap();
            proptest::prop_assert_eq!(table.is_match(key.as_bytes()), ac.is_match(&key));
        }
    }

    fn found(s: &str) -> Vec<(String, &'static str)> {
        found_key(s, None)
    }

    fn found_key(s: &str, key: Option<&str>) -> Vec<(String, &'static str)> {
        let mut out = Vec::new();
        scanner().scan(s, key, &mut out);
        out.iter()
            .map(|f| (s[f.start..f.end].to_owned(), f.detector.name()))
            .collect()
    }

    #[track_caller]
    fn one(s: &str, span: &str, det: &str) {
        assert_eq!(found(s), vec![(span.to_owned(), det)], "in {s:?}");
    }

    #[test]
    fn positives() {
        one(
            "by alice.smith+ci@corp.example.com.",
            "alice.smith+ci@corp.example.com",
            "email",
        );
        one("call +1 415-555-0123 now", "+1 415-555-0123", "phone");
        one("call (415) 555-0123", "(415) 555-0123", "phone");
        one("tel 415.555.0123", "415.555.0123", "phone");
        one("+44 20 7946 0958", "+44 20 7946 0958", "phone");
        one("client 203.0.113.42:443 refused", "203.0.113.42", "ipv4");
        one(
            "from [2001:db8:85a3::8a2e:370:7334]:80",
            "2001:db8:85a3::8a2e:370:7334",
            "ipv6",
        );
        one(
            "card 4111 1111 1111 1111 declined",
            "4111 1111 1111 1111",
            "payment_card",
        );
        one("card=4111111111111111", "4111111111111111", "payment_card");
        one(
            "amex 3782-822463-10005",
            "3782-822463-10005",
            "payment_card",
        );
        one(
            "iban GB82WEST12345698765432 ok",
            "GB82WEST12345698765432",
            "iban",
        );
        one(
            "iban GB82 WEST 1234 5698 7654 32",
            "GB82 WEST 1234 5698 7654 32",
            "iban",
        );
        one("ssn 123-45-6789", "123-45-6789", "us_ssn");
        one(
            "key AKIAIOSFODNN7EXAMPLE used",
            "AKIAIOSFODNN7EXAMPLE",
            "aws_access_key",
        );
        one(
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_key",
        );
        one(
            "k=AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
            "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
            "gcp_api_key",
        );
        one(
            "push https://x-access-token:ghp_16C7e42F292c6912E7710c838347Ae178B4a@github.com/o/r",
            "x-access-token:ghp_16C7e42F292c6912E7710c838347Ae178B4a",
            "github_token",
        );
        one(
            "GITLAB=glpat-xY3zAbCdEfGhIjKlMnOp",
            "glpat-xY3zAbCdEfGhIjKlMnOp",
            "gitlab_token",
        );
        one(
            "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
            "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
            "slack_token",
        );
        one(
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "jwt",
        );
        one(
            "k: -----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\n done",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
            "private_key",
        );
        one(
            "clone https://deploy:s3cr3tPass@git.example.com/x.git",
            "deploy:s3cr3tPass",
            "url_credentials",
        );
        one(
            "DB_PASSWORD=hunter22 next",
            "hunter22",
            "secret_key_entropy",
        );
        one(
            r#"{"client_secret": "q8Zr2LwX9vTn4Kp7"}"#,
            "q8Zr2LwX9vTn4Kp7",
            "secret_key_entropy",
        );
        one(
            "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;EndpointSuffix=core.windows.net",
            "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
            "azure_storage_key",
        );
        assert_eq!(
            found_key("q8Zr2LwX9vTn4Kp7", Some("API_TOKEN")),
            vec![("q8Zr2LwX9vTn4Kp7".to_owned(), "secret_key_entropy")]
        );
    }

    #[test]
    fn negatives() {
        for s in [
            "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
            "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
            "123e4567-e89b-12d3-a456-426614174000",
            "github:acme/api/9876543210/1",
            "jenkins:job/42",
            "v1.2.3-rc.1+build.5",
            "2026-11-23T10:00:00Z",
            "2026-11-23T10:00:00.123+05:30",
            "api-7d9f8b6c5d-x2kqp",
            "took 1500ms (p99 2.5s)",
            "git@github.com:acme/api.git",
            "https://github.com/acme/api/actions/runs/123",
            "std::vec::Vec",
            "00:1a:2b:3c:4d:5e",
            "127.0.0.1:8080 and 0.0.0.0",
            "1700000000000",
            "hmac:0123456789abcdef",
            "[REDACTED:email]",
            "token=hmac:0123456789abcdef",
            "password=[REDACTED:secret_key_entropy]",
            "cache_key=linux-x64-Cargo-4f3a2b1c9d",
            "image@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
            "pkg@1.2.3",
        ] {
            assert_eq!(found(s), vec![], "in {s:?}");
        }
    }
}
