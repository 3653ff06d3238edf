//! The other side of `hyperfabric bench`: the worker process the bench spawns, which hosts
//! one node and echoes what it gets until its stdin closes.
use super::bench::{node, protocol, read_all, send_direct};
use super::{bench_tcp, Api};
use hyperfabric::fabric::HyperFabricProtocol;
use hyperfabric::Error;
use std::io::Read;
use std::process::Command;

/// The command that starts the worker: this binary, run under the command in
/// `HF_BENCH_WORKER_PREFIX` when set (words split at white space, e.g. an instruction
/// counter: the worker's cost per message, which no clock on a shared machine measures as
/// steadily).
pub(super) fn worker_command() -> Result<Command, Error> {
    let exe = std::env::current_exe().map_err(|e| Error::io("locating the binary", e))?;
    let prefix = std::env::var("HF_BENCH_WORKER_PREFIX").unwrap_or_default();
    let mut words = prefix.split_whitespace();
    Ok(match words.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(words).arg(exe);
            c
        }
        None => Command::new(exe),
    })
}

/// The worker: hosts one node that echoes what it gets, until its stdin closes. `Send`:
/// a handler answers requests from the pinned engine thread; `Post`: the pinned main
/// thread receives and posts each message back to its source.
pub fn worker(
    fabric: &str,
    id: &str,
    core: usize,
    api: Api,
    (touch, drain, by_name): (bool, bool, bool),
    connect: Option<std::net::SocketAddr>,
) -> Result<(), Error> {
    let tcp = match connect {
        Some(_) => Some((bench_tcp::config(false), bench_tcp::key_from_env()?)),
        None => None,
    };
    let p = protocol(fabric, Some(core), tcp)?;
    p.register_node(node(id)?)?;
    if let Some(addr) = connect {
        p.connect_host(addr)?;
    }
    if matches!(api, Api::Post | Api::Direct | Api::Mem) {
        hyperfabric::sys::pin_current_thread(core)?;
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = open.clone();
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            flag.store(false, std::sync::atomic::Ordering::Release);
        });
        if api == Api::Direct {
            return direct_echo(&p, id, &open, touch);
        }
        println!("ready");
        if drain {
            // A stream: taken in batches, each message read in place.
            while open.load(std::sync::atomic::Ordering::Acquire) {
                match p.recv_batch(id, std::time::Duration::from_millis(100), 256, |m| {
                    if touch {
                        std::hint::black_box(read_all(m.data));
                    }
                }) {
                    Ok(_) => {}
                    Err(e) if e.kind() == hyperfabric::ErrorKind::Timeout => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(());
        }
        let mut back = None;
        // MPI_Recv style: into a buffer of the largest size.
        let mut buf =
            super::page_buf::PageBuf::new(hyperfabric::engine::MAX_MESSAGE.min(64 << 20), 0);
        let region = match api {
            // SAFETY: `buf` lives, unmoved, until after the region (declared after it).
            Api::Mem => {
                Some(unsafe { hyperfabric::buffer::MemoryRegion::new(buf.as_ptr(), buf.len()) }?)
            }
            _ => None,
        };
        let opts = hyperfabric::fabric::SendOptions::default();
        while open.load(std::sync::atomic::Ordering::Acquire) {
            match p.recv_into(id, std::time::Duration::from_millis(100), &mut buf) {
                Ok(m) => {
                    let got = &buf[..m.len];
                    if touch {
                        std::hint::black_box(read_all(got));
                    }
                    if back.is_none() {
                        back = Some(p.endpoint(id, &m.source)?);
                    }
                    let back = back.as_mut().expect("made above");
                    match &region {
                        // The buffer is received into again only once the echo is copied.
                        Some(r) => back.post_mem(r, 0, m.len, &opts)?.wait().map(drop)?,
                        None if by_name => p.post(id, &m.source, got, &opts)?,
                        None => back.post(got)?,
                    }
                }
                Err(e) if e.kind() == hyperfabric::ErrorKind::Timeout => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(());
    }
    // The echo is written into the engine's answer buffer (no allocation per request).
    p.on_request(id, move |m, reply| {
        if touch {
            std::hint::black_box(read_all(&m.data));
        }
        if !m.one_way {
            reply.write(&m.data);
        }
        Ok(())
    })?;
    p.start_background_services()?;
    println!("ready");
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    Ok(())
}

/// The direct-channel echo: every message goes back to `bench-a` at its size, inline or
/// as a buffer of this process's pool, without touching the bytes.
fn direct_echo(
    p: &HyperFabricProtocol,
    id: &str,
    open: &std::sync::atomic::AtomicBool,
    touch: bool,
) -> Result<(), Error> {
    use hyperfabric::transport::direct::{max_inline, Received};
    let mut rx = p.open_receiver(id)?;
    let mut tx = None;
    let mut pools: std::collections::HashMap<usize, hyperfabric::buffer::BufferManager> =
        Default::default();
    let zeros = vec![0u8; max_inline()];
    println!("ready");
    let mut idle = 0u32;
    loop {
        let got = rx.try_recv_with(|_, m| {
            if touch {
                std::hint::black_box(read_all(m.bytes()));
            }
            match m {
                Received::Inline(b) => (b.len(), false),
                Received::Buffer(b) => (b.len(), true),
            }
        });
        let Some((len, buffer)) = got else {
            idle = idle.wrapping_add(1);
            if idle % 4096 == 0 && !open.load(std::sync::atomic::Ordering::Acquire) {
                break;
            }
            std::hint::spin_loop();
            continue;
        };
        idle = 0;
        if tx.is_none() {
            tx = Some(p.open_sender(id, "bench-a")?);
        }
        let tx = tx.as_mut().expect("opened above");
        let pool = if buffer {
            let size = len.next_power_of_two();
            Some(match pools.entry(size) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(p.create_buffer_manager(16, size)?)
                }
            })
        } else {
            None
        };
        send_direct(tx, pool.map(|p| &*p), len, &zeros, touch)?;
    }
    Ok(())
}
