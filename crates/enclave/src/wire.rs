//! The enclave API across a process boundary: each [`Request`] and
//! [`Response`] is one frame (4-byte little-endian length, then the borsh
//! encoding) on a Unix stream socket. On SGX the enclave runs as its own
//! process (`proctor enclave`, under Gramine) and the worker connects here.
//!
//! Frames are capped at [`MAX_FRAME`] so a peer cannot make the other side
//! allocate without bound. The socket carries nothing secret: no request
//! returns a key, and confidential inputs travel encrypted to the enclave.

use crate::{Enclave, Request, Response};
use proctor_primitives::codec;
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Largest frame accepted (a task module plus its input fit well within).
pub const MAX_FRAME: usize = 64 << 20;

/// Longest wait for a reply (loading a large module compiles it).
pub const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Code of a malformed request frame.
pub const MALFORMED_REQUEST: i32 = 3005;
/// Code of a failed connection to a remote enclave.
pub const CONNECTION: i32 = 3006;

fn write_frame(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    if bytes.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame too large",
        ));
    }
    w.write_all(&(bytes.len() as u32).to_le_bytes())?;
    w.write_all(bytes)?;
    w.flush()
}

/// Reads one frame; `None` on a clean end of stream.
fn read_frame(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds {MAX_FRAME}"),
        ));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(Some(buf))
}

/// Something that answers enclave requests: the enclave itself, or a
/// connection to one in another process.
pub trait Transport: Send {
    fn call(&mut self, req: Request) -> Response;
}

impl Transport for Enclave {
    fn call(&mut self, req: Request) -> Response {
        self.handle(req)
    }
}

/// A connection to an enclave served by [`serve`].
pub struct RemoteEnclave {
    stream: UnixStream,
}

impl RemoteEnclave {
    pub fn connect(path: &Path) -> io::Result<Self> {
        let stream = UnixStream::connect(path)?;
        // Never wait forever on an enclave that stopped answering.
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        Ok(RemoteEnclave { stream })
    }

    fn try_call(&mut self, req: &Request) -> io::Result<Response> {
        write_frame(&mut self.stream, &codec::encode(req))?;
        let bytes = read_frame(&mut self.stream)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "enclave closed the connection",
            )
        })?;
        codec::decode("enclave response", &bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }
}

impl Transport for RemoteEnclave {
    fn call(&mut self, req: Request) -> Response {
        self.try_call(&req).unwrap_or_else(|e| Response::Error {
            code: CONNECTION,
            message: format!("enclave connection: {e}"),
        })
    }
}

/// Serves `enclave` on `listener` until the listener fails: each connection
/// on its own thread, requests serialized on the one enclave (a mining call
/// is bounded, so an operator's status query is answered between two). A
/// malformed frame gets an error response; a broken connection is dropped.
pub fn serve(listener: &UnixListener, enclave: Enclave) -> io::Result<()> {
    let enclave = Arc::new(Mutex::new(enclave));
    for stream in listener.incoming() {
        let (stream, enclave) = (stream?, enclave.clone());
        std::thread::spawn(move || serve_connection(stream, &enclave));
    }
    Ok(())
}

/// Answers requests on one connection until it closes or breaks.
pub fn serve_connection(mut stream: UnixStream, enclave: &Mutex<Enclave>) {
    while let Ok(Some(bytes)) = read_frame(&mut stream) {
        let resp = match codec::decode::<Request>("enclave request", &bytes) {
            Ok(req) => enclave
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .handle(req),
            Err(e) => Response::Error {
                code: MALFORMED_REQUEST,
                message: e.to_string(),
            },
        };
        if write_frame(&mut stream, &codec::encode(&resp)).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proctor_tee::sim::{SimAttestationRoot, SimPlatform};

    #[test]
    fn requests_cross_the_socket_and_garbage_is_refused() {
        let dir = std::env::temp_dir().join(format!("proctor-wire-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("enclave.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let enclave = Enclave::new(Box::new(
            SimPlatform::open(&dir.join("e"), SimAttestationRoot::from_secret(&[1; 32])).unwrap(),
        ))
        .unwrap();
        let identity = enclave.info().identity;
        let enclave = Arc::new(Mutex::new(enclave));
        let server = std::thread::spawn(move || {
            // Serve exactly two connections, then stop.
            let mut n = 0;
            for stream in listener.incoming().take(2) {
                serve_connection(stream.unwrap(), &enclave);
                n += 1;
            }
            n
        });
        let mut remote = RemoteEnclave::connect(&sock).unwrap();
        match remote.call(Request::Info) {
            Response::Info(i) => assert_eq!(i.identity, identity),
            other => panic!("{other:?}"),
        }
        drop(remote);
        // A raw client sending garbage gets a coded error, not a crash.
        let mut raw = UnixStream::connect(&sock).unwrap();
        write_frame(&mut raw, b"\xff\xff garbage").unwrap();
        let resp: Response =
            codec::decode("resp", &read_frame(&mut raw).unwrap().unwrap()).unwrap();
        assert!(matches!(
            resp,
            Response::Error {
                code: MALFORMED_REQUEST,
                ..
            }
        ));
        // An oversized length prefix is refused without allocating it.
        raw.write_all(&u32::MAX.to_le_bytes()).unwrap();
        drop(raw);
        assert_eq!(server.join().unwrap(), 2);
    }
}
