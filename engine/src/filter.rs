//! Which objects an operation touches: ordered include/exclude glob rules plus size and
//! modification-time bounds (rclone-like).
//!
//! Rules are tried in order and the **first matching rule wins**. When no rule matches, the key is
//! *included* if every rule is an exclude (or there are none), and *excluded* as soon as any
//! include rule exists — so `--include '*.jpg'` means "only JPEGs" and `--exclude tmp/**` means
//! "everything but tmp/". Globs match the key relative to the operation's source root (for sync
//! deletions: the destination key with the destination prefix removed), with `*` not crossing
//! `/`, `**` crossing it, `?`, `[…]`, `{a,b}` and `\` escapes as in globset. Every pattern
//! matches the *whole* relative key (a leading `/` is accepted and ignored): write `**/x` to match
//! `x` in any directory. (rclone matches an unanchored pattern in any directory; here that is
//! spelled out with `**/`.)
//!
//! Size bounds are inclusive (`min_size <= size <= max_size`); time bounds compare the listing's
//! last-modified time (`modified_after < t`, `t < modified_before`; an object without a time
//! passes). A key excluded by the filter is never copied *and never deleted* by sync.

use globset::{Glob, GlobBuilder, GlobMatcher};

use super::store::ObjectInfo;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleKind {
    Include,
    Exclude,
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub kind: RuleKind,
    /// The glob as the user wrote it.
    pub pattern: String,
    matcher: GlobMatcher,
}

/// An error in a filter: which rule and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad filter rule `{rule}`: {detail}")]
pub struct FilterError {
    pub rule: String,
    pub detail: String,
}

/// Ordered glob rules plus size and time bounds. `Filter::default()` matches everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub rules: Vec<Rule>,
    pub min_size: Option<u64>,
    pub max_size: Option<u64>,
    /// Unix milliseconds; objects modified strictly after this pass.
    pub modified_after_ms: Option<i64>,
    /// Unix milliseconds; objects modified strictly before this pass.
    pub modified_before_ms: Option<i64>,
}

fn compile(pattern: &str) -> Result<GlobMatcher, FilterError> {
    if pattern.is_empty() {
        return Err(FilterError {
            rule: pattern.into(),
            detail: "empty pattern".into(),
        });
    }
    let p = pattern.strip_prefix('/').unwrap_or(pattern);
    let glob: Glob = GlobBuilder::new(p)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| FilterError {
            rule: pattern.into(),
            detail: e.kind().to_string(),
        })?;
    Ok(glob.compile_matcher())
}

impl Filter {
    pub fn new() -> Filter {
        Filter::default()
    }

    pub fn include(mut self, pattern: &str) -> Result<Filter, FilterError> {
        self.rules.push(Rule {
            kind: RuleKind::Include,
            pattern: pattern.into(),
            matcher: compile(pattern)?,
        });
        Ok(self)
    }

    pub fn exclude(mut self, pattern: &str) -> Result<Filter, FilterError> {
        self.rules.push(Rule {
            kind: RuleKind::Exclude,
            pattern: pattern.into(),
            matcher: compile(pattern)?,
        });
        Ok(self)
    }

    /// Parses rules in rclone's filter-file syntax, one per line: `+ GLOB` (include), `- GLOB`
    /// (exclude); blank lines and lines starting with `#` are ignored. Errors name the line.
    pub fn parse_rules(text: &str) -> Result<Filter, FilterError> {
        let mut f = Filter::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let (kind, pat) = match line.split_at(1) {
                ("+", rest) if rest.starts_with(' ') => (RuleKind::Include, &rest[1..]),
                ("-", rest) if rest.starts_with(' ') => (RuleKind::Exclude, &rest[1..]),
                _ => {
                    return Err(FilterError {
                        rule: line.into(),
                        detail: format!("line {}: a rule is `+ GLOB` or `- GLOB`", i + 1),
                    })
                }
            };
            let matcher = compile(pat).map_err(|e| FilterError {
                detail: format!("line {}: {}", i + 1, e.detail),
                ..e
            })?;
            f.rules.push(Rule {
                kind,
                pattern: pat.into(),
                matcher,
            });
        }
        Ok(f)
    }

    /// Whether the key passes the glob rules (size and time ignored).
    pub fn matches_key(&self, key: &str) -> bool {
        for r in &self.rules {
            if r.matcher.is_match(key) {
                return r.kind == RuleKind::Include;
            }
        }
        !self.rules.iter().any(|r| r.kind == RuleKind::Include)
    }

    /// Whether the object passes every bound, matching `key` (the relative key) against the rules.
    pub fn matches_as(&self, key: &str, info: &ObjectInfo) -> bool {
        if self.min_size.is_some_and(|m| info.size < m) || self.max_size.is_some_and(|m| info.size > m) {
            return false;
        }
        if let Some(t) = info.last_modified_ms {
            if self.modified_after_ms.is_some_and(|a| t <= a) || self.modified_before_ms.is_some_and(|b| t >= b) {
                return false;
            }
        }
        self.matches_key(key)
    }

    /// Whether the object passes, matching its own key.
    pub fn matches(&self, info: &ObjectInfo) -> bool {
        self.matches_as(&info.key, info)
    }

    /// True when the filter lets everything through.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
            && self.min_size.is_none()
            && self.max_size.is_none()
            && self.modified_after_ms.is_none()
            && self.modified_before_ms.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(key: &str, size: u64, t: Option<i64>) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            size,
            last_modified_ms: t,
            ..Default::default()
        }
    }

    #[test]
    fn empty_filter_matches_everything() {
        let f = Filter::new();
        assert!(f.matches(&obj("a/b/c", 0, None)));
        assert!(f.is_empty());
    }

    #[test]
    fn excludes_only_default_include() {
        let f = Filter::new().exclude("tmp/**").unwrap().exclude("*.bak").unwrap();
        assert!(!f.matches_key("tmp/x"));
        assert!(!f.matches_key("tmp/a/b"));
        assert!(!f.matches_key("x.bak"));
        assert!(f.matches_key("dir/x.bak"), "`*` does not cross `/`");
        assert!(f.matches_key("keep.txt"));
    }

    #[test]
    fn any_include_means_exclude_by_default() {
        let f = Filter::new().include("**/*.jpg").unwrap();
        assert!(f.matches_key("a/b.jpg"));
        assert!(f.matches_key("b.jpg"), "`**/` matches zero directories");
        assert!(!f.matches_key("a/b.png"));
    }

    #[test]
    fn first_match_wins() {
        let f = Filter::new()
            .exclude("photos/private/**")
            .unwrap()
            .include("photos/**")
            .unwrap();
        assert!(!f.matches_key("photos/private/x.jpg"));
        assert!(f.matches_key("photos/x.jpg"));
        assert!(!f.matches_key("docs/x"));
        let g = Filter::new()
            .include("photos/**")
            .unwrap()
            .exclude("photos/private/**")
            .unwrap();
        assert!(g.matches_key("photos/private/x.jpg"), "the earlier include wins");
    }

    #[test]
    fn size_and_time_bounds() {
        let f = Filter {
            min_size: Some(10),
            max_size: Some(20),
            modified_after_ms: Some(100),
            modified_before_ms: Some(200),
            ..Default::default()
        };
        assert!(f.matches(&obj("k", 10, Some(150))));
        assert!(f.matches(&obj("k", 20, None)));
        assert!(!f.matches(&obj("k", 9, Some(150))));
        assert!(!f.matches(&obj("k", 21, Some(150))));
        assert!(!f.matches(&obj("k", 15, Some(100))));
        assert!(!f.matches(&obj("k", 15, Some(200))));
    }

    #[test]
    fn parser_and_errors_name_the_glob() {
        let f = Filter::parse_rules("# comment\n- *.tmp\n+ data/**\n\n").unwrap();
        assert_eq!(f.rules.len(), 2);
        assert!(!f.matches_key("x.tmp"));
        assert!(f.matches_key("data/x"));
        assert!(!f.matches_key("other"));
        let e = Filter::new().include("a/[b").unwrap_err();
        assert_eq!(e.rule, "a/[b");
        assert!(e.to_string().contains("a/[b"), "{e}");
        let e = Filter::parse_rules("+ ok/**\n* nope").unwrap_err();
        assert!(e.detail.contains("line 2"), "{e}");
        let e = Filter::parse_rules("- {a,b").unwrap_err();
        assert!(e.to_string().contains("{a,b"), "{e}");
    }

    #[test]
    fn anchored_and_special_keys() {
        let f = Filter::new().exclude("/top/*").unwrap();
        assert!(!f.matches_key("top/x"));
        assert!(f.matches_key("top/x/y"));
        let g = Filter::new().exclude("a\\*b").unwrap();
        assert!(!g.matches_key("a*b"));
        assert!(g.matches_key("axb"));
    }
}
