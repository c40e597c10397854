//! Rate-limit configuration strings and the GCRA step (`bulwark::rate_limit`).
//!
//! Input: byte 0 picks the mode (`% 4`); the rest is text.
//!
//! - mode 0, quota: the text is a quota such as `5/minute`;
//! - mode 1, route: the text is a route key such as `POST /items/`;
//! - mode 2, step: lines `quota`, `tat` (`-` for a fresh key), `now`: one GCRA step at any
//!   64-bit times;
//! - mode 3, sequence: a quota line, then lines of time steps in milliseconds; the requests are
//!   run through GCRA in order.
//!
//! Properties: never a panic or an overflow; a parsed quota admits 1 to 1,000,000 requests per
//! second, minute, hour or day, and prints back to the same quota; a route key prints back to the
//! same key; a fresh key admits exactly `limit` requests at once and then refuses with a
//! `Retry-After` of at least one second; over any run, at most `limit` requests pass at once and
//! one more per emission interval after that (GCRA's bound).
#![no_main]

#[path = "common.rs"]
mod common;

use std::time::Duration;

use bulwark::rate_limit::{Quota, RouteKey};
use libfuzzer_sys::fuzz_target;

const PERIODS: [u64; 4] = [1, 60, 3_600, 86_400];

fn quota(text: &str) {
    let Ok(q) = text.parse::<Quota>() else {
        return;
    };
    assert!((1..=1_000_000).contains(&q.limit()), "{text:?} -> {q:?}");
    assert!(PERIODS.contains(&q.period().as_secs()), "{text:?} -> {q:?}");
    assert_eq!(q.period(), Duration::from_secs(q.period().as_secs()));
    let printed = q.to_string();
    assert_eq!(
        printed.parse::<Quota>().as_ref(),
        Ok(&q),
        "{text:?} -> {printed:?}"
    );
    let interval = q.interval_us();
    assert!(interval >= 1);
    // `limit` intervals span the period, give or take rounding up: never a faster rate.
    assert_eq!(q.burst_us(), interval * i64::from(q.limit()));
    assert!(q.burst_us() >= q.period_us(), "{q:?}");
    assert!(q.burst_us() < q.period_us() + i64::from(q.limit()), "{q:?}");
    if q.limit() <= 2_000 {
        burst(&q);
    }
}

/// A fresh key admits exactly `limit` requests at one instant, counting down, then refuses.
fn burst(q: &Quota) {
    let now = 1_700_000_000_000_000;
    // The quota is whole again after at most the burst tolerance (the period, rounded up).
    let whole_secs = u64::try_from(q.burst_us())
        .expect("positive")
        .div_ceil(1_000_000);
    let mut tat = None;
    for i in 0..q.limit() {
        let (d, next) = q.gcra(tat, now);
        assert!(d.allowed, "{q}: request {i} of a burst refused");
        assert_eq!(d.remaining, q.limit() - 1 - i, "{q}: remaining after {i}");
        assert!(d.reset_secs <= whole_secs, "{q}: {d:?}");
        tat = next;
        assert!(tat.is_some());
    }
    let (d, next) = q.gcra(tat, now);
    assert!(!d.allowed, "{q}: request {} of a burst passed", q.limit());
    assert!(next.is_none());
    assert_eq!(d.remaining, 0);
    assert!(
        d.retry_after_secs >= 1 && d.retry_after_secs <= whole_secs,
        "{d:?}"
    );
}

fn route(text: &str) {
    let Ok(key) = text.parse::<RouteKey>() else {
        return;
    };
    let printed = key.to_string();
    assert_eq!(
        printed.parse::<RouteKey>().as_ref(),
        Ok(&key),
        "{text:?} -> {printed:?}"
    );
    let (_, path) = printed.split_once(' ').expect("METHOD /path");
    assert!(path.starts_with('/'), "{printed:?}");
}

fn step(text: &str) {
    let mut lines = text.lines();
    let Some(Ok(q)) = lines.next().map(str::parse::<Quota>) else {
        return;
    };
    let tat = match lines.next().map(str::trim) {
        Some("-") | None => None,
        Some(t) => match t.parse::<i64>() {
            Ok(t) => Some(t),
            Err(_) => return,
        },
    };
    let Some(Ok(now)) = lines.next().map(|l| l.trim().parse::<i64>()) else {
        return;
    };
    let (d, next) = q.gcra(tat, now);
    assert!(d.remaining <= q.limit());
    assert_eq!(d.limit, q.limit());
    assert_eq!(d.allowed, next.is_some(), "{d:?} {next:?}");
    if d.allowed {
        assert_eq!(d.retry_after_secs, 0);
    } else {
        assert!(d.retry_after_secs >= 1, "{d:?}");
        assert_eq!(d.remaining, 0);
    }
}

fn sequence(text: &str) {
    let mut lines = text.lines();
    let Some(Ok(q)) = lines.next().map(str::parse::<Quota>) else {
        return;
    };
    let mut now: i64 = 1_700_000_000_000_000;
    let mut tat = None;
    let mut passed: Vec<i64> = Vec::new();
    for line in lines.take(512) {
        let Ok(step_ms) = line.trim().parse::<u32>() else {
            continue;
        };
        now += i64::from(step_ms) * 1_000;
        let (d, next) = q.gcra(tat, now);
        if d.allowed {
            tat = next;
            passed.push(now);
        } else {
            assert!(d.retry_after_secs >= 1);
            // Waiting as told lets the next request pass.
            let later = now + i64::try_from(d.retry_after_secs).expect("small") * 1_000_000;
            assert!(
                q.gcra(tat, later).0.allowed,
                "{q}: still refused after Retry-After"
            );
        }
    }
    // GCRA's bound: in any span of w µs, at most `limit` requests at once plus one per
    // interval: count <= limit + w / interval.
    let interval = q.interval_us();
    for (i, first) in passed.iter().enumerate() {
        for (j, last) in passed.iter().enumerate().skip(i) {
            let count = i64::try_from(j - i + 1).expect("small");
            let bound = i64::from(q.limit()) + (last - first) / interval;
            assert!(
                count <= bound,
                "{q}: {count} requests passed in {} µs",
                last - first
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(&first) = data.first() else {
        return;
    };
    let text = common::text(data);
    match first % 4 {
        0 => quota(&text),
        1 => route(&text),
        2 => step(&text),
        _ => sequence(&text),
    }
});
