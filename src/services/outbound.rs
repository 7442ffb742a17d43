//! Which addresses the server connects to for an organization: provider base URLs and
//! alert webhooks are typed in by organization admins, and without a rule they could point
//! the server at its own network (a database port, a cloud metadata service) and read the
//! answer back through the gateway or a test connection.
//!
//! The rule is an instance setting (`--allow-private-targets`): by default only public
//! addresses are reached. It is checked when an address is saved (a literal address or a
//! name that resolves only to non-public addresses is refused with a field error) and
//! again whenever a connection is made (names are resolved through [`PolicyResolver`], so
//! a name that changes its answer after it was saved is refused too, and literal addresses
//! are checked before the request is sent). Providers configured by the instance's own
//! environment (`XAGENT_<PROVIDER>_BASE_URL`) are the administrator's choice and are not
//! restricted.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::domain::Invalid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetPolicy {
    /// Only addresses on the public internet (the default).
    PublicOnly,
    /// Private, loopback and link-local addresses too (a local model server on the same
    /// host or network, a single-tenant install).
    AllowPrivate,
}

impl TargetPolicy {
    pub fn allows(self, ip: IpAddr) -> bool {
        self == TargetPolicy::AllowPrivate || is_public(ip)
    }
}

/// Whether an address is on the public internet: not loopback, private, link-local,
/// shared (CGNAT), multicast, reserved or documentation space, in IPv4 or IPv6, including
/// IPv4 addresses written inside IPv6 ones.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8)) // documentation 2001:db8::/32
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
        || a >= 240) // reserved 240/4
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`)
/// or NAT64 (`64:ff9b::a.b.c.d`) IPv6 address.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified() {
        return Some(tail());
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail());
    }
    None
}

/// The host of an http(s) URL, as an address when it is one.
fn host_of(url: &reqwest::Url) -> Option<Host> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(Host::Ip(IpAddr::V4(v4))),
        url::Host::Ipv6(v6) => Some(Host::Ip(IpAddr::V6(v6))),
        url::Host::Domain(d) => Some(Host::Name(d.trim_end_matches('.').to_ascii_lowercase())),
    }
}

enum Host {
    Ip(IpAddr),
    Name(String),
}

/// Names that mean this machine whatever a resolver says.
fn is_local_name(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}

fn refused(field: &'static str) -> Invalid {
    Invalid::new(
        field,
        "This address is on a private or local network, which this server does not connect \
         to for organizations. Use a public address, or ask the administrator to start the \
         server with --allow-private-targets.",
    )
}

/// The check when an address is saved. `url` is already known to be http(s). A name is
/// resolved (briefly; a name that does not resolve now is accepted and checked again at
/// every connection) and refused when none of its addresses is allowed.
pub async fn check_saved(
    url: &str,
    policy: TargetPolicy,
    field: &'static str,
) -> Result<(), Invalid> {
    if policy == TargetPolicy::AllowPrivate {
        return Ok(());
    }
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Err(Invalid::new(
            field,
            "Enter a complete address, e.g. https://api.openai.com/v1.",
        ));
    };
    match host_of(&parsed) {
        None => Err(Invalid::new(field, "Enter an address with a host name.")),
        Some(Host::Ip(ip)) if !policy.allows(ip) => Err(refused(field)),
        Some(Host::Ip(_)) => Ok(()),
        Some(Host::Name(name)) if is_local_name(&name) => Err(refused(field)),
        Some(Host::Name(name)) => {
            let port = parsed.port_or_known_default().unwrap_or(443);
            let lookup = tokio::net::lookup_host((name.as_str(), port));
            match tokio::time::timeout(Duration::from_secs(3), lookup).await {
                Ok(Ok(addrs)) => {
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    if !addrs.is_empty() && !addrs.iter().any(|a| policy.allows(a.ip())) {
                        Err(refused(field))
                    } else {
                        Ok(())
                    }
                }
                _ => Ok(()),
            }
        }
    }
}

/// Why a connection was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0} is not a public address; this server connects only to public addresses for organizations"
)]
pub struct TargetRefused(pub String);

/// The check before a request is sent: a literal address in the URL is never resolved, so
/// the resolver cannot see it; names are left to [`PolicyResolver`].
pub fn check_request(url: &reqwest::Url, policy: TargetPolicy) -> Result<(), TargetRefused> {
    match host_of(url) {
        Some(Host::Ip(ip)) if !policy.allows(ip) => Err(TargetRefused(ip.to_string())),
        Some(Host::Name(name)) if policy == TargetPolicy::PublicOnly && is_local_name(&name) => {
            Err(TargetRefused(name))
        }
        _ => Ok(()),
    }
}

/// A DNS resolver for the HTTP client that drops the addresses the policy does not allow,
/// at connection time, so what is connected to is what was checked.
#[derive(Debug, Clone, Copy)]
pub struct PolicyResolver(pub TargetPolicy);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| policy.allows(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(
                    Box::new(TargetRefused(host)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_loopback_link_local_and_reserved_addresses_are_not_public() {
        for s in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
            "64:ff9b::192.168.0.1",
        ] {
            assert!(!is_public(ip(s)), "{s} counted as public");
            assert!(!TargetPolicy::PublicOnly.allows(ip(s)), "{s}");
            assert!(TargetPolicy::AllowPrivate.allows(ip(s)), "{s}");
        }
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "192.169.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
        ] {
            assert!(is_public(ip(s)), "{s} counted as not public");
        }
    }

    #[test]
    fn requests_to_literal_local_addresses_are_refused_before_they_are_sent() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        let strict = TargetPolicy::PublicOnly;
        for s in [
            "http://127.0.0.1:11434/v1",
            "http://[::1]/v1",
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:a9fe:a9fe]/",
            "http://localhost:8080/",
            "http://api.localhost/",
            "http://2130706433/", // 127.0.0.1 written as one number
            "http://0x7f.1/",
        ] {
            assert!(check_request(&url(s), strict).is_err(), "{s} allowed");
            assert!(check_request(&url(s), TargetPolicy::AllowPrivate).is_ok());
        }
        assert!(check_request(&url("https://api.openai.com/v1"), strict).is_ok());
        assert!(check_request(&url("http://8.8.8.8/"), strict).is_ok());
    }

    #[tokio::test]
    async fn saved_addresses_are_checked_by_what_they_name() {
        let strict = TargetPolicy::PublicOnly;
        for s in [
            "http://127.0.0.1:11434/v1",
            "http://localhost:11434/v1",
            "http://LOCALHOST./v1",
            "http://[fe80::1]/",
            "http://10.0.0.5/v1",
        ] {
            let e = check_saved(s, strict, "base_url").await.unwrap_err();
            assert_eq!(e.field, "base_url");
            assert!(e.reason.contains("--allow-private-targets"), "{e:?}");
        }
        assert!(
            check_saved("http://127.0.0.1/", TargetPolicy::AllowPrivate, "base_url")
                .await
                .is_ok()
        );
        assert!(
            check_saved("https://8.8.8.8/v1", strict, "base_url")
                .await
                .is_ok()
        );
        // A name that does not resolve now is checked again at every connection.
        assert!(
            check_saved("https://no-such-host.invalid/v1", strict, "base_url")
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn the_resolver_drops_addresses_the_policy_does_not_allow() {
        use reqwest::dns::Resolve;
        let name = |s: &str| s.parse::<reqwest::dns::Name>().unwrap();
        let refused = PolicyResolver(TargetPolicy::PublicOnly)
            .resolve(name("localhost"))
            .await;
        let Err(e) = refused else {
            panic!("localhost resolved under the public-only policy")
        };
        assert!(e.to_string().contains("not a public address"), "{e}");
        let allowed = PolicyResolver(TargetPolicy::AllowPrivate)
            .resolve(name("localhost"))
            .await
            .map_err(|e| e.to_string())
            .unwrap();
        assert!(allowed.into_iter().all(|a| a.ip().is_loopback()));
    }
}
