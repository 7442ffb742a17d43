//! An organization's security policy: who may act in it from where, for how long a
//! session or an API token counts there, and how many API requests a minute it takes.
//! Stored as one JSON object with the organization (`organizations.security_policy`) and
//! read with it on every request that enters it.
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::Invalid;

/// At most this many allowlist entries: the check runs on every request.
pub const MAX_ALLOWLIST: usize = 200;
pub const MAX_SESSION_IDLE_MINUTES: u32 = 525_600;
pub const MAX_SESSION_HOURS: u32 = 87_600;
pub const MAX_TOKEN_DAYS: u32 = 3_650;
pub const MAX_API_RPM: u32 = 1_000_000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityPolicy {
    /// Empty: every address may act in the organization.
    pub ip_allowlist: Vec<IpNet>,
    pub session_idle_minutes: Option<u32>,
    pub session_max_hours: Option<u32>,
    pub token_max_days: Option<u32>,
    pub api_rate_limit_rpm: Option<u32>,
}

/// The stored form: networks as text, so that a stored value never fails to read.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ip_allowlist: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session_idle_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session_max_hours: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_max_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_rate_limit_rpm: Option<u32>,
}

impl SecurityPolicy {
    /// Reads the stored JSON. Text that does not read is no policy rather than an error:
    /// every request of the organization reads it, and only this module writes it.
    pub fn from_stored(text: &str) -> SecurityPolicy {
        let s: Stored = serde_json::from_str(text).unwrap_or_default();
        SecurityPolicy {
            ip_allowlist: s
                .ip_allowlist
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
            session_idle_minutes: s.session_idle_minutes,
            session_max_hours: s.session_max_hours,
            token_max_days: s.token_max_days,
            api_rate_limit_rpm: s.api_rate_limit_rpm,
        }
    }

    pub fn to_stored(&self) -> String {
        let s = Stored {
            ip_allowlist: self.ip_allowlist.iter().map(IpNet::to_string).collect(),
            session_idle_minutes: self.session_idle_minutes,
            session_max_hours: self.session_max_hours,
            token_max_days: self.token_max_days,
            api_rate_limit_rpm: self.api_rate_limit_rpm,
        };
        serde_json::to_string(&s).unwrap_or_else(|_| "{}".into())
    }

    /// Whether `ip` may act in the organization. An unknown address (no peer) passes only
    /// an empty list.
    pub fn allows(&self, ip: Option<IpAddr>) -> bool {
        if self.ip_allowlist.is_empty() {
            return true;
        }
        let Some(ip) = ip else { return false };
        // An IPv4 client reached over an IPv6 socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.ip_allowlist.iter().any(|n| n.contains(&ip))
    }

    pub fn allowlist_text(&self) -> Vec<String> {
        self.ip_allowlist.iter().map(IpNet::to_string).collect()
    }
}

/// One allowlist entry: a network in CIDR notation or a single address, IPv4 or IPv6.
/// Host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`) so the list shows what it means.
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("an entry is empty".into());
    }
    if let Ok(net) = t.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    match t.parse::<IpAddr>() {
        Ok(ip) => Ok(IpNet::from(ip)),
        Err(_) => Err(format!(
            "\"{}\" is not an address or a network in CIDR notation (10.0.0.0/8, 2001:db8::/32)",
            t.chars().take(60).collect::<String>()
        )),
    }
}

/// The allowlist as entered: every entry checked, duplicates dropped, in the given order.
pub fn parse_allowlist(entries: &[String]) -> Result<Vec<IpNet>, Invalid> {
    if entries.len() > MAX_ALLOWLIST {
        return Err(Invalid::new(
            "ip_allowlist",
            format!("at most {MAX_ALLOWLIST} entries"),
        ));
    }
    let mut out: Vec<IpNet> = Vec::with_capacity(entries.len());
    for e in entries {
        let net = parse_network(e).map_err(|why| Invalid::new("ip_allowlist", why))?;
        if !out.contains(&net) {
            out.push(net);
        }
    }
    Ok(out)
}

/// A limit in `1..=max`; `field` names it in the error.
pub fn check_limit(field: &'static str, value: i64, max: u32) -> Result<u32, Invalid> {
    match u32::try_from(value) {
        Ok(v) if (1..=max).contains(&v) => Ok(v),
        _ => Err(Invalid::new(
            field,
            format!("must be a whole number from 1 to {max}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn an_allowlist_admits_its_networks_in_v4_and_v6_and_nothing_else() {
        let p = SecurityPolicy {
            ip_allowlist: parse_allowlist(&["10.0.0.0/8".into(), "2001:db8::/32".into()]).unwrap(),
            ..Default::default()
        };
        assert!(p.allows(ip("10.200.3.4")));
        assert!(
            p.allows(ip("::ffff:10.1.1.1")),
            "v4-mapped v6 is the v4 client"
        );
        assert!(p.allows(ip("2001:db8:ffff::1")));
        assert!(!p.allows(ip("11.0.0.1")));
        assert!(!p.allows(ip("2001:db9::1")));
        assert!(!p.allows(None));
        assert!(SecurityPolicy::default().allows(None));
    }

    #[test]
    fn entries_are_normalized_and_bad_ones_named() {
        let nets = parse_allowlist(&[
            "10.1.2.3/8".into(),
            " 192.0.2.7 ".into(),
            "10.0.0.0/8".into(),
            "2001:DB8::1/32".into(),
        ])
        .unwrap();
        let text: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
        let e = parse_allowlist(&["10.0.0.0/33".into()]).unwrap_err();
        assert_eq!(e.field, "ip_allowlist");
        assert!(e.reason.contains("10.0.0.0/33"), "{}", e.reason);
        assert!(parse_allowlist(&[String::new()]).is_err());
        let many: Vec<String> = (0..=MAX_ALLOWLIST)
            .map(|i| format!("10.0.{}.{}/32", i / 256, i % 256))
            .collect();
        assert!(parse_allowlist(&many).is_err());
    }

    #[test]
    fn the_stored_form_reads_back_and_bad_text_is_no_policy() {
        let p = SecurityPolicy {
            ip_allowlist: parse_allowlist(&["10.0.0.0/8".into()]).unwrap(),
            session_idle_minutes: Some(15),
            session_max_hours: Some(8),
            token_max_days: Some(30),
            api_rate_limit_rpm: Some(600),
        };
        assert_eq!(SecurityPolicy::from_stored(&p.to_stored()), p);
        assert_eq!(SecurityPolicy::from_stored("{}"), SecurityPolicy::default());
        assert_eq!(
            SecurityPolicy::from_stored("not json"),
            SecurityPolicy::default()
        );
        assert_eq!(SecurityPolicy::default().to_stored(), "{}");
    }

    #[test]
    fn limits_are_whole_numbers_in_range() {
        assert_eq!(check_limit("x", 1, 10).unwrap(), 1);
        assert_eq!(check_limit("x", 10, 10).unwrap(), 10);
        assert!(check_limit("x", 0, 10).is_err());
        assert!(check_limit("x", 11, 10).is_err());
        assert!(check_limit("x", -1, 10).is_err());
        assert!(check_limit("x", i64::MAX, 10).is_err());
    }
}
