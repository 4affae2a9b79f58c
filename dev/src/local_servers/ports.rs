//! Ports for private servers.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::Mutex;

use anyhow::bail;

/// A port for a private server, free now, that nothing else should take before the server
/// binds it: not one the kernel gives out (a port bound to `:0` is one every outgoing
/// connection may get as its local port meanwhile), but one below that range, and never the
/// same twice in this process (tests start servers in parallel).
pub fn free_port() -> anyhow::Result<u16> {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let low = ephemeral_low.saturating_sub(10_000).max(1_024);
    let span = u32::from(ephemeral_low - low);
    // Another process doing the same starts elsewhere in the span.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let start = (std::process::id() ^ nanos) % span;
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for offset in 0..span {
        let port = low + ((start + offset) % span) as u16;
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return Ok(port);
        }
    }
    bail!("no free port in {low}..{ephemeral_low}")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    #[test]
    fn ports_are_below_the_ephemeral_range_and_never_given_twice() {
        let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|range| range.split_whitespace().next()?.parse().ok())
            .unwrap_or(32_768);
        let ports: BTreeSet<u16> = (0..50)
            .map(|_| super::free_port().expect("a port"))
            .collect();
        assert_eq!(ports.len(), 50);
        assert!(ports.iter().all(|port| *port < low), "{ports:?}");
    }
}
