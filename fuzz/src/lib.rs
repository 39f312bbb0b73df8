//! Shared by the fuzz targets and the seed generator (`examples/seeds.rs`).
//!
//! The `binary_mode` target needs a Kafka record — a list of headers and a value — out of one
//! byte string. It uses a plain, line-based framing, so that the seeds are readable and
//! libFuzzer's byte mutations (insert, erase, copy, splice) edit header names and values
//! without breaking the frame:
//!
//! ```text
//! ce_specversion:1.0\n        one header per line: name, ':', value (any bytes but \n)
//! ce_id:build-1\n             a line without ':' is a header with an empty value
//! content-type:application/avro\n
//! \n                          an empty line ends the headers
//! <value bytes, verbatim>     the rest is the record value (may hold \n, NUL, anything)
//! ```
//!
//! Without an empty line the whole input is headers and the value is empty (a trailing `\n` is
//! not a header; `:value` is a header with an empty name). Header names are
//! UTF-8 in Kafka clients; a name that is not is read lossily (U+FFFD), as a client would.

/// Headers in order, as `provenant_schemas::binary_mode` takes them.
pub type Headers = Vec<(String, Vec<u8>)>;

/// Splits a fuzz input into headers and a value (see the crate doc).
pub fn split_record(data: &[u8]) -> (Headers, &[u8]) {
    if let Some(value) = data.strip_prefix(b"\n") {
        // The first line is empty: no headers.
        return (Vec::new(), value);
    }
    let (head, value) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &data[data.len()..]),
    };
    let headers = head
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| match line.iter().position(|&b| b == b':') {
            Some(i) => (
                String::from_utf8_lossy(&line[..i]).into_owned(),
                line[i + 1..].to_vec(),
            ),
            None => (String::from_utf8_lossy(line).into_owned(), Vec::new()),
        })
        .collect();
    (headers, value)
}

/// Writes headers and a value in the framing [`split_record`] reads; `None` if a header cannot
/// be framed (an empty name, a name with `:` or `\n`, a value with `\n`).
pub fn join_record(headers: &[(String, Vec<u8>)], value: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for (name, v) in headers {
        if name.is_empty() || name.contains([':', '\n']) || v.contains(&b'\n') {
            return None;
        }
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(value);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_round_trips() {
        let headers: Headers = vec![
            ("ce_id".into(), b"a:b\r\0".to_vec()),
            ("content-type".into(), b"application/avro".to_vec()),
        ];
        let value = b"\xC3\x01\n\nrest";
        let framed = join_record(&headers, value).unwrap();
        assert_eq!(split_record(&framed), (headers, &value[..]));
        assert_eq!(split_record(b"\nvalue"), (Vec::new(), &b"value"[..]));
        assert_eq!(
            split_record(b"x\ny:\n"),
            (vec![("x".into(), vec![]), ("y".into(), vec![])], &b""[..])
        );
        assert_eq!(split_record(b""), (Vec::new(), &b""[..]));
    }
}
