//! The handshakes in progress of a listening protocol: at most [`HANDSHAKES`] at once, each
//! on a thread of its own. When a connection comes while all are taken, the oldest unfinished
//! one is cut off to make room (its socket shut down, so its thread ends at once), as a
//! listen queue drops its oldest half-open connections under a flood: someone who keeps
//! connections open without a word then delays a peer that holds the key by no more than
//! the time it takes to open [`HANDSHAKES`] more connections, instead of locking it out.

use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Handshakes in progress at most.
pub(super) const HANDSHAKES: usize = 64;

/// One handshake in progress.
struct Pending {
    id: u64,
    from: SocketAddr,
    since: Instant,
    /// The connection (a second handle), to cut it off.
    stream: TcpStream,
}

/// The handshakes in progress.
#[derive(Default, Clone)]
pub(super) struct Handshakes {
    list: Arc<Mutex<(u64, Vec<Pending>)>>,
}

/// A handshake's place, given up when dropped (however its thread ends).
pub(super) struct Place {
    list: Arc<Mutex<(u64, Vec<Pending>)>>,
    id: u64,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut l = self.list.lock().unwrap_or_else(|e| e.into_inner());
        l.1.retain(|p| p.id != self.id);
    }
}

impl Handshakes {
    /// A place for the handshake of `stream` (from `from`), and, when all were taken, the
    /// address of the handshake cut off to make room and how long it had taken. `None`
    /// when the connection cannot be watched (no second handle for it).
    pub(super) fn enter(
        &self,
        stream: &TcpStream,
        from: SocketAddr,
    ) -> Option<(Place, Option<(SocketAddr, std::time::Duration)>)> {
        let handle = stream.try_clone().ok()?;
        let mut l = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let mut cut = None;
        if l.1.len() >= HANDSHAKES {
            // The list is in arrival order: the first is the oldest.
            let old = l.1.remove(0);
            let _ = old.stream.shutdown(std::net::Shutdown::Both);
            cut = Some((old.from, old.since.elapsed()));
        }
        l.0 += 1;
        let id = l.0;
        l.1.push(Pending {
            id,
            from,
            since: Instant::now(),
            stream: handle,
        });
        let place = Place {
            list: self.list.clone(),
            id,
        };
        Some((place, cut))
    }

    /// Handshakes in progress.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.list.lock().unwrap_or_else(|e| e.into_inner()).1.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    #[test]
    fn the_oldest_handshake_is_cut_off_to_make_room() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = Handshakes::default();
        let mut clients = Vec::new();
        let mut places = Vec::new();
        for _ in 0..HANDSHAKES {
            clients.push(TcpStream::connect(addr).unwrap());
            let (s, from) = l.accept().unwrap();
            let (place, cut) = h.enter(&s, from).unwrap();
            assert!(cut.is_none());
            places.push((place, s));
        }
        assert_eq!(h.len(), HANDSHAKES);
        let _late = TcpStream::connect(addr).unwrap();
        let (s, from) = l.accept().unwrap();
        let (place, cut) = h.enter(&s, from).unwrap();
        let (first_from, _) = cut.expect("one was cut off");
        assert_eq!(first_from, clients[0].local_addr().unwrap());
        // The first client sees its connection end.
        let mut buf = [0u8; 1];
        assert_eq!(clients[0].read(&mut buf).unwrap(), 0);
        assert_eq!(h.len(), HANDSHAKES);
        drop(place);
        drop(places);
        assert_eq!(h.len(), 0);
    }
}
