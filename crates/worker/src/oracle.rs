//! The oracle relay (seed 000 §5): the host's half of an oracle fetch. It
//! hands the request to the enclave, connects where the enclave says, and
//! moves TLS bytes between the socket and the enclave until the enclave
//! returns its signed datagram. It never sees plaintext: the enclave
//! terminates TLS. Blocking, bounded in time and in steps.

use proctor_enclave::oracle::{Abort, OracleIo, OracleTicket, SignedDatagram};
use proctor_enclave::wire::Transport;
use proctor_enclave::{Request, Response};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Most exchanges with the enclave in one fetch.
const MAX_STEPS: usize = 10_000;

fn step(enclave: &mut dyn Transport, req: Request) -> Result<OracleIo, String> {
    match enclave.call(req) {
        Response::OracleIo(io) => Ok(io),
        Response::Error { code, message } => Err(format!("enclave: {message} (code {code})")),
        _ => Err("unexpected answer from the enclave".into()),
    }
}

/// Fetches `ticket` through `enclave`, giving up after `timeout` (the
/// enclave then signs a timeout failure). Errors only when the enclave
/// itself refuses.
pub fn relay(
    enclave: &mut dyn Transport,
    ticket: OracleTicket,
    timeout: Duration,
) -> Result<SignedDatagram, String> {
    relay_altering(enclave, ticket, timeout, |_, _| {})
}

/// [`relay`] by a host that passes the server's `n`th read (from 0) on as
/// `alter` leaves it: the honest host leaves it alone; a test-only
/// malicious one (feature `test-faults`) flips bytes, which the enclave's
/// TLS must catch.
pub(crate) fn relay_altering(
    enclave: &mut dyn Transport,
    ticket: OracleTicket,
    timeout: Duration,
    alter: fn(n: usize, data: &mut Vec<u8>),
) -> Result<SignedDatagram, String> {
    let deadline = Instant::now() + timeout;
    let mut io = step(enclave, Request::OracleOpen(Box::new(ticket)))?;
    let session = io.session;
    let Some((host, port)) = io.connect.take() else {
        return io
            .done
            .ok_or_else(|| "the enclave gave neither a connection nor a datagram".into());
    };
    let abort = |enclave: &mut dyn Transport, why| {
        step(enclave, Request::OracleAbort { session, why })?
            .done
            .ok_or_else(|| "the enclave signed no failure".to_string())
    };
    let connected = (host.as_str(), port)
        .to_socket_addrs()
        .ok()
        .into_iter()
        .flatten()
        .find_map(|a| TcpStream::connect_timeout(&a, timeout).ok());
    let Some(mut tcp) = connected else {
        return abort(enclave, Abort::Unreachable);
    };
    let _ = tcp.set_nodelay(true);
    let mut buf = vec![0u8; 64 << 10];
    for n in 0..MAX_STEPS {
        if let Some(d) = io.done {
            return Ok(d);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return abort(enclave, Abort::Timeout);
        }
        if !io.send.is_empty() && tcp.write_all(&io.send).is_err() {
            return abort(enclave, Abort::Unreachable);
        }
        let _ = tcp.set_read_timeout(Some(left));
        let (mut data, eof) = match tcp.read(&mut buf) {
            Ok(0) => (vec![], true),
            Ok(n) => (buf[..n].to_vec(), false),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return abort(enclave, Abort::Timeout);
            }
            Err(_) => (vec![], true),
        };
        alter(n, &mut data);
        io = step(enclave, Request::OracleData { session, data, eof })?;
    }
    abort(enclave, Abort::Timeout)
}
