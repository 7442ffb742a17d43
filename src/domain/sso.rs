//! Single sign-on settings as typed, parsed: the issuer URL, the client id and secret, the
//! email domains routed to the provider and the role of members it adds. Errors name the
//! field as the API reports it (`sso.issuer`, ...).
use super::{Invalid, Role};

/// At most this many email domains per organization.
pub const MAX_DOMAINS: usize = 50;

/// The fields, as `PATCH /api/v1/orgs/{org}/security` and the page report them.
pub mod fields {
    pub const ISSUER: &str = "sso.issuer";
    pub const CLIENT_ID: &str = "sso.client_id";
    pub const CLIENT_SECRET: &str = "sso.client_secret";
    pub const ALLOWED_DOMAINS: &str = "sso.allowed_domains";
    pub const DEFAULT_ROLE: &str = "sso.default_role";
}

pub fn parse_issuer(raw: &str) -> Result<String, Invalid> {
    let url = raw.trim();
    let bad = || {
        Invalid::new(
            fields::ISSUER,
            "Enter the issuer's address, starting with https:// (or http://), e.g. https://login.example.com/realms/acme.",
        )
    };
    if url.len() > 2048 || url.contains(char::is_whitespace) {
        return Err(bad());
    }
    let parsed = url::Url::parse(url).map_err(|_| bad())?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none_or(str::is_empty)
        || parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
    {
        return Err(bad());
    }
    Ok(url.to_string())
}

pub fn parse_client_id(raw: &str) -> Result<String, Invalid> {
    let id = raw.trim();
    if id.is_empty() || id.len() > 255 || !id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Invalid::new(
            fields::CLIENT_ID,
            "Enter the client id the provider gave you (1 to 255 letters, digits and signs, no spaces).",
        ));
    }
    Ok(id.to_string())
}

pub fn parse_client_secret(raw: &str) -> Result<String, Invalid> {
    let s = raw.trim();
    if s.is_empty() || s.len() > 4096 || !s.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Invalid::new(
            fields::CLIENT_SECRET,
            "Enter the client secret without spaces (at most 4096 letters, digits and signs).",
        ));
    }
    Ok(s.to_string())
}

/// An email domain as routed: lower case, dot-separated labels of letters, digits and
/// hyphens, at least two labels.
pub fn parse_domain(raw: &str) -> Option<String> {
    let d = raw.trim().trim_start_matches('@').to_ascii_lowercase();
    let labels: Vec<&str> = d.split('.').collect();
    let ok = d.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        });
    ok.then_some(d)
}

pub fn parse_domains(raw: &[String]) -> Result<Vec<String>, Invalid> {
    let field = fields::ALLOWED_DOMAINS;
    let mut out = Vec::new();
    for d in raw {
        let Some(d) = parse_domain(d) else {
            return Err(Invalid::new(
                field,
                format!(
                    "\"{}\" is not an email domain; enter domains like example.com.",
                    d.chars().take(80).collect::<String>()
                ),
            ));
        };
        if !out.contains(&d) {
            out.push(d);
        }
    }
    if out.is_empty() {
        return Err(Invalid::new(
            field,
            "Enter at least one email domain whose people sign in here, e.g. example.com.",
        ));
    }
    if out.len() > MAX_DOMAINS {
        return Err(Invalid::new(
            field,
            format!("Enter at most {MAX_DOMAINS} domains."),
        ));
    }
    out.sort();
    Ok(out)
}

pub fn parse_default_role(raw: &str) -> Result<Role, Invalid> {
    match Role::parse(raw.trim()) {
        Some(r) if r != Role::Owner => Ok(r),
        _ => Err(Invalid::new(
            fields::DEFAULT_ROLE,
            "Choose admin, manager, member, viewer or guest (owners are made by owners).",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_lower_case_host_names_without_duplicates() {
        let d = |v: &[&str]| parse_domains(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            d(&["Example.COM", "@corp.example.org", "example.com"]).unwrap(),
            vec!["corp.example.org".to_string(), "example.com".to_string()]
        );
        for bad in [
            "localhost",
            "exa mple.com",
            "-x.com",
            "x..com",
            "",
            "a@b.com",
        ] {
            assert!(d(&[bad]).is_err(), "{bad} accepted");
        }
        assert!(d(&[]).is_err(), "at least one domain");
    }

    #[test]
    fn issuers_are_http_urls_without_query_or_credentials() {
        assert!(parse_issuer("https://login.example.com/realms/acme").is_ok());
        assert!(parse_issuer("http://127.0.0.1:8080").is_ok());
        for bad in [
            "ftp://x.example",
            "https://",
            "https://x.example/?a=1",
            "https://u:p@x.example",
            "login.example.com",
        ] {
            assert!(parse_issuer(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn owners_are_never_the_default_role() {
        assert!(parse_default_role("owner").is_err());
        assert_eq!(parse_default_role(" viewer ").unwrap(), Role::Viewer);
    }
}
