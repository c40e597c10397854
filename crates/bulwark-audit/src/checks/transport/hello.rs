//! A TLS 1.0/1.1-only ClientHello, built by hand, and the first record of the server's answer
//! read back: enough to tell whether a server still negotiates a protocol below TLS 1.2, with no
//! TLS library that would refuse to speak one.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// TLS 1.0 on the wire.
pub(crate) const TLS10: u16 = 0x0301;
/// TLS 1.1 on the wire.
pub(crate) const TLS11: u16 = 0x0302;
/// TLS 1.2 on the wire.
pub(crate) const TLS12: u16 = 0x0303;

/// Cipher suites a TLS 1.0/1.1 server can pick: ECDHE and RSA key exchange with AES-CBC-SHA
/// and 3DES, then the renegotiation SCSV.
const SUITES: &[u16] = &[
    0xc014, // TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA
    0xc013, // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
    0xc00a, // TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA
    0xc009, // TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
    0x0035, // TLS_RSA_WITH_AES_256_CBC_SHA
    0x002f, // TLS_RSA_WITH_AES_128_CBC_SHA
    0x000a, // TLS_RSA_WITH_3DES_EDE_CBC_SHA
    // TLS 1.2-only AEAD suites: a server negotiating 1.0/1.1 must not pick them; they let the
    // same hello, offered up to 1.2, complete with a modern server (the tests' sanity check).
    0xc02b, // TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    0xc02f, // TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    0x00ff, // TLS_EMPTY_RENEGOTIATION_INFO_SCSV
];

fn push_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Prefixes `body` with its length in `width` bytes (2 or 3).
fn with_len(width: usize, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes();
    let mut out = len[4 - width..].to_vec();
    out.extend_from_slice(body);
    out
}

/// A ClientHello record that offers at most `max_version` (TLS 1.1: `0x0302`), with SNI for
/// `server_name` (a DNS name; `None` for an IP address), the curves and point formats ECDHE needs,
/// and no `supported_versions` extension (so no TLS 1.3).
pub(crate) fn client_hello(
    max_version: u16,
    server_name: Option<&str>,
    random: [u8; 32],
) -> Vec<u8> {
    let mut extensions = Vec::new();
    if let Some(name) = server_name {
        // server_name: a list of one host_name entry.
        let mut entry = vec![0u8];
        entry.extend(with_len(2, name.as_bytes()));
        push_u16(&mut extensions, 0x0000);
        extensions.extend(with_len(2, &with_len(2, &entry)));
    }
    // supported_groups: secp256r1, secp384r1, x25519.
    let mut groups = Vec::new();
    for g in [0x0017u16, 0x0018, 0x001d] {
        push_u16(&mut groups, g);
    }
    push_u16(&mut extensions, 0x000a);
    extensions.extend(with_len(2, &with_len(2, &groups)));
    // ec_point_formats: uncompressed.
    push_u16(&mut extensions, 0x000b);
    extensions.extend(with_len(2, &[1, 0]));
    if max_version >= TLS12 {
        // signature_algorithms: only meaningful from TLS 1.2 (RFC 5246 forbids it below).
        let mut algorithms = Vec::new();
        for a in [
            0x0403u16, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
        ] {
            push_u16(&mut algorithms, a);
        }
        push_u16(&mut extensions, 0x000d);
        extensions.extend(with_len(2, &with_len(2, &algorithms)));
    }

    let mut hello = Vec::new();
    push_u16(&mut hello, max_version);
    hello.extend_from_slice(&random);
    hello.push(0); // no session id
    let mut suites = Vec::new();
    for s in SUITES {
        push_u16(&mut suites, *s);
    }
    hello.extend(with_len(2, &suites));
    hello.extend_from_slice(&[1, 0]); // compression: null only
    hello.extend(with_len(2, &extensions));

    let mut handshake = vec![0x01]; // client_hello
    handshake.extend(with_len(3, &hello));
    let mut record = vec![0x16]; // handshake
    push_u16(&mut record, TLS10);
    record.extend(with_len(2, &handshake));
    record
}

/// How a server answered the ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A ServerHello choosing this version.
    ServerHello(u16),
    /// An alert (level, description): the server refused.
    Alert(u8, u8),
    /// The connection closed without a record.
    Closed,
    /// Something that is not a TLS handshake answer (plain HTTP, garbage, truncated).
    Other,
}

/// Reads the server's first TLS record from `bytes` (all that arrived, possibly cut short).
pub(crate) fn parse_answer(bytes: &[u8]) -> Answer {
    let Some(header) = bytes.get(..5) else {
        return if bytes.is_empty() {
            Answer::Closed
        } else {
            Answer::Other
        };
    };
    let content_type = header[0];
    let record_version = u16::from_be_bytes([header[1], header[2]]);
    if header[1] != 0x03 || record_version > 0x0304 {
        return Answer::Other;
    }
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let body = &bytes[5..];
    match content_type {
        0x15 => match body.get(..2) {
            Some([level, description]) => Answer::Alert(*level, *description),
            _ => Answer::Other,
        },
        0x16 => {
            // handshake: type(1) length(3) then the ServerHello's version(2).
            let Some(head) = body.get(..6) else {
                return Answer::Other;
            };
            if head[0] != 0x02 || len < 6 {
                return Answer::Other;
            }
            Answer::ServerHello(u16::from_be_bytes([head[4], head[5]]))
        }
        _ => Answer::Other,
    }
}

/// `TLS 1.1` for `0x0302`.
pub(crate) fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL 3.0".into(),
        0x0301..=0x0304 => format!("TLS 1.{}", v - 0x0301),
        other => format!("0x{other:04x}"),
    }
}

/// Sends a ClientHello offering at most `max_version` (the audit: TLS 1.1) to `host:port` and
/// reads the first record of the answer (until its first bytes arrived, the connection closed,
/// or `timeout`).
pub(crate) async fn probe(
    max_version: u16,
    host: &str,
    port: u16,
    server_name: Option<&str>,
    timeout: Duration,
) -> std::io::Result<Answer> {
    let random = random_bytes();
    let work = async {
        let mut stream = TcpStream::connect((host, port)).await?;
        stream
            .write_all(&client_hello(max_version, server_name, random))
            .await?;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = match stream.read(&mut buf).await {
                Ok(n) => n,
                // A reset after a refusal is a refusal.
                Err(e) if got.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => 0,
                Err(e) => return Err(e),
            };
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got.len() >= 5 {
                let len = usize::from(u16::from_be_bytes([got[3], got[4]]));
                if got.len() >= 5 + len.min(64) {
                    break;
                }
            }
            if got.len() > 16 * 1024 {
                break;
            }
        }
        Ok(parse_answer(&got))
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "timed out",
            ))
        })
}

/// 32 bytes that differ from hello to hello (the ClientHello's random need not be secret).
fn random_bytes() -> [u8; 32] {
    let mut out = [0u8; 32];
    for chunk in out.chunks_mut(6) {
        let n = u64::from_str_radix(&super::super::login::nonce(), 16).unwrap_or(0);
        let bytes = n.to_be_bytes();
        let take = chunk.len();
        chunk.copy_from_slice(&bytes[8 - take..]);
    }
    out
}

/// A ServerHello record choosing `version` (random, empty session id, suite 0x002f).
#[cfg(test)]
pub(crate) fn server_hello(version: u16) -> Vec<u8> {
    let mut hello = version.to_be_bytes().to_vec();
    hello.extend_from_slice(&[7u8; 32]);
    hello.push(0);
    hello.extend_from_slice(&[0x00, 0x2f, 0x00]);
    let mut handshake = vec![0x02];
    handshake.extend(with_len(3, &hello));
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend(with_len(2, &handshake));
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_hello_is_well_formed_and_offers_at_most_tls_1_1() {
        let hello = client_hello(TLS11, Some("api.example"), [9u8; 32]);
        assert_eq!(&hello[..3], &[0x16, 0x03, 0x01]);
        let record_len = usize::from(u16::from_be_bytes([hello[3], hello[4]]));
        assert_eq!(record_len, hello.len() - 5);
        assert_eq!(hello[5], 0x01, "client_hello");
        let hs_len = u32::from_be_bytes([0, hello[6], hello[7], hello[8]]) as usize;
        assert_eq!(hs_len, hello.len() - 9);
        assert_eq!(&hello[9..11], &[0x03, 0x02], "client_version TLS 1.1");
        assert_eq!(&hello[11..43], &[9u8; 32]);
        assert_eq!(hello[43], 0, "no session id");
        let suites_len = usize::from(u16::from_be_bytes([hello[44], hello[45]]));
        assert_eq!(suites_len, SUITES.len() * 2);
        let after_suites = 46 + suites_len;
        assert_eq!(&hello[after_suites..after_suites + 2], &[1, 0]);
        let ext_len = usize::from(u16::from_be_bytes([
            hello[after_suites + 2],
            hello[after_suites + 3],
        ]));
        assert_eq!(ext_len, hello.len() - after_suites - 4);
        let ext = &hello[after_suites + 4..];
        // SNI first: type 0, then the name.
        assert_eq!(&ext[..2], &[0, 0]);
        assert!(ext.windows(11).any(|w| w == b"api.example"));
        // No supported_versions (0x002b) extension anywhere: TLS 1.3 cannot be chosen.
        let mut at = 0;
        while at + 4 <= ext.len() {
            let ty = u16::from_be_bytes([ext[at], ext[at + 1]]);
            assert_ne!(ty, 0x002b);
            let len = usize::from(u16::from_be_bytes([ext[at + 2], ext[at + 3]]));
            at += 4 + len;
        }
        assert_eq!(at, ext.len());
    }

    #[test]
    fn an_ip_address_gets_no_sni() {
        let hello = client_hello(TLS11, None, [0u8; 32]);
        let named = client_hello(TLS11, Some("a.example"), [0u8; 32]);
        assert!(hello.len() < named.len());
        assert!(!hello.windows(9).any(|w| w == b"a.example"));
    }

    #[test]
    fn server_hellos_alerts_and_closes_are_read() {
        assert_eq!(
            parse_answer(&server_hello(TLS11)),
            Answer::ServerHello(TLS11)
        );
        assert_eq!(
            parse_answer(&server_hello(TLS10)),
            Answer::ServerHello(TLS10)
        );
        assert_eq!(
            parse_answer(&server_hello(TLS12)),
            Answer::ServerHello(TLS12)
        );
        // A fatal protocol_version alert, as rustls sends it.
        assert_eq!(
            parse_answer(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46]),
            Answer::Alert(2, 70)
        );
        assert_eq!(parse_answer(&[]), Answer::Closed);
        assert_eq!(
            parse_answer(b"HTTP/1.1 400 Bad Request\r\n\r\n"),
            Answer::Other
        );
        // Cut short: a handshake header without the version.
        assert_eq!(
            parse_answer(&[0x16, 0x03, 0x01, 0x00, 0x30, 0x02, 0x00]),
            Answer::Other
        );
        // A handshake that is not a ServerHello.
        let mut other = server_hello(TLS11);
        other[5] = 0x0b;
        assert_eq!(parse_answer(&other), Answer::Other);
    }

    #[test]
    fn versions_are_named() {
        assert_eq!(version_name(TLS10), "TLS 1.0");
        assert_eq!(version_name(TLS11), "TLS 1.1");
        assert_eq!(version_name(TLS12), "TLS 1.2");
        assert_eq!(version_name(0x0300), "SSL 3.0");
    }
}
