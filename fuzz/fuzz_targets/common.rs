//! Helpers shared by the fuzz targets (included with `#[path]`; not every target uses all).
#![allow(dead_code)]

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The input after its first (selector) byte, as text: seeds stay readable and invalid UTF-8
/// still reaches the target as U+FFFD.
pub fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data.get(1..).unwrap_or_default()).into_owned()
}

/// Replaces each `$NAME` placeholder by its value, longest names first, so seeds can say
/// `"exp": $NOW` or `csrftoken=$COOKIE` and the fuzzer mutates around real values.
pub fn expand(text: &str, vars: &[(&str, String)]) -> String {
    let mut vars: Vec<_> = vars.iter().collect();
    vars.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    let mut out = text.to_owned();
    for (name, value) in vars {
        out = out.replace(&format!("${name}"), value);
    }
    out
}

/// Applies an edit script to `base`: each 4-byte chunk `(op, pos_hi, pos_lo, byte)` replaces,
/// inserts or deletes one byte at `pos` (modulo the length). Models an attacker tampering with a
/// genuine value one byte at a time.
pub fn mutate(base: &str, script: &[u8]) -> String {
    let mut bytes = base.as_bytes().to_vec();
    for chunk in script.chunks_exact(4) {
        let (op, byte) = (chunk[0], chunk[3]);
        let pos = usize::from(u16::from_be_bytes([chunk[1], chunk[2]]));
        match op % 3 {
            0 if !bytes.is_empty() => {
                let at = pos % bytes.len();
                bytes[at] = byte;
            }
            1 => {
                let at = pos % (bytes.len() + 1);
                bytes.insert(at, byte);
            }
            2 if !bytes.is_empty() => {
                let at = pos % bytes.len();
                bytes.remove(at);
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
