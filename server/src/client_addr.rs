//! Which address a request really came from, for the sign-in throttle and its log lines.
//!
//! Behind a reverse proxy or a Kubernetes Ingress every connection comes from the proxy, so a throttle
//! keyed on the TCP peer counts everyone's failures as one client's: five wrong passwords from anyone
//! locked every reviewer out, and one more every few minutes kept them out. With `trusted_proxies` set, a
//! connection from one of those addresses is attributed to the address its `X-Forwarded-For` names: the
//! rightmost entry that is not itself a trusted proxy (each proxy appends the address it saw, so entries
//! to the left of the first untrusted one are the client's own claims and may be forged). A connection from
//! anywhere else is its own peer address, whatever headers it sends: without trusted proxies the header is
//! never read, so a client cannot spread its failures over invented addresses.

use std::net::IpAddr;

use anyhow::bail;
use axum::http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed (`trusted_proxies`: addresses or CIDR ranges).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses the configured entries; a bad one is an error naming the key and the entry.
    pub fn parse(entries: &[String]) -> anyhow::Result<TrustedProxies> {
        let mut nets = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let e = e.trim();
            let net = match (e.parse::<IpNet>(), e.parse::<IpAddr>()) {
                (Ok(net), _) => net.trunc(),
                (_, Ok(ip)) => IpNet::from(ip),
                _ => bail!(
                    "configuration key `trusted_proxies[{i}]`: {e:?} is neither an IP address nor a CIDR \
                     range (e.g. 10.0.0.0/8)"
                ),
            };
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy and `X-Forwarded-For` names
    /// an untrusted hop before it. A header that does not parse leaves the peer's address (the proxy's):
    /// failures then count against the proxy, as they did before this was configurable.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let mut hops = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            let Ok(value) = value.to_str() else { return peer };
            for hop in value.split(',') {
                match parse_hop(hop.trim()) {
                    Some(ip) => hops.push(ip),
                    None => return peer,
                }
            }
        }
        hops.into_iter().rev().find(|ip| !self.trusts(*ip)).unwrap_or(peer)
    }
}

/// One `X-Forwarded-For` entry: an address, IPv6 possibly in brackets, either possibly with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sock) = hop.parse::<std::net::SocketAddr>() {
        return Some(canonical(sock.ip()));
    }
    hop.strip_prefix('[')?.strip_suffix(']')?.parse::<IpAddr>().ok().map(canonical)
}

/// An IPv4 address seen through a dual-stack socket (`::ffff:a.b.c.d`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_never_believed() {
        let none = TrustedProxies::default();
        assert_eq!(none.client_ip(ip("10.1.2.3"), &xff(&["203.0.113.9"])), ip("10.1.2.3"));
    }

    #[test]
    fn a_trusted_proxy_is_seen_through_to_the_rightmost_untrusted_hop() {
        let p = proxies(&["10.0.0.0/8", "192.0.2.1"]);
        // client -> 192.0.2.1 (edge proxy) -> 10.4.0.7 (ingress) -> server; the client claims 198.51.100.1.
        let h = xff(&["198.51.100.1, 203.0.113.9", "192.0.2.1"]);
        assert_eq!(p.client_ip(ip("10.4.0.7"), &h), ip("203.0.113.9"), "the forged left entry is skipped");
        assert_eq!(p.client_ip(ip("10.4.0.7"), &xff(&["203.0.113.9:51234"])), ip("203.0.113.9"));
        assert_eq!(p.client_ip(ip("10.4.0.7"), &xff(&["[2001:db8::5]:443"])), ip("2001:db8::5"));
        assert_eq!(p.client_ip(ip("::ffff:10.4.0.7"), &xff(&["::ffff:203.0.113.9"])), ip("203.0.113.9"));
    }

    #[test]
    fn an_untrusted_peer_is_its_own_address_whatever_it_sends() {
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(p.client_ip(ip("203.0.113.9"), &xff(&["198.51.100.1"])), ip("203.0.113.9"));
    }

    #[test]
    fn a_missing_unparsable_or_all_trusted_header_leaves_the_proxy() {
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(p.client_ip(ip("10.4.0.7"), &HeaderMap::new()), ip("10.4.0.7"));
        assert_eq!(p.client_ip(ip("10.4.0.7"), &xff(&["unknown"])), ip("10.4.0.7"));
        assert_eq!(p.client_ip(ip("10.4.0.7"), &xff(&["203.0.113.9, garbage"])), ip("10.4.0.7"));
        assert_eq!(p.client_ip(ip("10.4.0.7"), &xff(&["10.9.9.9"])), ip("10.4.0.7"));
    }

    #[test]
    fn entries_are_addresses_or_ranges_and_a_bad_one_is_named() {
        let p = proxies(&["127.0.0.1", " ::1 ", "10.1.2.3/8"]);
        assert!(p.trusts(ip("10.200.0.1")), "a range written with host bits set covers its network");
        assert!(p.trusts(ip("::1")) && p.trusts(ip("127.0.0.1")) && !p.trusts(ip("127.0.0.2")));
        let e = TrustedProxies::parse(&["10.0.0.0/8".into(), "ingress".into()]).unwrap_err().to_string();
        assert!(e.contains("trusted_proxies[1]") && e.contains("\"ingress\""), "{e}");
    }
}
