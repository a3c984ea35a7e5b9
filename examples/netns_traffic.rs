//! Traffic for `scripts/bench-inline.sh` (run inside the testbed's namespaces
//! with `ip netns exec`). Every mode is bounded by SECS; results are printed
//! on stdout as one number.
//!
//!   netns_traffic tcp-sink  ADDR:PORT SECS   accepts connections for SECS; answers each with the byte count read
//!   netns_traffic bulk      ADDR:PORT SECS   one connection, sends for SECS, prints Gbit/s
//!   netns_traffic conns     ADDR:PORT SECS   connect, send 100 bytes, close, repeat for SECS; prints connections/s
//!   netns_traffic udp-sink  ADDR:PORT SECS   counts datagrams for up to SECS; prints packets/s
//!   netns_traffic udp-flood ADDR:PORT SECS   sends 64-byte datagrams for SECS
//!   netns_traffic rr-server ADDR:PORT SECS   answers each 64-byte request with 64 bytes, one connection
//!   netns_traffic rr        ADDR:PORT SECS   3,000 64-byte round trips on one connection (at most SECS);
//!                                            prints the median and the 99th percentile in µs

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: netns_traffic MODE ADDR:PORT SECS");
        std::process::exit(2);
    }
    let addr: SocketAddr = args[2].parse().unwrap_or_else(|e| fail(&format!("address {}: {e}", args[2])));
    let secs: f64 = args[3].parse().unwrap_or_else(|e| fail(&format!("seconds {}: {e}", args[3])));
    let limit = Duration::from_secs_f64(secs);
    let result = match args[1].as_str() {
        "tcp-sink" => tcp_sink(addr, limit),
        "bulk" => bulk(addr, limit),
        "conns" => conns(addr, limit),
        "udp-sink" => udp_sink(addr, limit),
        "udp-flood" => udp_flood(addr, limit),
        "rr-server" => rr_server(addr, limit),
        "rr" => match rr(addr, limit) {
            Ok((median, p99)) => {
                println!("{median:.1} {p99:.1}");
                return;
            }
            Err(e) => fail(&e.to_string()),
        },
        m => fail(&format!("unknown mode {m}")),
    };
    match result {
        Ok(v) => println!("{v:.3}"),
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("netns_traffic: {msg}");
    std::process::exit(1)
}

fn timeouts(s: &TcpStream) -> std::io::Result<()> {
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))
}

/// Serves connections one at a time until `limit` has passed.
fn tcp_sink(addr: SocketAddr, limit: Duration) -> std::io::Result<f64> {
    let l = TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    let deadline = Instant::now() + limit;
    let mut served = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    while Instant::now() < deadline {
        let mut s = match l.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            Err(e) => return Err(e),
        };
        s.set_nonblocking(false)?;
        timeouts(&s)?;
        let mut n = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => n += k as u64,
                Err(_) => break,
            }
        }
        let _ = s.write_all(&n.to_be_bytes());
        served += 1;
    }
    Ok(served as f64)
}

fn bulk(addr: SocketAddr, limit: Duration) -> std::io::Result<f64> {
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    timeouts(&s)?;
    let chunk = vec![0x5au8; 256 * 1024];
    let start = Instant::now();
    while start.elapsed() < limit {
        s.write_all(&chunk)?;
    }
    s.shutdown(std::net::Shutdown::Write)?;
    let mut count = [0u8; 8];
    s.read_exact(&mut count)?;
    let secs = start.elapsed().as_secs_f64();
    Ok(u64::from_be_bytes(count) as f64 * 8.0 / secs / 1e9)
}

fn conns(addr: SocketAddr, limit: Duration) -> std::io::Result<f64> {
    let payload = [0x42u8; 100];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < limit {
        let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        timeouts(&s)?;
        s.write_all(&payload)?;
        s.shutdown(std::net::Shutdown::Write)?;
        let mut count = [0u8; 8];
        s.read_exact(&mut count)?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn udp_sink(addr: SocketAddr, limit: Duration) -> std::io::Result<f64> {
    let s = UdpSocket::bind(addr)?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 2048];
    let (mut first, mut last, mut n) = (None, Instant::now(), 0u64);
    while Instant::now() < deadline {
        match s.recv(&mut buf) {
            Ok(_) => {
                last = Instant::now();
                first.get_or_insert(last);
                n += 1;
            }
            // Idle after traffic began: the sender is done.
            Err(_) if first.is_some() => break,
            Err(_) => {}
        }
    }
    let secs = first.map(|f| last.duration_since(f).as_secs_f64()).unwrap_or(0.0);
    Ok(if secs > 0.0 { n as f64 / secs } else { 0.0 })
}

fn udp_flood(addr: SocketAddr, limit: Duration) -> std::io::Result<f64> {
    let local: SocketAddr =
        if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().map_err(std::io::Error::other)?;
    let s = UdpSocket::bind(local)?;
    s.connect(addr)?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let payload = [0x17u8; 64];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < limit {
        // ENOBUFS/ECONNREFUSED under load are not errors for a flood.
        if s.send(&payload).is_ok() {
            n += 1;
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Size of a request and of its response.
const RR_SIZE: usize = 64;
/// Round trips of one latency measurement.
const RR_COUNT: usize = 3000;

/// Serves one request/response connection: each 64-byte request is answered
/// with 64 bytes, until the client closes or `limit` passes. Prints the
/// number of requests answered.
fn rr_server(addr: SocketAddr, limit: Duration) -> std::io::Result<f64> {
    let l = TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    let deadline = Instant::now() + limit;
    let mut s = loop {
        match l.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => return Err(e),
        }
    };
    s.set_nonblocking(false)?;
    timeouts(&s)?;
    s.set_nodelay(true)?;
    let mut req = [0u8; RR_SIZE];
    let resp = [0x52u8; RR_SIZE];
    let mut n = 0u64;
    while Instant::now() < deadline && s.read_exact(&mut req).is_ok() {
        s.write_all(&resp)?;
        n += 1;
    }
    Ok(n as f64)
}

/// 3,000 round trips of a 64-byte request and a 64-byte response on one
/// connection (fewer if `limit` passes first); the median and the 99th
/// percentile in microseconds. The first 100 warm the path and are not counted.
fn rr(addr: SocketAddr, limit: Duration) -> std::io::Result<(f64, f64)> {
    const WARMUP: usize = 100;
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    timeouts(&s)?;
    s.set_nodelay(true)?;
    let req = [0x51u8; RR_SIZE];
    let mut resp = [0u8; RR_SIZE];
    let mut rtt = Vec::with_capacity(RR_COUNT);
    let start = Instant::now();
    for i in 0..RR_COUNT + WARMUP {
        if start.elapsed() >= limit {
            break;
        }
        let t = Instant::now();
        s.write_all(&req)?;
        s.read_exact(&mut resp)?;
        if i >= WARMUP {
            rtt.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    if rtt.is_empty() {
        return Err(std::io::Error::other("no round trip completed"));
    }
    rtt.sort_by(f64::total_cmp);
    let at = |q: f64| rtt[((rtt.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.99)))
}
