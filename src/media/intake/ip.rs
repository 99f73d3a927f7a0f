//! Which IP addresses a caller-supplied URL may make lumagate connect to.
//!
//! The rule is "globally reachable unicast only": loopback, private, link-local,
//! shared (CGNAT), cloud-metadata, unspecified, broadcast, multicast, documentation
//! and other reserved ranges are refused, and so are IPv6 forms that embed a refused
//! IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why `ip` must not be fetched from, or `None` when it is a public address.
///
/// The reason is a short phrase for error messages ("loopback", "private", ...).
pub fn blocked_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

/// `ip` with IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) turned into IPv4,
/// so that allow lists and comparisons see one form.
pub(super) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// `Ok` when `ip` may be reached: it is in `allow` (the explicit exception list,
/// compared in canonical form) or it is a public address.
pub(super) fn check(ip: IpAddr, allow: &[IpAddr]) -> Result<(), &'static str> {
    let ip = canonical(ip);
    if allow.iter().any(|a| canonical(*a) == ip) {
        return Ok(());
    }
    match blocked_reason(ip) {
        Some(reason) => Err(reason),
        None => Ok(()),
    }
}

fn blocked_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, d] = ip.octets();
    let reason = match (a, b, c, d) {
        (0, 0, 0, 0) => "unspecified",
        (0, ..) => "this-network range 0.0.0.0/8",
        (127, ..) => "loopback",
        (10, ..) => "private",
        (172, 16..=31, ..) => "private",
        (192, 168, ..) => "private",
        (169, 254, 169, 254) => "cloud metadata",
        (169, 254, ..) => "link-local",
        (100, 100, 100, 200) => "cloud metadata",
        (100, 64..=127, ..) => "shared address space (CGNAT)",
        (255, 255, 255, 255) => "broadcast",
        (224..=239, ..) => "multicast",
        (240..=255, ..) => "reserved",
        (192, 0, 0, _) => "reserved (IETF protocol assignments)",
        (192, 0, 2, _) | (198, 51, 100, _) | (203, 0, 113, _) => "documentation range",
        (198, 18..=19, ..) => "benchmarking range",
        (192, 88, 99, _) => "reserved (6to4 relay anycast)",
        _ => return None,
    };
    Some(reason)
}

fn blocked_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        // ::ffff:a.b.c.d reaches the IPv4 address itself.
        return blocked_v4(v4);
    }
    let s = ip.segments();
    let embedded_v4 =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if s[..6] == [0, 0, 0, 0, 0, 0] {
        // ::a.b.c.d, deprecated IPv4-compatible form: never a legitimate target.
        return Some(blocked_v4(embedded_v4(s[6], s[7])).unwrap_or("reserved (IPv4-compatible)"));
    }
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        return Some("cloud metadata");
    }
    let reason = match s[0] {
        0xfc00..=0xfdff => "private (unique local)",
        0xfe80..=0xfebf => "link-local",
        0xfec0..=0xfeff => "site-local",
        0xff00..=0xffff => "multicast",
        // NAT64 well-known prefix 64:ff9b::/96 translates to the embedded IPv4 address.
        0x0064 if s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] => {
            return blocked_v4(embedded_v4(s[6], s[7]));
        }
        0x0064 if s[1] == 0xff9b && s[2] == 0x0001 => "reserved (local-use NAT64)",
        0x0100 if s[1..4] == [0, 0, 0] => "discard-only range",
        0x2001 if s[1] == 0x0db8 => "documentation range",
        0x2001 if s[1] == 0x0000 => "Teredo tunnel",
        // 6to4: 2002:a.b.c.d::/48 reaches the embedded IPv4 address.
        0x2002 => return blocked_v4(embedded_v4(s[1], s[2])),
        _ => return None,
    };
    Some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(s: &str) -> Option<&'static str> {
        blocked_reason(s.parse().unwrap())
    }

    #[test]
    fn refuses_non_public_ipv4() {
        let cases = [
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "this-network range 0.0.0.0/8"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("100.100.100.200", "cloud metadata"),
            ("100.64.0.1", "shared address space (CGNAT)"),
            ("100.127.255.255", "shared address space (CGNAT)"),
            ("255.255.255.255", "broadcast"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("192.0.0.8", "reserved (IETF protocol assignments)"),
            ("192.0.2.1", "documentation range"),
            ("198.51.100.7", "documentation range"),
            ("203.0.113.9", "documentation range"),
            ("198.18.0.1", "benchmarking range"),
        ];
        for (ip, want) in cases {
            assert_eq!(reason(ip), Some(want), "{ip}");
        }
    }

    #[test]
    fn allows_public_ipv4() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.1.1",
            "192.169.0.1",
            "11.0.0.1",
            "223.255.255.254",
        ] {
            assert_eq!(reason(ip), None, "{ip}");
        }
    }

    #[test]
    fn refuses_non_public_ipv6() {
        let cases = [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.1.2.3", "private"),
            ("::ffff:169.254.169.254", "cloud metadata"),
            ("::127.0.0.1", "loopback"),
            ("::8.8.8.8", "reserved (IPv4-compatible)"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fc00::1", "private (unique local)"),
            ("fdff:ffff::1", "private (unique local)"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("64:ff9b::127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "cloud metadata"),
            ("64:ff9b:1::1", "reserved (local-use NAT64)"),
            ("100::1", "discard-only range"),
            ("2001:db8::1", "documentation range"),
            ("2001::1", "Teredo tunnel"),
            ("2002:7f00:1::", "loopback"),
            ("2002:c0a8:101::1", "private"),
        ];
        for (ip, want) in cases {
            assert_eq!(reason(ip), Some(want), "{ip}");
        }
    }

    #[test]
    fn allows_public_ipv6() {
        for ip in [
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(reason(ip), None, "{ip}");
        }
    }

    #[test]
    fn allow_list_is_exact_and_canonical() {
        let allow: Vec<IpAddr> = vec!["127.0.0.2".parse().unwrap()];
        assert_eq!(check("127.0.0.2".parse().unwrap(), &allow), Ok(()));
        assert_eq!(check("::ffff:127.0.0.2".parse().unwrap(), &allow), Ok(()));
        assert_eq!(check("127.0.0.1".parse().unwrap(), &allow), Err("loopback"));
        assert_eq!(check("::1".parse().unwrap(), &allow), Err("loopback"));
        assert_eq!(check("8.8.8.8".parse().unwrap(), &[]), Ok(()));
    }
}
