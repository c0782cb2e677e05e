//! What this process holds: resident memory, threads and open file descriptors.

#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    pub rss: u64,
    pub threads: u64,
}

pub fn snapshot() -> Snapshot {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/self/status"))
    };
    Snapshot {
        rss: field("VmRSS:") * 1024,
        threads: field("Threads:"),
    }
}

/// Connections Baton (listening on `port`) still holds: established, or closed by the client
/// but not yet by Baton (CLOSE_WAIT, a leak if it stays).
pub fn open_server_connections(port: u16) -> usize {
    let mut open = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            let local_port = local.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && matches!(*state, "01" | "08") {
                open += 1;
            }
        }
    }
    open
}
