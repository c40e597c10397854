//! Client address resolution (`bulwark::client_ip`): CIDR parsing, `Forwarded` and
//! `X-Forwarded-For` with arbitrary values and trusted-proxy sets.
//!
//! Input: byte 0 is ignored (kept so every target's seeds share one layout); then text lines:
//! line 1 the trusted proxies, comma-separated CIDRs; line 2 the socket peer; the other lines
//! `Name: value` request headers.
//!
//! Properties: never a panic; a CIDR that parses contains the address it was written with; an
//! untrusted peer is always the client; otherwise the client is the peer or an address written
//! in a forwarding header; without forwarding headers it is the peer.
#![no_main]

#[path = "common.rs"]
mod common;

use std::net::{IpAddr, SocketAddr};

use bulwark::client_ip::{Cidr, TrustedProxies};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

/// IPv4-mapped IPv6 addresses count as IPv4, as in the library.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Every address written anywhere in the forwarding headers, however it is wrapped.
fn written_addresses(headers: &HeaderMap) -> Vec<IpAddr> {
    let mut found = Vec::new();
    for name in ["forwarded", "x-forwarded-for"] {
        for value in headers.get_all(name) {
            let text = String::from_utf8_lossy(value.as_bytes());
            for word in text.split([',', ';', '=', '"', ' ', '\t', '[', ']']) {
                let ip = word
                    .parse::<IpAddr>()
                    .ok()
                    .or_else(|| word.parse::<SocketAddr>().ok().map(|s| s.ip()));
                found.extend(ip.map(canonical));
            }
            // `[v6]:port` loses its port only once the brackets are kept together.
            for word in text.split([',', ';', '=', '"', ' ', '\t']) {
                found.extend(word.parse::<SocketAddr>().ok().map(|s| canonical(s.ip())));
            }
        }
    }
    found
}

fn peer_of(line: &str, fallback: u8) -> IpAddr {
    line.trim().parse().unwrap_or_else(|_| {
        // A peer that is not an address: pick one that a typical trusted set may hold.
        [
            IpAddr::from([10, 0, 0, 1]),
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from([203, 0, 113, 9]),
            "::1".parse().expect("ip"),
            "::ffff:10.0.0.2".parse().expect("ip"),
        ][usize::from(fallback) % 5]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(&first) = data.first() else {
        return;
    };
    let text = common::text(data);
    let mut lines = text.lines();
    let cidrs: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .filter(|c| !c.trim().is_empty())
        .collect();
    for c in &cidrs {
        if let Ok(cidr) = c.parse::<Cidr>() {
            let (addr, prefix) = c.trim().split_once('/').unwrap_or((c.trim(), "128"));
            let addr: IpAddr = addr.parse().expect("a parsed CIDR's address parses");
            let prefix: u8 = prefix.parse().expect("a parsed CIDR's prefix parses");
            // An IPv4-mapped address in an IPv6 network shorter than /96 counts as IPv4, which
            // such a network does not contain (documented on `Cidr`).
            let mapped_in_v6 = addr.is_ipv6() && canonical(addr).is_ipv4() && prefix < 96;
            assert!(
                mapped_in_v6 || cidr.contains(addr),
                "{c:?} does not contain its own address"
            );
        }
    }
    let proxies = TrustedProxies::parse(&cidrs).unwrap_or_else(|_| {
        // Keep the entries that parse, so the rest of the input is still exercised.
        let good: Vec<&str> = cidrs
            .iter()
            .copied()
            .filter(|c| c.parse::<Cidr>().is_ok())
            .collect();
        TrustedProxies::parse(&good).expect("entries that parse alone parse together")
    });
    let peer = peer_of(lines.next().unwrap_or_default(), first);
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_bytes(value.trim().as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    let client = proxies.client_ip(peer, &headers);
    let peer = canonical(peer);
    if !proxies.is_trusted(peer) {
        assert_eq!(client, peer, "an untrusted peer's headers were believed");
        return;
    }
    if client != peer {
        let written = written_addresses(&headers);
        assert!(
            written.contains(&client),
            "client {client} is neither the peer {peer} nor in the headers {headers:?}"
        );
    }
});
