//! Error answers: server errors on crafted input, and what they reveal.
//!
//! Both checks look at the same answers: each operation's valid request, then crafted inputs in
//! its first text and number point and its body (a lone quote, a very long string, a wrong type,
//! a NUL byte, malformed JSON, deep nesting). `POST`s that create objects only get the inputs
//! that cannot create one (a malformed or non-object body). The answers are gathered once when
//! both checks run one after the other.

use std::sync::Arc;

use http::Method;
use serde_json::json;

use crate::{
    catalog::CheckId,
    checks::injection::{
        NO_DOCUMENT,
        points::{Budget, Kind, Place, Planner, Target, excerpt_around, read_like, send},
        sql_error,
    },
    context::{Context, Outcome},
    objects,
    probe::Exchange,
    report::Finding,
};

/// The most requests spent gathering crafted answers.
const GATHER_CAP: u64 = 180;
/// The most operations probed.
const OPERATIONS: usize = 30;

/// One operation's answers: to its valid request, and to each crafted input (named).
#[derive(Debug)]
struct Probed {
    label: String,
    baseline: Option<Exchange>,
    crafted: Vec<(String, Exchange)>,
}

/// Where the crafted answers wait in the context for the other check.
const MEMO: &str = "errors::crafted";

/// The crafted answers: those the other check just gathered in this audit (nothing was sent
/// since), else gathered now. `Err` with a reason when there is nothing to probe.
async fn crafted(cx: &Context) -> Result<Arc<Vec<Probed>>, String> {
    if let Some(probed) = cx.recall::<Vec<Probed>>(MEMO) {
        return Ok(probed);
    }
    let probed = Arc::new(gather(cx).await?);
    cx.remember(MEMO, Arc::clone(&probed));
    Ok(probed)
}

fn nested(depth: usize) -> Vec<u8> {
    let mut body = vec![b'['; depth];
    body.extend(std::iter::repeat_n(b']', depth));
    body
}

async fn gather(cx: &Context) -> Result<Vec<Probed>, String> {
    let Some(mut planner) = Planner::new(cx) else {
        return Err(NO_DOCUMENT.into());
    };
    let api = planner.api();
    let collections: Vec<&crate::api::Operation> = objects::collections(api);
    let ops: Vec<&crate::api::Operation> = api
        .operations
        .iter()
        .filter(|op| {
            read_like(cx, op)
                || (op.method == Method::POST
                    && collections.iter().any(|c| std::ptr::eq(*c, *op))
                    && op.body.is_some())
        })
        .take(OPERATIONS)
        .collect();
    if ops.is_empty() {
        return Err("no operation to send crafted input to".into());
    }
    let budget = Budget::new(cx, GATHER_CAP);
    let mut out = Vec::new();
    for op in ops {
        if !budget.allows(cx, 4) {
            break;
        }
        let target = planner.target(op).await;
        let creates = !read_like(cx, op);
        let mut inputs: Vec<(String, crate::probe::ProbeRequest)> = Vec::new();
        if !creates {
            if let Some(p) = target.points.iter().find(|p| p.kind == Kind::Text) {
                let v = p.baseline_text();
                inputs.push((
                    format!("a lone quote in {}", p.label()),
                    target.with_text(p, &format!("{v}'")),
                ));
                inputs.push((
                    format!("a very long string in {}", p.label()),
                    target.with_text(p, &"A".repeat(8192)),
                ));
                inputs.push((
                    format!("a NUL byte in {}", p.label()),
                    target.with_text(p, &format!("{v}\u{0}")),
                ));
                if p.place == Place::Body && target.json_body() {
                    inputs.push((
                        format!("an object instead of a string in {}", p.label()),
                        target.request(p, json!({"bwk": [1]})),
                    ));
                }
            }
            if let Some(p) = target.points.iter().find(|p| p.kind == Kind::Number) {
                inputs.push((
                    format!("text instead of a number in {}", p.label()),
                    target.with_text(p, "bwk-not-a-number"),
                ));
            }
        }
        if target.json_body() {
            inputs.push((
                "malformed JSON".into(),
                target.with_body_bytes("application/json", b"{\"bwk\": ".to_vec()),
            ));
            inputs.push((
                "JSON nested 1024 levels deep".into(),
                target.with_body_bytes("application/json", nested(1024)),
            ));
        }
        if inputs.is_empty() {
            continue;
        }
        let baseline = if creates {
            None
        } else {
            send(cx, baseline_request(&target)).await
        };
        let mut crafted = Vec::new();
        for (what, request) in inputs {
            if !budget.allows(cx, 1) {
                break;
            }
            if let Some(x) = send(cx, request).await {
                crafted.push((what, x));
            }
        }
        out.push(Probed {
            label: op.label(),
            baseline,
            crafted,
        });
    }
    Ok(out)
}

/// The valid request, with the first point's baseline value (so that optional query
/// parameters are there as in the crafted requests).
fn baseline_request(target: &Target<'_>) -> crate::probe::ProbeRequest {
    match target.points.iter().find(|p| p.kind != Kind::Other) {
        Some(p) => target.baseline(p),
        None => target.valid(),
    }
}

/// A source file path in `text` under `prefix`: the prefix, then path characters, then a
/// source file extension. Its position.
fn source_path(text: &str, prefix: &str) -> Option<usize> {
    const EXTENSIONS: &[&str] = &[
        ".py", ".rs", ".js", ".ts", ".java", ".rb", ".php", ".go", ".cs", ".kt", ".scala",
    ];
    let mut from = 0;
    while let Some(i) = text[from..].find(prefix) {
        let at = from + i;
        let rest = &text[at..];
        let end = rest
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ',' | ')' | '(')
            })
            .unwrap_or(rest.len());
        let token = rest[..end].trim_end_matches([':', '.']);
        let token = token.split(':').next().unwrap_or(token);
        if EXTENSIONS.iter().any(|e| token.ends_with(e)) {
            return Some(at);
        }
        from = at + prefix.len();
    }
    None
}

/// Up to `len` bytes of `text` from `at` (a char boundary), cut on a char boundary.
fn window(text: &str, at: usize, len: usize) -> &str {
    let mut end = (at + len).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[at..end]
}

/// What an answer reveals: the kind, its position and length.
fn leak(text: &str) -> Option<(&'static str, usize, usize)> {
    const PLAIN: &[(&str, &str)] = &[
        ("Traceback (most recent call last)", "a Python stack trace"),
        ("node_modules/", "a Node.js stack trace"),
        ("/usr/lib/python", "a file path"),
        ("/usr/local/lib/python", "a file path"),
        ("site-packages/", "a file path"),
        ("dist-packages/", "a file path"),
    ];
    for (sig, kind) in PLAIN {
        if let Some(at) = text.find(sig) {
            return Some((kind, at, sig.len()));
        }
    }
    // A Python frame (`File "/app/main.py", line 12`) and a Rust panic (`panicked at src/x.rs:4:5`).
    for (start, then, kind) in [
        ("File \"/", "\", line ", "a Python stack trace"),
        ("panicked at", ".rs:", "a Rust panic"),
    ] {
        if let Some(at) = text.find(start)
            && window(text, at, 300)
                .split('\n')
                .next()
                .is_some_and(|line| line.contains(then))
        {
            return Some((kind, at, start.len()));
        }
    }
    if let Some(at) = text.find("at java.")
        && text.contains(".java:")
    {
        return Some(("a Java stack trace", at, 8));
    }
    if let Some((sig, at)) = sql_error(text) {
        return Some(("a database error", at, sig.len()));
    }
    // SQL text: `SELECT … FROM` within a line.
    let mut from = 0;
    while let Some(i) = text[from..].find("SELECT ") {
        let at = from + i;
        let window = &window(text, at, 300);
        let window = window.split('\n').next().unwrap_or(window);
        if let Some(f) = window.find(" FROM ") {
            return Some(("SQL text", at, f + 6));
        }
        from = at + 7;
    }
    for prefix in [
        "/home/",
        "/app/",
        "/srv/",
        "/opt/",
        "/var/www/",
        "C:\\",
        "C:\\\\",
    ] {
        if let Some(at) = source_path(text, prefix) {
            return Some(("a file path", at, prefix.len()));
        }
    }
    None
}

/// `verbose-errors`: answers to crafted input that show a stack trace, a database error or SQL
/// text, or a source file path, absent from the answer to the valid request. One finding per
/// operation, with the matching excerpt.
pub async fn verbose_errors(cx: &Context) -> Outcome {
    let probed = match crafted(cx).await {
        Ok(p) => p,
        Err(why) => return Outcome::Skipped(why),
    };
    let mut findings = Vec::new();
    let mut answers = 0;
    for p in probed.iter() {
        let base = p
            .baseline
            .as_ref()
            .map(|b| b.text().into_owned())
            .unwrap_or_default();
        for (what, x) in &p.crafted {
            answers += 1;
            let text = x.text();
            let Some((kind, at, len)) = leak(&text) else {
                continue;
            };
            let sig = &text[at..at + len];
            let sent = String::from_utf8_lossy(x.request.body.as_deref().unwrap_or_default())
                .into_owned()
                + &x.request.path;
            if base.contains(sig) || sent.contains(sig) {
                continue;
            }
            let mut evidence = cx.evidence(x);
            evidence.response.push_str("\n\n[");
            evidence.response.push_str(kind);
            evidence.response.push_str("] ");
            evidence
                .response
                .push_str(&cx.secrets.mask(&excerpt_around(&text, at, len, 100)));
            findings.push(
                Finding::new(CheckId::VerboseErrors, p.label.clone(), evidence)
                    .titled(format!("The answer to {what} shows {kind}")),
            );
            break;
        }
    }
    if answers == 0 {
        return Outcome::Skipped("no crafted input could be sent".into());
    }
    Outcome::from_findings(
        findings,
        Some(format!("{answers} answers to crafted input read")),
    )
}

/// Whether a 5xx says the server failed on the input (not a gateway, nor a rate limit or outage
/// with `Retry-After`).
fn failed(x: &Exchange) -> bool {
    let s = x.status.as_u16();
    x.status.is_server_error()
        && s != 502
        && s != 504
        && !(s == 503 && x.header("retry-after").is_some())
}

/// `server-error`: a 5xx answer to crafted input where the valid request did not answer 5xx.
/// One finding per operation.
pub async fn server_error(cx: &Context) -> Outcome {
    let probed = match crafted(cx).await {
        Ok(p) => p,
        Err(why) => return Outcome::Skipped(why),
    };
    let mut findings = Vec::new();
    let mut answers = 0;
    for p in probed.iter() {
        answers += p.crafted.len();
        if p.baseline
            .as_ref()
            .is_some_and(|b| b.status.is_server_error())
        {
            continue;
        }
        if let Some((what, x)) = p.crafted.iter().find(|(_, x)| failed(x)) {
            findings.push(
                Finding::new(CheckId::ServerError, p.label.clone(), cx.evidence(x))
                    .titled(format!("Server error ({}) on {what}", x.status.as_u16())),
            );
        }
    }
    if answers == 0 {
        return Outcome::Skipped("no crafted input could be sent".into());
    }
    Outcome::from_findings(
        findings,
        Some(format!("{answers} answers to crafted input read")),
    )
}

#[cfg(test)]
mod tests;
