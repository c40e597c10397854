//! Input served back as HTML unescaped: reflected and stored.
//!
//! A finding needs an HTML answer (`text/html`, `application/xhtml+xml`) that holds the random
//! marker tag as sent (`<bwk…>`): JSON answers and escaped markers (`&lt;bwk…`) are not
//! findings.

use serde_json::{Value, json};

use crate::{
    catalog::CheckId,
    checks::injection::{
        NO_DOCUMENT, note,
        points::{self, Kind, Place, Planner, Point, Target, each_point, random_token, send},
    },
    context::{Context, Outcome},
    generate::request_for,
    objects,
    probe::Exchange,
    report::Finding,
};

/// The most requests the reflected check sends.
const REFLECTED_CAP: u64 = 150;
/// The most requests the stored check sends.
const STORED_CAP: u64 = 120;
/// The most collections the stored check fills.
const COLLECTIONS: usize = 5;
/// The most readers of one object tried.
const READERS: usize = 6;

/// Whether `x` is HTML holding `tag` as sent.
fn renders(x: &Exchange, tag: &str) -> bool {
    x.is_html() && x.text().contains(tag)
}

fn evidence_with(cx: &Context, x: &Exchange, note: &str) -> crate::report::Evidence {
    let mut evidence = cx.evidence(x);
    let text = x.text();
    if let Some(at) = text.find(note) {
        evidence.response.push_str("\n\n[unescaped] ");
        evidence
            .response
            .push_str(
                &cx.secrets
                    .mask(&points::excerpt_around(&text, at, note.len(), 60)),
            );
    }
    evidence
}

/// `xss-reflected`: a random marker tag (`<bwk…>"'`, then `<script>bwk…</script>` when the
/// first comes back altered) in each text parameter and body field; found when an HTML answer
/// holds it unescaped.
pub async fn reflected(cx: &Context) -> Outcome {
    let (findings, tried, short) = each_point!(
        cx,
        REFLECTED_CAP,
        2,
        |_t: &Target, p: &Point| p.kind == Kind::Text,
        |target, point| reflected_point(cx, &target, point).await
    );
    if tried == 0 {
        return Outcome::Skipped("no text parameter or body field to try".into());
    }
    Outcome::from_findings(findings, note(tried, short, "parameters"))
}

async fn reflected_point(cx: &Context, target: &Target<'_>, point: &Point) -> Option<Finding> {
    let marker = format!("bwk{}", random_token());
    let tag = format!("<{marker}>");
    let first = format!("{tag}\"'");
    let x = send(cx, target.with_text(point, &first)).await?;
    let shown = if renders(&x, &tag) {
        Some((x, tag))
    } else if x.text().contains(&marker) {
        let script = format!("<script>{marker}</script>");
        let y = send(cx, target.with_text(point, &script)).await?;
        renders(&y, &script).then_some((y, script))
    } else {
        None
    };
    let (x, tag) = shown?;
    Some(
        Finding::new(
            CheckId::XssReflected,
            target.label(),
            evidence_with(cx, &x, &tag),
        )
        .titled(format!(
            "Reflected XSS: {} comes back unescaped in HTML",
            point.label()
        )),
    )
}

/// `xss-stored`: objects created (as the first user) with a marker tag in each text field, then
/// read through every `GET` that may render them (the item path, pages under it, the
/// collection); found when an HTML answer holds a marker unescaped. The objects are removed at
/// the end of the audit.
pub async fn stored(cx: &Context) -> Outcome {
    let Some(api) = cx.api.as_ref() else {
        return Outcome::Skipped(NO_DOCUMENT.into());
    };
    let Some(session) = cx.sessions.first() else {
        return Outcome::Skipped("no user to create objects as (give --credentials)".into());
    };
    let collections = objects::collections(api);
    if collections.is_empty() {
        return Outcome::Skipped("no operation that creates objects with an item path".into());
    }
    let Some(mut planner) = Planner::new(cx) else {
        return Outcome::Skipped(NO_DOCUMENT.into());
    };
    let budget = points::Budget::new(cx, STORED_CAP);
    let mut findings = Vec::new();
    let mut tried = 0usize;
    let mut made = 0usize;
    'collections: for collection in collections.into_iter().take(COLLECTIONS) {
        let target = planner.target(collection).await;
        let fields: Vec<&Point> = target
            .points
            .iter()
            .filter(|p| p.place == Place::Body && p.kind == Kind::Text)
            .filter(|p| {
                p.schema
                    .get("maxLength")
                    .and_then(Value::as_u64)
                    .is_none_or(|max| max >= 20)
            })
            .collect();
        if fields.is_empty() {
            continue;
        }
        tried += 1;
        // All fields at once; one at a time when the API refuses that.
        let run = random_token();
        let tags: Vec<String> = (0..fields.len())
            .map(|i| format!("<bwk{run}f{i}>"))
            .collect();
        let mut attempts: Vec<Vec<usize>> = vec![(0..fields.len()).collect()];
        attempts.extend((0..fields.len().min(4)).map(|i| vec![i]));
        for (n, attempt) in attempts.iter().enumerate() {
            if !budget.allows(cx, 1 + READERS as u64) {
                break 'collections;
            }
            let mut body = target.fill.body.clone().unwrap_or(json!({}));
            if let Some(obj) = body.as_object_mut() {
                for &i in attempt {
                    obj.insert(fields[i].name.clone(), json!(format!("{}\"'", tags[i])));
                }
            }
            let Ok(Some((object, created))) = objects::create(cx, collection, 0, Some(body)).await
            else {
                continue;
            };
            made += 1;
            let mut answers = vec![created];
            for (reader, fill) in points::readers(api, &object).into_iter().take(READERS) {
                let mut request = request_for(reader, &fill);
                if reader.secured {
                    request = request.with_auth(&session.auth);
                }
                if let Some(x) = send(cx, request).await {
                    answers.push(x);
                }
            }
            for x in &answers {
                if let Some(i) = attempt.iter().copied().find(|&i| renders(x, &tags[i])) {
                    let reader = api
                        .operations
                        .iter()
                        .find(|o| {
                            o.method == x.request.method && path_matches(&o.path, &x.request.path)
                        })
                        .map_or_else(|| collection.label(), |o| o.label());
                    findings.push(
                        Finding::new(CheckId::XssStored, reader, evidence_with(cx, x, &tags[i]))
                            .titled(format!(
                                "Stored XSS: {} sent to {} comes back unescaped in HTML",
                                fields[i].label(),
                                collection.label()
                            )),
                    );
                    continue 'collections;
                }
            }
            // Created with every field: the one-at-a-time attempts would show nothing more.
            if n == 0 {
                continue 'collections;
            }
        }
    }
    if tried == 0 {
        return Outcome::Skipped("no collection with a text field to fill".into());
    }
    if made == 0 && findings.is_empty() {
        return Outcome::Skipped("the API created none of the objects the check sent".into());
    }
    Outcome::from_findings(
        findings,
        Some(format!("{made} objects created and read back")),
    )
}

/// Whether a sent path (`/items/7/page?x=1`) is on a template (`/items/{id}/page`).
fn path_matches(template: &str, sent: &str) -> bool {
    let sent = sent.split('?').next().unwrap_or_default();
    let t: Vec<&str> = template.trim_end_matches('/').split('/').collect();
    let s: Vec<&str> = sent.trim_end_matches('/').split('/').collect();
    t.len() == s.len()
        && t.iter()
            .zip(&s)
            .all(|(t, s)| t == s || (t.starts_with('{') && t.ends_with('}')))
}

#[cfg(test)]
mod tests;
