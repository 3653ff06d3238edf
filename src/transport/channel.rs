//! Channels between two nodes on one host: for each direction a latency-lane ring and a
//! bulk-lane ring, each a file `ch-<src>-<dst>-<lane>` in the fabric directory, created by
//! the sending side and opened by the receiving side.

use std::path::{Path, PathBuf};

/// The two lanes of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// ULTRA_HIGH, HIGH, MEDIUM: drained first.
    Latency,
    /// LOW, BULK: fragmented, drained after the latency lane.
    Bulk,
}

impl Lane {
    fn tag(self) -> char {
        match self {
            Lane::Latency => 'l',
            Lane::Bulk => 'b',
        }
    }
}

/// Path of the ring carrying `src` → `dst` on `lane`.
pub fn ring_path(dir: &Path, src: u32, dst: u32, lane: Lane) -> PathBuf {
    dir.join(format!("ch-{src}-{dst}-{}", lane.tag()))
}

/// Parses a ring file name into (src, dst, lane).
pub fn parse_ring_name(name: &str) -> Option<(u32, u32, Lane)> {
    let mut it = name.strip_prefix("ch-")?.split('-');
    let src = it.next()?.parse().ok()?;
    let dst = it.next()?.parse().ok()?;
    let lane = match it.next()? {
        "l" => Lane::Latency,
        "b" => Lane::Bulk,
        _ => return None,
    };
    it.next().is_none().then_some((src, dst, lane))
}

/// Deletes every ring file that starts or ends at one of `nodes`.
pub fn remove_channel_files(dir: &Path, nodes: &[u32]) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        if let Some((src, dst, _)) = name.to_str().and_then(parse_ring_name) {
            if nodes.contains(&src) || nodes.contains(&dst) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_cleanup_matches_both_ends() {
        let dir = tempfile::tempdir().unwrap();
        for (s, d, l) in [
            (1, 2, Lane::Latency),
            (2, 1, Lane::Bulk),
            (3, 4, Lane::Latency),
        ] {
            let p = ring_path(dir.path(), s, d, l);
            assert_eq!(
                parse_ring_name(p.file_name().unwrap().to_str().unwrap()),
                Some((s, d, l))
            );
            std::fs::write(p, b"").unwrap();
        }
        std::fs::write(dir.path().join("registry"), b"").unwrap();
        assert_eq!(parse_ring_name("ch-1-2-x"), None);
        assert_eq!(parse_ring_name("ch-1-2-l-9"), None);
        remove_channel_files(dir.path(), &[1]);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["ch-3-4-l", "registry"]);
    }
}
