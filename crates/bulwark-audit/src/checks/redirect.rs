//! URLs taken from input: redirects to other sites, fetches by the server.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    catalog::CheckId,
    checks::injection::{
        NO_DOCUMENT, note,
        points::{
            Budget, Kind, Place, Planner, Point, Target, each_point, excerpt_around, random_token,
            send,
        },
    },
    context::{Context, Outcome},
    objects,
    probe::Exchange,
    report::Finding,
};

/// The host the redirect payloads point to (reserved: `.example` never resolves).
const OFF_SITE: &str = "bwk-redirect.example";
/// The most requests the open redirect check sends.
const REDIRECT_CAP: u64 = 80;
/// The most requests the SSRF check sends.
const SSRF_CAP: u64 = 80;

/// A name without case, `_` or `-`.
fn plain(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Whether a parameter name says "where to go next".
fn redirect_like(point: &Point) -> bool {
    const NAMES: &[&str] = &[
        "next",
        "url",
        "redirect",
        "redirecturl",
        "redirecturi",
        "redirectto",
        "redir",
        "return",
        "returnto",
        "returnurl",
        "continue",
        "dest",
        "destination",
        "goto",
        "target",
        "r",
        "u",
        "nexturl",
        "callbackurl",
        "forward",
        "successurl",
        "back",
    ];
    point.kind != Kind::Other && NAMES.contains(&plain(&point.name).as_str())
}

/// Where `x` sends the browser: a 3xx `Location`, a meta refresh or a script assigning
/// `location`, when it points to [`OFF_SITE`]. The line that shows it.
fn redirects_off_site(cx: &Context, x: &Exchange) -> Option<String> {
    if x.status.is_redirection()
        && let Some(location) = x.header("location")
    {
        let base = cx.probe.target().base();
        let host = base
            .join(location.trim())
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
        if host.as_deref() == Some(OFF_SITE) {
            return Some(format!("Location: {location}"));
        }
    }
    if !x.is_html() {
        return None;
    }
    let text = x.text();
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(OFF_SITE) {
        let at = from + i;
        from = at + OFF_SITE.len();
        // The URL must start there: `https://host` or `//host`, right after a quote or `url=`.
        let before = &lower[..at];
        let url_start = before
            .strip_suffix("https://")
            .or_else(|| before.strip_suffix("//"));
        let Some(prefix) = url_start else { continue };
        let context = &prefix[prefix.len().saturating_sub(120)..];
        let context = context.trim_end_matches(['"', '\'', ' ', '=', '(']);
        let meta = context.contains("http-equiv")
            && context.contains("refresh")
            && context.ends_with("url");
        let script = [
            "location",
            "location.href",
            "location.replace",
            "location.assign",
        ]
        .iter()
        .any(|l| context.ends_with(l));
        if meta || script {
            return Some(excerpt_around(&text, at, OFF_SITE.len(), 60));
        }
    }
    None
}

/// `open-redirect`: `https://bwk-redirect.example/` and `//bwk-redirect.example/` in the
/// parameters named like redirect targets (`next`, `url`, `return_to`, ...); found when the
/// answer sends the browser there (a 3xx `Location`, a meta refresh, a script setting
/// `location`). No redirect is followed.
pub async fn open_redirect(cx: &Context) -> Outcome {
    let (findings, tried, short) = each_point!(
        cx,
        REDIRECT_CAP,
        2,
        |_t: &Target, p: &Point| redirect_like(p),
        |target, point| redirect_point(cx, &target, point).await
    );
    if tried == 0 {
        return Outcome::Skipped("no parameter named like a redirect target".into());
    }
    Outcome::from_findings(findings, note(tried, short, "parameters"))
}

async fn redirect_point(cx: &Context, target: &Target<'_>, point: &Point) -> Option<Finding> {
    for payload in [format!("https://{OFF_SITE}/"), format!("//{OFF_SITE}/")] {
        let x = send(cx, target.with_text(point, &payload)).await?;
        if let Some(line) = redirects_off_site(cx, &x) {
            let mut evidence = cx.evidence(&x);
            evidence.response.push_str("\n\n[redirect] ");
            evidence.response.push_str(&cx.secrets.mask(&line));
            return Some(
                Finding::new(CheckId::OpenRedirect, target.label(), evidence).titled(format!(
                    "Open redirect: {} sends the browser to any site",
                    point.label()
                )),
            );
        }
    }
    None
}

// --- SSRF --------------------------------------------------------------------------------------

/// Whether a parameter or field may hold a URL the server fetches.
fn url_like(point: &Point) -> bool {
    if point.kind == Kind::Number {
        return false;
    }
    let format = point.format();
    if matches!(format.as_str(), "uri" | "url" | "iri" | "uri-reference") {
        return true;
    }
    if point.kind == Kind::Other {
        return false;
    }
    const NAMES: &[&str] = &[
        "url", "uri", "link", "src", "href", "callback", "webhook", "feed", "image", "fetch",
        "endpoint", "proxy", "remote", "source",
    ];
    let name = plain(&point.name);
    NAMES.contains(&name.as_str())
        || ["url", "uri", "webhook", "callback", "feed"]
            .iter()
            .any(|w| name.ends_with(w))
}

/// A loopback HTTP listener that records the paths it is asked for.
struct Canary {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Canary {
    async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let record = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    let read = tokio::time::timeout(Duration::from_secs(2), async {
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                    })
                    .await;
                    let _ = read;
                    let line = String::from_utf8_lossy(&head);
                    if let Some(path) = line.lines().next().and_then(|l| l.split(' ').nth(1)) {
                        record
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(path.to_owned());
                    }
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                });
            }
        });
        Ok(Canary { port, seen, task })
    }

    fn url(&self, token: &str) -> String {
        format!("http://127.0.0.1:{}/bwk-{token}", self.port)
    }

    fn received(&self, token: &str) -> bool {
        let wanted = format!("/bwk-{token}");
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|p| p.split('?').next() == Some(wanted.as_str()))
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A probe sent with a canary URL, waiting to be fetched.
struct Pending {
    token: String,
    operation: String,
    what: String,
    exchange: Exchange,
}

fn ssrf_finding(cx: &Context, canary: &Canary, p: &Pending) -> Finding {
    let mut evidence = cx.evidence(&p.exchange);
    evidence.response.push_str(&format!(
        "\n\n[canary] the server requested {}",
        canary.url(&p.token)
    ));
    Finding::new(CheckId::Ssrf, p.operation.clone(), evidence).titled(format!(
        "Server-side request forgery: the server fetches the URL given in {}",
        p.what
    ))
}

/// `ssrf`: a URL of a canary listener of the audit's own (loopback, random path) in each
/// parameter or body field that holds a URL (by name or `format: uri`), including the fields of
/// objects the audit creates; found when the canary is asked for that path. Needs a loopback
/// target (the canary must be reachable from it); the canary is not the target, so no request
/// of the audit leaves the target's origin.
pub async fn ssrf(cx: &Context) -> Outcome {
    if !cx.probe.target().is_loopback() {
        return Outcome::Skipped(
            "needs an out-of-band listener the target can reach (the target is not on loopback)"
                .into(),
        );
    }
    let Some(api) = cx.api.as_ref() else {
        return Outcome::Skipped(NO_DOCUMENT.into());
    };
    let canary = match Canary::start().await {
        Ok(c) => c,
        Err(e) => return Outcome::Skipped(format!("could not start the canary listener: {e}")),
    };
    let Some(mut planner) = Planner::new(cx) else {
        return Outcome::Skipped(NO_DOCUMENT.into());
    };
    let budget = Budget::new(cx, SSRF_CAP);
    let mut pending: Vec<Pending> = Vec::new();
    let mut findings: Vec<Finding> = Vec::new();
    let mut done: HashSet<String> = HashSet::new();
    // Operations that read: one point at a time.
    for op in planner.operations() {
        let Some(target) = planner.target_if(op, |_, p| url_like(p)).await else {
            continue;
        };
        for point in target.points.iter().filter(|p| url_like(p)).take(3) {
            if !budget.allows(cx, 1) || done.contains(&target.label()) {
                break;
            }
            let token = random_token();
            let Some(x) = send(cx, target.with_text(point, &canary.url(&token))).await else {
                continue;
            };
            let p = Pending {
                token,
                operation: target.label(),
                what: point.label(),
                exchange: x,
            };
            if canary.received(&p.token) {
                findings.push(ssrf_finding(cx, &canary, &p));
                done.insert(p.operation.clone());
            } else {
                pending.push(p);
            }
        }
    }
    // Objects whose URL fields the server may fetch when it stores them.
    if !cx.sessions.is_empty() {
        for collection in objects::collections(api).into_iter().take(5) {
            let target = planner.target(collection).await;
            let fields: Vec<&Point> = target
                .points
                .iter()
                .filter(|p| p.place == Place::Body && url_like(p))
                .collect();
            if fields.is_empty() || !budget.allows(cx, 1) {
                continue;
            }
            let mut body = target.fill.body.clone().unwrap_or(json!({}));
            let mut tokens = Vec::new();
            if let Some(obj) = body.as_object_mut() {
                for f in &fields {
                    let token = random_token();
                    obj.insert(f.name.clone(), Value::String(canary.url(&token)));
                    tokens.push((token, f.label()));
                }
            }
            if let Ok(Some((_, x))) = objects::create(cx, collection, 0, Some(body)).await {
                for (token, what) in tokens {
                    pending.push(Pending {
                        token,
                        operation: collection.label(),
                        what,
                        exchange: x.clone(),
                    });
                }
            }
        }
    }
    let tried = pending.len() + findings.len();
    if tried == 0 {
        return Outcome::Skipped("no parameter or field that holds a URL".into());
    }
    // Fetches made in the background: a moment to arrive.
    if !pending.is_empty() {
        for _ in 0..15 {
            if pending.iter().any(|p| canary.received(&p.token)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        for p in &pending {
            if !done.contains(&p.operation) && canary.received(&p.token) {
                findings.push(ssrf_finding(cx, &canary, p));
                done.insert(p.operation.clone());
            }
        }
    }
    Outcome::from_findings(findings, Some(format!("{tried} URL parameters tried")))
}

#[cfg(test)]
mod tests;
