//! Who the client is, as far as the network can tell: the socket peer, or — only behind proxies
//! you trust — the address they forwarded.
//!
//! **Threat model.** `X-Forwarded-For` and `Forwarded` are ordinary request headers: any client
//! can send `X-Forwarded-For: 1.2.3.4` and, where a server believes it, pick its own rate-limit
//! key, dodge an IP ban or frame someone else. [`TrustedProxies::client_ip`] believes these
//! headers only when the socket peer is a trusted proxy (by CIDR), and then takes the
//! **right-most address that is not itself a trusted proxy**: entries to its left were written by
//! the client and prove nothing (this is why the left-most address, which some limiters use, is
//! spoofable).
//!
//! **One header, named by the deployer.** Only the header your proxy writes is read
//! ([`ForwardedHeader`]: `X-Forwarded-For` by default, or RFC 7239 `Forwarded`); the other family
//! is ignored whatever it says. A proxy appends to the header it knows and passes any other
//! header through untouched, so a server that read both (or preferred one) would let the client
//! pick its own address by sending the header the proxy does not write.
//!
//! **IPv6 networks.** One IPv6 customer is usually given a whole /64 (or more), so per-address
//! budgets would be unlimited: [`ip_group`] folds an IPv6 address to its network prefix
//! (`ipv6_prefix`, /64 by default) for every per-client limit.
//!
//! **Deployment.** List exactly the addresses of your own proxies / load balancers in
//! `trusted_proxies`, and name the header they write. A proxy that appends to `X-Forwarded-For`
//! (nginx `$proxy_add_x_forwarded_for`, most cloud load balancers) works as is. With no trusted
//! proxies the socket peer is the client — behind an untrusted proxy every client then shares the
//! proxy's address.

use std::{
    net::{IpAddr, SocketAddr},
    str::FromStr,
};

use axum::{
    extract::{ConnectInfo, FromRequestParts, Request},
    middleware::Next,
    response::Response,
};
use http::{HeaderMap, request::Parts};

/// An IP network in CIDR notation, such as `10.0.0.0/8` or `::1/128` (a bare address means one
/// host).
///
/// Client addresses in IPv4-mapped IPv6 form (`::ffff:10.0.0.1`, as dual-stack sockets report
/// IPv4 peers) count as IPv4, and so does a network written in that form with a prefix of at
/// least 96 bits: `::ffff:10.0.0.0/104` is `10.0.0.0/8`. A shorter IPv6 prefix is an IPv6
/// network and contains no IPv4 address: write IPv4 ranges in IPv4 form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// A CIDR that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR {0:?}: expected an address or address/prefix such as 10.0.0.0/8 or ::1/128")]
pub struct CidrError(pub String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CidrError(s.to_owned());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let network: IpAddr = addr.parse().map_err(|_| err())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| err())?,
            None => max,
        };
        if prefix > max {
            return Err(err());
        }
        // Addresses are compared in canonical form, so the network must be too: otherwise a
        // proxy listed as `::ffff:10.0.0.1` would never match its own (canonical IPv4) address.
        if let IpAddr::V6(v6) = network
            && let Some(v4) = v6.to_ipv4_mapped()
            && prefix >= 96
        {
            return Ok(Self {
                network: IpAddr::V4(v4),
                prefix: prefix - 96,
            });
        }
        Ok(Self { network, prefix })
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    /// From its text form ([`FromStr`]); the error names what is allowed.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Cidr {
    /// True when `ip` is inside this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The forwarding header believed from trusted proxies: exactly one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, ...` (the default: what nginx and most load balancers
    /// append to).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

/// A `forwarded_header` value that is neither `x-forwarded-for` nor `forwarded`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid forwarded header {0:?}: expected \"x-forwarded-for\" or \"forwarded\"")]
pub struct ForwardedHeaderError(pub String);

impl FromStr for ForwardedHeader {
    type Err = ForwardedHeaderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            _ => Err(ForwardedHeaderError(s.to_owned())),
        }
    }
}

impl<'de> serde::Deserialize<'de> for ForwardedHeader {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The address that stands for `ip` in per-client budgets: IPv4 addresses (and IPv4-mapped IPv6
/// ones) as they are, IPv6 addresses cut to their first `ipv6_prefix` bits (at most 128), since
/// one client usually holds a whole IPv6 network.
///
/// # Examples
/// ```
/// use bulwark::client_ip::ip_group;
/// let a = ip_group("2001:db8:1:2:aaaa::1".parse().unwrap(), 64);
/// let b = ip_group("2001:db8:1:2:bbbb::9".parse().unwrap(), 64);
/// assert_eq!(a, b);
/// assert_eq!(a, "2001:db8:1:2::".parse::<std::net::IpAddr>().unwrap());
/// assert_eq!(ip_group("203.0.113.7".parse().unwrap(), 64), "203.0.113.7".parse::<std::net::IpAddr>().unwrap());
/// ```
pub fn ip_group(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(ipv6_prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
        v4 => v4,
    }
}

/// The proxies whose forwarding headers are believed.
///
/// # Examples
/// ```
/// use bulwark::client_ip::TrustedProxies;
/// use http::HeaderMap;
///
/// let proxies = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
/// let mut headers = HeaderMap::new();
/// headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2".parse().unwrap());
/// // The peer is a trusted proxy: the right-most untrusted address is the client.
/// assert_eq!(proxies.client_ip("10.0.0.1".parse().unwrap(), &headers), "203.0.113.7".parse::<std::net::IpAddr>().unwrap());
/// // An untrusted peer's headers are ignored.
/// assert_eq!(proxies.client_ip("198.51.100.1".parse().unwrap(), &headers), "198.51.100.1".parse::<std::net::IpAddr>().unwrap());
/// ```
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Vec<Cidr>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// No trusted proxy: the socket peer is always the client.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses CIDRs.
    ///
    /// # Errors
    /// The first entry that does not parse.
    pub fn parse<S: AsRef<str>>(cidrs: &[S]) -> Result<Self, CidrError> {
        let networks = cidrs
            .iter()
            .map(|c| c.as_ref().parse())
            .collect::<Result<_, _>>()?;
        Ok(Self {
            networks,
            header: ForwardedHeader::default(),
        })
    }

    /// Trusts `networks` (already parsed, e.g. from configuration), believing
    /// `X-Forwarded-For` until [`TrustedProxies::with_header`] says otherwise.
    pub fn from_networks(networks: impl IntoIterator<Item = Cidr>) -> Self {
        Self {
            networks: networks.into_iter().collect(),
            header: ForwardedHeader::default(),
        }
    }

    /// Believes `header` (and only it) from the trusted proxies.
    #[must_use]
    pub fn with_header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// The one forwarding header read.
    pub fn header(&self) -> ForwardedHeader {
        self.header
    }

    /// True when `ip` is a trusted proxy.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(ip))
    }

    /// The client address for a request from `peer` with `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.is_trusted(peer) {
            return peer;
        }
        // Walk the forwarded chain from the right (nearest hop) to the left.
        let chain = forwarded_chain(headers, self.header);
        for ip in chain.iter().rev() {
            match ip {
                Some(ip) if self.is_trusted(*ip) => continue,
                Some(ip) => return *ip,
                // An entry we cannot parse (obfuscated, "unknown"): stop believing the chain
                // there; the last trusted hop is the best we know.
                None => break,
            }
        }
        chain
            .iter()
            .rev()
            .map_while(|ip| *ip)
            .last()
            .unwrap_or(peer)
    }
}

/// The addresses of the one header `which` (`for=` of `Forwarded`, or `X-Forwarded-For`), left
/// to right. Unparseable entries are `None`.
fn forwarded_chain(headers: &HeaderMap, which: ForwardedHeader) -> Vec<Option<IpAddr>> {
    match which {
        ForwardedHeader::Forwarded => headers
            .get_all(http::header::FORWARDED)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
            .map(|element| {
                element
                    .split(';')
                    .find_map(|pair| {
                        let (k, v) = pair.trim().split_once('=')?;
                        k.trim()
                            .eq_ignore_ascii_case("for")
                            .then(|| parse_node(v.trim().trim_matches('"')))
                    })
                    // An element without `for=` is a hop that did not say: stop believing there.
                    .flatten()
            })
            .collect(),
        ForwardedHeader::XForwardedFor => headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
            .map(|s| parse_node(s.trim()))
            .collect(),
    }
}

/// An address as forwarding headers write it: `1.2.3.4`, `1.2.3.4:80`, `[::1]`, `[::1]:80`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sock) = s.parse::<SocketAddr>() {
        return Some(canonical(sock.ip()));
    }
    s.strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
        .map(canonical)
}

/// The client's address, as resolved by [`resolve_client_ip`]; falls back to the socket peer.
///
/// A resolver only needs to record it when it differs from the peer (a trusted proxy forwarded
/// the request): without the extension, every reader ([`ClientIp::of`], the extractor, the rate
/// limiter) takes the peer's address from `ConnectInfo`, as the resolver would have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The client address of a request: its `ClientIp` extension, else the `ConnectInfo` peer
    /// (IPv4-mapped IPv6 addresses as IPv4), else `0.0.0.0`.
    pub fn of(extensions: &http::Extensions) -> Self {
        if let Some(ip) = extensions.get::<ClientIp>() {
            return *ip;
        }
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        ClientIp(canonical(peer))
    }

    /// Whether `ip`, resolved for a request from `peer`, needs recording as an extension: only
    /// when it is not the peer's own address, which readers fall back to.
    pub fn differs_from_peer(ip: IpAddr, peer: IpAddr) -> bool {
        ip != canonical(peer)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp::of(&parts.extensions))
    }
}

/// Middleware (for `axum::middleware::from_fn_with_state`) that resolves the client address once
/// and stores it as a [`ClientIp`] extension for the layers and handlers after it.
pub async fn resolve_client_ip(
    axum::extract::State(proxies): axum::extract::State<std::sync::Arc<TrustedProxies>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let ip = proxies.client_ip(peer, request.headers());
    request.extensions_mut().insert(ClientIp(ip));
    next.run(request).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn without_a_record_the_client_is_the_canonical_peer() {
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        let mut extensions = http::Extensions::new();
        assert_eq!(ClientIp::of(&extensions).0, IpAddr::from([0, 0, 0, 0]));
        extensions.insert(ConnectInfo(SocketAddr::new(mapped, 4000)));
        assert_eq!(ClientIp::of(&extensions).0, v4);
        // What a resolver finds for a direct client is the peer: nothing to record.
        let resolved = TrustedProxies::none().client_ip(mapped, &HeaderMap::new());
        assert!(!ClientIp::differs_from_peer(resolved, mapped));
        // A forwarded client is recorded, and wins over the peer.
        let forwarded: IpAddr = "198.51.100.9".parse().unwrap();
        assert!(ClientIp::differs_from_peer(forwarded, mapped));
        extensions.insert(ClientIp(forwarded));
        assert_eq!(ClientIp::of(&extensions).0, forwarded);
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_match() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.2.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped IPv6");
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8::1")));
        assert!(!v6.contains(ip("10.1.2.3")));
        let host: Cidr = "127.0.0.1".parse().unwrap();
        assert!(host.contains(ip("127.0.0.1")) && !host.contains(ip("127.0.0.2")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    /// Found by fuzzing (fuzz target `client_ip`): a network written in IPv4-mapped form did not
    /// contain its own address, since addresses are compared as IPv4.
    #[test]
    fn a_network_in_ipv4_mapped_form_counts_as_ipv4() {
        let host: Cidr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(host, "10.0.0.1".parse().unwrap());
        assert!(host.contains(ip("::ffff:10.0.0.1")) && host.contains(ip("10.0.0.1")));
        let net: Cidr = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(net, "10.0.0.0/8".parse().unwrap());
        assert!(net.contains(ip("10.9.9.9")) && !net.contains(ip("11.0.0.1")));
        // A shorter prefix is an IPv6 network: IPv4 clients are not in it.
        let v6: Cidr = "::ffff:10.0.0.0/64".parse().unwrap();
        assert!(!v6.contains(ip("10.0.0.1")) && v6.contains(ip("::1")));
        let proxies = TrustedProxies::parse(&["::ffff:10.0.0.1"]).unwrap();
        let h = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(
            proxies.client_ip(ip("::ffff:10.0.0.1"), &h),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        let h = headers(&[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")]);
        assert_eq!(proxies.client_ip(ip("203.0.113.9"), &h), ip("203.0.113.9"));
        assert_eq!(
            TrustedProxies::none().client_ip(ip("10.0.0.1"), &h),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_address_is_the_client() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8", "192.168.1.1"]).unwrap();
        // The client prepended a spoofed address; proxies appended the real one and themselves.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.4, 192.168.1.1")]);
        assert_eq!(proxies.client_ip(ip("10.0.0.5"), &h), ip("198.51.100.4"));
        // Several header lines form one list.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.4"),
        ]);
        assert_eq!(proxies.client_ip(ip("10.0.0.5"), &h), ip("198.51.100.4"));
        // RFC 7239 Forwarded, when it is the header named, with ports and IPv6 brackets.
        let h = headers(&[
            (
                "forwarded",
                "for=6.6.6.6, for=\"[2001:db8::7]:4711\";proto=https",
            ),
            ("x-forwarded-for", "9.9.9.9"),
        ]);
        let rfc7239 = proxies.clone().with_header(ForwardedHeader::Forwarded);
        assert_eq!(rfc7239.client_ip(ip("10.0.0.5"), &h), ip("2001:db8::7"));
        // Only proxies in the chain: the left-most of them is the best we know.
        let h = headers(&[("x-forwarded-for", "10.0.0.9, 10.0.0.8")]);
        assert_eq!(proxies.client_ip(ip("10.0.0.5"), &h), ip("10.0.0.9"));
        // No header: the proxy itself.
        assert_eq!(
            proxies.client_ip(ip("10.0.0.5"), &HeaderMap::new()),
            ip("10.0.0.5")
        );
        // Garbage stops the walk at the last good hop.
        let h = headers(&[("x-forwarded-for", "203.0.113.1, garbage, 10.0.0.7")]);
        assert_eq!(proxies.client_ip(ip("10.0.0.5"), &h), ip("10.0.0.7"));
    }

    /// Found in review: behind a proxy that appends to `X-Forwarded-For`, a client's own
    /// `Forwarded` header (passed through untouched) picked the client address.
    #[test]
    fn only_the_named_header_is_read_whatever_the_other_says() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        // nginx appended the real client to X-Forwarded-For; the client added Forwarded itself.
        let h = headers(&[
            ("forwarded", "for=1.2.3.4"),
            ("x-forwarded-for", "198.51.100.4"),
        ]);
        assert_eq!(
            proxies.header(),
            ForwardedHeader::XForwardedFor,
            "the default"
        );
        assert_eq!(proxies.client_ip(ip("10.0.0.5"), &h), ip("198.51.100.4"));
        // The other way round: a proxy that writes Forwarded; the client's X-Forwarded-For is
        // ignored.
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("forwarded", "for=198.51.100.4"),
        ]);
        let rfc7239 = proxies.clone().with_header(ForwardedHeader::Forwarded);
        assert_eq!(rfc7239.client_ip(ip("10.0.0.5"), &h), ip("198.51.100.4"));
        // Only the other header present: the proxy itself, not the client's claim.
        let h = headers(&[("forwarded", "for=1.2.3.4")]);
        assert_eq!(proxies.client_ip(ip("10.0.0.5"), &h), ip("10.0.0.5"));
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(rfc7239.client_ip(ip("10.0.0.5"), &h), ip("10.0.0.5"));
    }

    #[test]
    fn forwarded_header_names_parse() {
        assert_eq!(
            "X-Forwarded-For".parse::<ForwardedHeader>().unwrap(),
            ForwardedHeader::XForwardedFor
        );
        assert_eq!(
            "forwarded".parse::<ForwardedHeader>().unwrap(),
            ForwardedHeader::Forwarded
        );
        for bad in ["", "x-real-ip", "forwarded-for", "both"] {
            assert!(bad.parse::<ForwardedHeader>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_clients_are_grouped_by_prefix() {
        let a = ip("2001:db8:0:1:ffff:ffff:ffff:ffff");
        assert_eq!(ip_group(a, 64), ip("2001:db8:0:1::"));
        assert_eq!(ip_group(a, 48), ip("2001:db8::"));
        assert_eq!(ip_group(a, 128), a);
        assert_eq!(ip_group(a, 200), a, "over 128 is 128");
        assert_eq!(ip_group(a, 0), ip("::"));
        assert_eq!(ip_group(ip("::ffff:192.0.2.1"), 64), ip("192.0.2.1"));
        assert_eq!(
            ip_group(ip("192.0.2.1"), 0),
            ip("192.0.2.1"),
            "IPv4 is never grouped"
        );
    }
}
