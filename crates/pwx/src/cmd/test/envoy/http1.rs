//! The HTTP/1.1 wire format, just as much as `pwx test --envoy` needs on both ends of Envoy:
//! reading a message head, a body (content-length or chunked, trailers kept), and writing
//! requests and responses. Envoy is the only peer, so this is not a general HTTP library.

use std::io::{BufRead, BufReader, Read, Write};

/// Header lines longer than this are refused (Envoy's own limit is 60 KiB for the whole head).
const MAX_HEAD: usize = 96 * 1024;
/// Bodies larger than this are refused: test cases are small.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A parsed message: the start line, headers in order (names lower-cased), body, trailers.
#[derive(Debug, Default, Clone)]
pub(crate) struct Message {
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

impl Message {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn bad(what: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.into())
}

/// Reads one line (without CRLF); `None` at a clean end of stream before any byte.
fn line<R: BufRead>(reader: &mut R, budget: &mut usize) -> std::io::Result<Option<String>> {
    let mut raw = Vec::new();
    let n = reader
        .take(*budget as u64 + 1)
        .read_until(b'\n', &mut raw)?;
    if n == 0 {
        return Ok(None);
    }
    if n > *budget {
        return Err(bad("message head too large"));
    }
    *budget -= n;
    if raw.last() != Some(&b'\n') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed in the middle of a line",
        ));
    }
    while matches!(raw.last(), Some(b'\n' | b'\r')) {
        raw.pop();
    }
    Ok(Some(String::from_utf8_lossy(&raw).into_owned()))
}

fn header_lines<R: BufRead>(
    reader: &mut R,
    budget: &mut usize,
) -> std::io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let Some(text) = line(reader, budget)? else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed in the message head",
            ));
        };
        if text.is_empty() {
            return Ok(headers);
        }
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| bad(format!("not a header line: {text:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
}

/// Reads one message. `None` when the peer closed the connection before sending anything.
/// `head_only_body` is true for responses that have no body whatever their headers say (HEAD,
/// 1xx, 204, 304).
pub(crate) fn read_message<R: Read>(
    reader: &mut BufReader<R>,
    is_response: bool,
    head_only: bool,
) -> std::io::Result<Option<Message>> {
    let mut budget = MAX_HEAD;
    let Some(start) = line(reader, &mut budget)? else {
        return Ok(None);
    };
    let headers = header_lines(reader, &mut budget)?;
    let mut message = Message {
        start,
        headers,
        ..Message::default()
    };
    if head_only {
        return Ok(Some(message));
    }
    let chunked = message
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let size_line = line(reader, &mut budget)?
                .ok_or_else(|| bad("connection closed before a chunk size"))?;
            budget = MAX_HEAD;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad(format!("bad chunk size {size_line:?}")))?;
            if size == 0 {
                message.trailers = header_lines(reader, &mut budget)?;
                break;
            }
            if message.body.len() + size > MAX_BODY {
                return Err(bad("body too large"));
            }
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk)?;
            message.body.extend_from_slice(&chunk);
            let mut crlf = [0; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(length) = message.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| bad(format!("bad content-length {length:?}")))?;
        if length > MAX_BODY {
            return Err(bad("body too large"));
        }
        message.body = vec![0; length];
        reader.read_exact(&mut message.body)?;
    } else if is_response {
        // A response without length runs to the end of the connection.
        reader
            .take(MAX_BODY as u64)
            .read_to_end(&mut message.body)?;
    }
    Ok(Some(message))
}

/// Writes a message: the start line, the headers, then the body — chunked with trailers when
/// there are trailers, else with a content-length unless `headers` already give one.
pub(crate) fn write_message<W: Write>(
    writer: &mut W,
    start: &str,
    headers: &[(String, String)],
    body: &[u8],
    trailers: &[(String, String)],
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(start.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    let has_length = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    if trailers.is_empty() {
        if !has_length && !body.is_empty() {
            out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
        if !body.is_empty() {
            out.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            out.extend_from_slice(body);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n");
        for (name, value) in trailers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    writer.write_all(&out)?;
    writer.flush()
}

/// The status code of a response start line (`HTTP/1.1 200 OK`).
pub(crate) fn status_of(start: &str) -> Option<u16> {
    start.split(' ').nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn chunked_with_trailers_round_trips() {
        let mut wire = Vec::new();
        write_message(
            &mut wire,
            "POST /x HTTP/1.1",
            &[("host".into(), "a".into())],
            b"hello",
            &[("x-t".into(), "1".into())],
        )
        .unwrap();
        let mut reader = BufReader::new(wire.as_slice());
        let m = read_message(&mut reader, false, false).unwrap().unwrap();
        assert_eq!(m.start, "POST /x HTTP/1.1");
        assert_eq!(m.body, b"hello");
        assert_eq!(m.trailers, vec![("x-t".to_string(), "1".to_string())]);
        assert!(read_message(&mut reader, false, false).unwrap().is_none());
    }

    #[test]
    fn content_length_and_truncation() {
        let wire = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc";
        let m = read_message(&mut BufReader::new(&wire[..]), true, false)
            .unwrap()
            .unwrap();
        assert_eq!(
            (status_of(&m.start), m.body.as_slice()),
            (Some(200), &b"abc"[..])
        );
        let cut = b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nabc";
        assert!(read_message(&mut BufReader::new(&cut[..]), true, false).is_err());
    }
}
