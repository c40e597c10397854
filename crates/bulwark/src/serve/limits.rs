//! Caps on open connections: in all, and per client network.
//!
//! **Threat model.** Every open connection holds a socket, a task and buffers. One client that
//! opens thousands of them (even ones that each behave) starves everyone else; the caps refuse a
//! connection past them at once, before a TLS handshake or any parsing is spent on it, and leave
//! the connections already open alone. Per-client counts are kept per socket peer, IPv6 peers
//! grouped by network ([`crate::client_ip::ip_group`]); a trusted proxy, which carries many
//! clients on its connections, counts only against the total.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
};

use crate::client_ip::{TrustedProxies, ip_group};

/// Caps on open connections (the contract's defaults: 4096 in all, 128 per client network).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Open connections in all.
    pub max_connections: usize,
    /// Open connections per client network (see `ipv6_prefix`); peers in `exempt` count only
    /// against `max_connections`.
    pub max_connections_per_ip: usize,
    /// IPv6 peers are grouped by networks of this prefix length.
    pub ipv6_prefix: u8,
    /// Peers with no per-client cap: your own proxies.
    pub exempt: TrustedProxies,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_connections_per_ip: 128,
            ipv6_prefix: 64,
            exempt: TrustedProxies::none(),
        }
    }
}

/// The open connections of one listener.
#[derive(Debug)]
pub(crate) struct ConnectionCounter {
    limits: ConnectionLimits,
    open: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

impl ConnectionCounter {
    pub(crate) fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: Mutex::new(Counts::default()),
        })
    }

    /// A permit for a new connection from `peer`, or `None` when a cap is reached. The
    /// connection counts until the permit is dropped.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<ConnectionPermit> {
        let client =
            (!self.limits.exempt.is_trusted(peer)).then(|| ip_group(peer, self.limits.ipv6_prefix));
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.limits.max_connections {
            return None;
        }
        if let Some(client) = client {
            let count = open.per_client.entry(client).or_default();
            if *count >= self.limits.max_connections_per_ip {
                return None;
            }
            *count += 1;
        }
        open.total += 1;
        Some(ConnectionPermit {
            counter: Arc::clone(self),
            client,
        })
    }
}

/// One open connection, counted until dropped.
#[derive(Debug)]
pub(crate) struct ConnectionPermit {
    counter: Arc<ConnectionCounter>,
    client: Option<IpAddr>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self
            .counter
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total -= 1;
        if let Some(client) = self.client
            && let Some(count) = open.per_client.get_mut(&client)
        {
            *count -= 1;
            if *count == 0 {
                open.per_client.remove(&client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn caps_hold_per_client_network_and_in_all_and_free_on_drop() {
        let counter = ConnectionCounter::new(ConnectionLimits {
            max_connections: 5,
            max_connections_per_ip: 2,
            ipv6_prefix: 64,
            exempt: TrustedProxies::parse(&["10.0.0.1"]).unwrap(),
        });
        let a1 = counter.admit(ip("192.0.2.1")).unwrap();
        let _a2 = counter.admit(ip("192.0.2.1")).unwrap();
        assert!(counter.admit(ip("192.0.2.1")).is_none(), "per client");
        // One /64 is one client.
        let _b1 = counter.admit(ip("2001:db8::1")).unwrap();
        let _b2 = counter.admit(ip("2001:db8::ffff:2")).unwrap();
        assert!(counter.admit(ip("2001:db8::3")).is_none(), "per /64");
        // A trusted proxy only counts in all.
        let _p1 = counter.admit(ip("10.0.0.1")).unwrap();
        assert!(counter.admit(ip("10.0.0.1")).is_none(), "in all");
        assert!(counter.admit(ip("198.51.100.1")).is_none(), "in all");
        drop(a1);
        let _a3 = counter.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(counter.open.lock().unwrap().total, 5);
    }
}
