//! Small real applications for the testbed: TCP and UDP servers and clients
//! on std sockets, every operation bounded by a timeout.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Testbed;

pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Deterministic test bytes.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// FNV-1a, streamed: the checksum of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    pub fn of(data: &[u8]) -> u64 {
        let mut f = Fnv::default();
        f.update(data);
        f.0
    }
}

fn set_timeouts(s: &TcpStream) {
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
}

/// Accepts one connection within `limit`.
pub fn accept_bounded(l: &TcpListener, limit: Duration) -> io::Result<TcpStream> {
    l.set_nonblocking(true)?;
    let deadline = Instant::now() + limit;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                set_timeouts(&s);
                return Ok(s);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => return Err(e),
        }
    }
}

/// Starts a TCP server in the server namespace that accepts up to `conns`
/// connections (each within 10 s) and runs `handler` on each; returns once
/// it listens.
pub fn tcp_server<T: Send + 'static>(
    tb: &Testbed,
    addr: IpAddr,
    port: u16,
    conns: usize,
    handler: impl Fn(TcpStream) -> T + Send + 'static,
) -> JoinHandle<Vec<io::Result<T>>> {
    tcp_server_within(tb, addr, port, conns, Duration::from_secs(10), handler)
}

/// [`tcp_server`] with the time each accept may wait.
pub fn tcp_server_within<T: Send + 'static>(
    tb: &Testbed,
    addr: IpAddr,
    port: u16,
    conns: usize,
    accept_limit: Duration,
    handler: impl Fn(TcpStream) -> T + Send + 'static,
) -> JoinHandle<Vec<io::Result<T>>> {
    let (tx, rx) = mpsc::channel();
    let h = tb.on_server(move || {
        let l = TcpListener::bind(SocketAddr::new(addr, port)).expect("server bind");
        tx.send(()).unwrap();
        (0..conns).map(|_| accept_bounded(&l, accept_limit).map(&handler)).collect()
    });
    rx.recv_timeout(Duration::from_secs(5)).expect("server did not start listening");
    h
}

/// Connects within the I/O timeout and sets read/write timeouts.
pub fn tcp_connect(addr: IpAddr, port: u16) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&SocketAddr::new(addr, port), IO_TIMEOUT)?;
    set_timeouts(&s);
    Ok(s)
}

/// What reading a stream to its end gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadEnd {
    /// Orderly end of stream.
    Eof,
    /// ECONNRESET.
    Reset,
    /// No data and no end within the timeout.
    Timeout,
    /// Another error.
    Error(String),
}

/// Reads until EOF/error/timeout; returns the bytes and how it ended.
pub fn read_all(s: &mut TcpStream) -> (Vec<u8>, ReadEnd) {
    let mut data = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (data, ReadEnd::Eof),
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) => return (data, classify(&e)),
        }
    }
}

pub fn classify(e: &io::Error) -> ReadEnd {
    match e.kind() {
        ErrorKind::ConnectionReset => ReadEnd::Reset,
        ErrorKind::WouldBlock | ErrorKind::TimedOut => ReadEnd::Timeout,
        _ => ReadEnd::Error(e.to_string()),
    }
}

/// Reads a stream to EOF hashing it; returns (bytes, checksum, end).
pub fn read_hashed(s: &mut TcpStream) -> (u64, u64, ReadEnd) {
    let mut f = Fnv::default();
    let mut n = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (n, f.0, ReadEnd::Eof),
            Ok(k) => {
                n += k as u64;
                f.update(&buf[..k]);
            }
            Err(e) => return (n, f.0, classify(&e)),
        }
    }
}

/// Writes everything, then shuts down the write side.
pub fn write_and_close(s: &mut TcpStream, data: &[u8]) -> io::Result<()> {
    s.write_all(data)?;
    s.shutdown(std::net::Shutdown::Write)
}

/// A UDP echo server in the server namespace answering up to `count`
/// datagrams (giving up after the I/O timeout).
pub fn udp_echo_server(tb: &Testbed, addr: IpAddr, port: u16, count: usize) -> JoinHandle<usize> {
    let (tx, rx) = mpsc::channel();
    let h = tb.on_server(move || {
        let s = UdpSocket::bind(SocketAddr::new(addr, port)).expect("udp bind");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        tx.send(()).unwrap();
        let mut buf = [0u8; 2048];
        let mut echoed = 0;
        while echoed < count {
            let Ok((n, from)) = s.recv_from(&mut buf) else { break };
            if s.send_to(&buf[..n], from).is_ok() {
                echoed += 1;
            }
        }
        echoed
    });
    rx.recv_timeout(Duration::from_secs(5)).expect("udp server did not start");
    h
}

/// Sends `count` distinct datagrams one at a time and returns how many came
/// back byte-exact.
pub fn udp_echo_client(server: IpAddr, port: u16, count: usize) -> usize {
    let local: SocketAddr =
        if server.is_ipv4() { "0.0.0.0:0".parse().unwrap() } else { "[::]:0".parse().unwrap() };
    let s = UdpSocket::bind(local).expect("udp client bind");
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.connect(SocketAddr::new(server, port)).unwrap();
    let mut ok = 0;
    let mut buf = [0u8; 2048];
    for i in 0..count {
        let msg = pattern(i as u64 + 7, 100 + i);
        if s.send(&msg).is_err() {
            continue;
        }
        if let Ok(n) = s.recv(&mut buf) {
            if buf[..n] == msg[..] {
                ok += 1;
            }
        }
    }
    ok
}
