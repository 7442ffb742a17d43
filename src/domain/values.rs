//! Value types that can only hold valid data; each `parse` says why input is refused.
use serde::{Deserialize, Serialize};

use super::Invalid;

macro_rules! string_value {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_inner(self) -> String {
                self.0
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// A lower-cased email address with one `@`, a dotted domain and no spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);
string_value!(Email);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, Invalid> {
        let s = raw.trim().to_lowercase();
        let bad = || Invalid::new("email", "Enter an email address like name@example.com.");
        if s.is_empty() || s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || local.len() > 64
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(bad());
        }
        Ok(Email(s))
    }
}

/// A password as typed: 8 to 256 characters, never trimmed or truncated.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN: usize = 8;
    pub const MAX: usize = 256;

    pub fn parse(raw: &str) -> Result<Password, Invalid> {
        let n = raw.chars().count();
        if n < Self::MIN {
            return Err(Invalid::new(
                "password",
                format!("Choose a password of at least {} characters.", Self::MIN),
            ));
        }
        if n > Self::MAX {
            return Err(Invalid::new(
                "password",
                format!("Choose a password of at most {} characters.", Self::MAX),
            ));
        }
        Ok(Password(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// A display name: trimmed, 1 to `max` characters, no control characters.
fn bounded_text(raw: &str, field: &'static str, max: usize) -> Result<String, Invalid> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(Invalid::new(field, "Enter a name."));
    }
    if s.chars().count() > max {
        return Err(Invalid::new(
            field,
            format!("Use at most {max} characters."),
        ));
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(Invalid::new(
            field,
            "Leave out tabs, line breaks and other control characters.",
        ));
    }
    Ok(s.to_string())
}

/// A person's display name, 1 to 100 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);
string_value!(PersonName);

impl PersonName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        bounded_text(raw, "name", 100).map(Self)
    }
}

/// An organization's display name, 1 to 100 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgName(String);
string_value!(OrgName);

impl OrgName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        bounded_text(raw, "name", 100).map(Self)
    }
}

/// An API token's label, 1 to 100 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenName(String);
string_value!(TokenName);

impl TokenName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        bounded_text(raw, "name", 100).map(Self)
    }
}

/// An organization slug: 3-40 of `a-z 0-9 -`, starting and ending alphanumeric.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slug(String);
string_value!(Slug);

const RESERVED_SLUGS: &[&str] = &[
    "new",
    "api",
    "admin",
    "login",
    "logout",
    "account",
    "assets",
    "static",
    "settings",
    "orgs",
    "invite",
    "invitations",
    "healthz",
    "readyz",
    "metrics",
];

impl Slug {
    pub fn parse(raw: &str) -> Result<Slug, Invalid> {
        let s = raw.trim();
        let ok_chars = s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !(3..=40).contains(&s.len())
            || !ok_chars
            || s.starts_with('-')
            || s.ends_with('-')
            || s.contains("--")
        {
            return Err(Invalid::new(
                "slug",
                "Use 3 to 40 lowercase letters, digits and single hyphens, starting and ending with a letter or digit.",
            ));
        }
        if RESERVED_SLUGS.contains(&s) {
            return Err(Invalid::new(
                "slug",
                "This slug is reserved; choose another.",
            ));
        }
        Ok(Slug(s.to_string()))
    }

    /// A slug derived from free text ("Acme Research!" → "acme-research"), padded when short.
    pub fn derive_from(text: &str) -> Slug {
        let mut out = String::new();
        for c in text.to_lowercase().chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c);
            } else if !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
            if out.len() >= 32 {
                break;
            }
        }
        let mut out = out.trim_matches('-').to_string();
        while out.len() < 3 {
            out.push('x');
        }
        if RESERVED_SLUGS.contains(&out.as_str()) {
            out.push_str("-org");
        }
        Slug(out)
    }

    /// The same slug with a suffix, for when the plain one is taken.
    pub fn with_suffix(&self, suffix: &str) -> Slug {
        let base: String = self.0.chars().take(40 - suffix.len() - 1).collect();
        Slug(format!("{}-{suffix}", base.trim_end_matches('-')))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrgKind {
    Personal,
    Team,
}

impl super::Word for OrgKind {
    const ALL: &'static [Self] = &[OrgKind::Personal, OrgKind::Team];
    fn as_str(self) -> &'static str {
        OrgKind::as_str(self)
    }
}

impl OrgKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OrgKind::Personal => "personal",
            OrgKind::Team => "team",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "personal" => Some(OrgKind::Personal),
            "team" => Some(OrgKind::Team),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Private,
    Team,
    Organization,
    Public,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Team => "team",
            Visibility::Organization => "organization",
            Visibility::Public => "public",
        }
    }
}

/// Why a credit note is issued: 1 to 500 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditReason(String);
string_value!(CreditReason);

impl CreditReason {
    pub const MAX: usize = 500;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.trim().is_empty() {
            return Err(Invalid::new("reason", "Say why the invoice is credited."));
        }
        bounded_text(raw, "reason", Self::MAX).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(
            Email::parse(" Ann@Example.COM ").map(|e| e.0),
            Ok("ann@example.com".into())
        );
        for bad in [
            "", "ann", "ann@", "@x.io", "a b@x.io", "a@x", "a@@x.io", "a@x..io",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn passwords_are_bounded_not_truncated() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(257)).is_err());
        assert_eq!(
            Password::parse("  spaced  ").map(|p| p.0),
            Ok("  spaced  ".into())
        );
    }

    #[test]
    fn slugs_follow_the_rules() {
        assert!(Slug::parse("acme").is_ok());
        for bad in [
            "ab",
            "Acme",
            "-acme",
            "acme-",
            "ac--me",
            "a_b_c",
            "admin",
            &"a".repeat(41),
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(Slug::derive_from("Acme Research!").0, "acme-research");
        assert_eq!(Slug::derive_from("é").0, "xxx");
        assert!(Slug::parse(Slug::derive_from("x").with_suffix("ab12").as_str()).is_ok());
    }
}
