//! The audited API's base URL and the rule that keeps an audit on machines the user may test.

use std::net::IpAddr;

use url::Url;

use crate::AuditError;

/// The base URL of the audited API, checked and normalised (a trailing `/`).
#[derive(Debug, Clone)]
pub struct Target {
    base: Url,
}

impl Target {
    /// Parses `url`: `http` or `https`, a host, no credentials, no query or fragment.
    pub fn parse(url: &str) -> Result<Self, AuditError> {
        let mut base =
            Url::parse(url).map_err(|e| AuditError::Usage(format!("URL {url:?}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(AuditError::Usage(format!(
                "URL {url:?}: only http and https"
            )));
        }
        if base.host().is_none() {
            return Err(AuditError::Usage(format!("URL {url:?}: no host")));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(AuditError::Usage(
                "credentials do not go in the URL: use --credentials".into(),
            ));
        }
        base.set_query(None);
        base.set_fragment(None);
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Target { base })
    }

    /// The base URL (ends with `/`).
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `scheme://host:port` of the base.
    pub fn origin(&self) -> url::Origin {
        self.base.origin()
    }

    /// `path` (absolute, as in an OpenAPI document: `/items/1?q=x`) under the base URL's path.
    /// `None` when the result would leave the base's origin.
    pub fn url_for(&self, path: &str) -> Option<Url> {
        let relative = path.trim_start_matches('/');
        let url = self.base.join(relative).ok()?;
        (url.origin() == self.base.origin()).then_some(url)
    }

    /// Whether every address the host resolves to is loopback or private (RFC 1918, unique
    /// local, link-local): the targets scanned without `--allow-remote`.
    pub async fn is_private(&self) -> Result<bool, AuditError> {
        let host = match self.base.host() {
            Some(url::Host::Ipv4(ip)) => return Ok(is_private_ip(IpAddr::V4(ip))),
            Some(url::Host::Ipv6(ip)) => return Ok(is_private_ip(IpAddr::V6(ip))),
            Some(url::Host::Domain(name)) => name.to_owned(),
            None => return Ok(false),
        };
        let port = self.base.port_or_known_default().unwrap_or(80);
        let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| AuditError::Unreachable(format!("cannot resolve {host}: {e}")))?
            .collect();
        Ok(!addrs.is_empty() && addrs.iter().all(|a| is_private_ip(a.ip())))
    }

    /// Whether the host is a loopback address or `localhost`.
    pub fn is_loopback(&self) -> bool {
        match self.base.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            // `localhost` itself only: a resolver is not bound to send `*.localhost` to
            // loopback, and a loopback target's certificate is not verified (`probe`).
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        }
    }
}

/// Loopback, RFC 1918, link-local, CGNAT shared space, IPv6 unique local and link-local.
pub fn is_private_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_ip(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_stay_on_the_origin() {
        let t = Target::parse("http://127.0.0.1:8000/api").unwrap();
        assert_eq!(t.base().as_str(), "http://127.0.0.1:8000/api/");
        assert_eq!(
            t.url_for("/items/1?x=y").unwrap().as_str(),
            "http://127.0.0.1:8000/api/items/1?x=y"
        );
        assert!(t.url_for("http://evil.example/x").is_none());
        assert_eq!(
            t.url_for("//evil.example/x").unwrap().as_str(),
            "http://127.0.0.1:8000/api/evil.example/x"
        );
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("http://u:p@127.0.0.1/").is_err());
    }

    #[test]
    fn private_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "2001:db8::1", "::ffff:8.8.8.8"] {
            assert!(!is_private_ip(ip.parse().unwrap()), "{ip}");
        }
    }
}
