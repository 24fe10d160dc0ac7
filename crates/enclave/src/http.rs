//! The least of HTTP/1.1 the oracle needs, on bytes the enclave decrypted
//! itself: one GET request out, one response in (status, headers, a body
//! delimited by `Content-Length`, chunked transfer coding, or the end of the
//! connection). Every size is bounded; anything else is an error, never a
//! panic (the server and the relay may send anything).

/// Largest response head (status line and headers).
pub const MAX_HEAD: usize = 16 << 10;
/// Largest response body.
pub const MAX_BODY: usize = 1 << 20;

/// The request the enclave sends: `GET path` to `host` (its port named when
/// not 443), closing the connection after the response.
pub fn get_request(host: &str, port: u16, path: &str) -> Vec<u8> {
    let authority = match port {
        443 => host.to_string(),
        p => format!("{host}:{p}"),
    };
    format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: proctor-oracle/1\r\n\
         Accept: application/json, */*\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// A complete response.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Parses `buf` as a response. `Ok(None)`: more bytes are needed (and `eof`
/// is false). `eof`: the connection ended, so a body without a length ends
/// here, and an incomplete one is an error.
pub fn parse(buf: &[u8], eof: bool) -> Result<Option<Response>, String> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(format!("response head longer than {MAX_HEAD} bytes"));
        }
        return match eof {
            true => Err("the connection ended inside the response head".into()),
            false => Ok(None),
        };
    };
    if head_end > MAX_HEAD {
        return Err(format!("response head longer than {MAX_HEAD} bytes"));
    }
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| "the response head is not UTF-8".to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x status line: {status_line:.64}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..=999).contains(s))
        .ok_or_else(|| format!("bad status in {status_line:.64}"))?;
    let (mut length, mut chunked) = (None, false);
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:.64}"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse::<usize>()
                .map_err(|_| format!("bad Content-Length {value:.32}"))?;
            if length.is_some_and(|l| l != n) {
                return Err("two different Content-Length headers".into());
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case("chunked") {
                return Err(format!("unsupported Transfer-Encoding {value:.32}"));
            }
            chunked = true;
        }
    }
    let rest = &buf[head_end + 4..];
    let body = if chunked {
        match dechunk(rest)? {
            Some(b) => b,
            None if eof => return Err("the connection ended inside a chunked body".into()),
            None => return Ok(None),
        }
    } else if let Some(n) = length {
        if n > MAX_BODY {
            return Err(format!("body of {n} bytes is larger than {MAX_BODY}"));
        }
        if rest.len() < n {
            return match eof {
                true => Err(format!(
                    "the connection ended after {} of {n} body bytes",
                    rest.len()
                )),
                false => Ok(None),
            };
        }
        rest[..n].to_vec()
    } else {
        if rest.len() > MAX_BODY {
            return Err(format!("body larger than {MAX_BODY} bytes"));
        }
        if !eof {
            return Ok(None);
        }
        rest.to_vec()
    };
    Ok(Some(Response { status, body }))
}

/// Decodes a chunked body; `None` until its last chunk has arrived.
fn dechunk(mut b: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = find(b, b"\r\n") else {
            return match b.len() > 64 {
                true => Err("chunk size line too long".into()),
                false => Ok(None),
            };
        };
        let line = std::str::from_utf8(&b[..line_end]).map_err(|_| "bad chunk size")?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(size, 16).map_err(|_| format!("bad chunk size {size:.16}"))?;
        b = &b[line_end + 2..];
        if size == 0 {
            // Trailers are not used; the body is complete at the final CRLF.
            return match find(b, b"\r\n") {
                Some(_) => Ok(Some(out)),
                None => Ok(None),
            };
        }
        if out.len().saturating_add(size) > MAX_BODY {
            return Err(format!("body larger than {MAX_BODY} bytes"));
        }
        if b.len() < size + 2 {
            return Ok(None);
        }
        if &b[size..size + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_chunked_and_close_delimited_bodies() {
        let cl = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse(&cl[..cl.len() - 1], false), Ok(None));
        let r = parse(cl, false).unwrap().unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        let ch = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse(&ch[..ch.len() - 2], false), Ok(None));
        let r = parse(ch, false).unwrap().unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"abcde"[..]));
        let close = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nuntil the end";
        assert_eq!(parse(close, false), Ok(None));
        assert_eq!(parse(close, true).unwrap().unwrap().body, b"until the end");
    }

    #[test]
    fn truncated_or_malformed_responses_are_errors() {
        for (bytes, eof) in [
            (
                &b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"[..],
                true,
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Len", true),
            (b"SMTP 200 OK\r\n\r\n", false),
            (b"HTTP/1.1 2x0 OK\r\n\r\n", false),
            (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", false),
            (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                false,
            ),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc",
                false,
            ),
        ] {
            assert!(
                parse(bytes, eof).is_err(),
                "{:?} parsed",
                String::from_utf8_lossy(bytes)
            );
        }
        let huge = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert!(parse(huge.as_bytes(), false).is_err());
        let long_head = vec![b'a'; MAX_HEAD + 1];
        assert!(parse(&long_head, false).is_err());
    }

    #[test]
    fn the_request_names_a_non_default_port() {
        let r = String::from_utf8(get_request("a.org", 8443, "/x?y=1")).unwrap();
        assert!(r.starts_with("GET /x?y=1 HTTP/1.1\r\nHost: a.org:8443\r\n"));
        let r = String::from_utf8(get_request("a.org", 443, "/")).unwrap();
        assert!(r.contains("\r\nHost: a.org\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
    }

    proptest::proptest! {
        /// Whatever a server or relay sends, parsing ends in a value or an
        /// error, and a body never exceeds its bound.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), eof: bool) {
            if let Ok(Some(r)) = parse(&bytes, eof) {
                proptest::prop_assert!(r.body.len() <= MAX_BODY);
            }
            let with_head = [&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"[..], &bytes].concat();
            let _ = parse(&with_head, eof);
        }
    }
}
