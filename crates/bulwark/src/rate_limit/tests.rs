#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use super::{store::memory::MemoryRateLimitStore, *};

#[derive(Debug)]
struct Broken;

impl RateLimitStore for Broken {
    fn check<'a>(&'a self, _: &'a str, _: &'a Quota) -> store::StoreFuture<'a, Decision> {
        Box::pin(async { Err(crate::store::StoreError::new("down")) })
    }
}

#[tokio::test]
async fn outages_fail_open_or_closed_as_asked_and_are_counted() {
    let limiter = RateLimiter::new(Arc::new(Broken));
    let q = Quota::new(1, Duration::from_secs(60));
    assert_eq!(limiter.check("k", &q, FailMode::Open).await, Ok(None));
    assert_eq!(
        limiter.check("k", &q, FailMode::Closed).await,
        Err(LimiterUnavailable)
    );
    assert_eq!(limiter.store_failures(), 2);
}

#[tokio::test]
async fn concurrent_checks_admit_exactly_the_limit() {
    let limiter = Arc::new(RateLimiter::new(Arc::new(MemoryRateLimitStore::default())));
    let q = Quota::new(20, Duration::from_secs(60));
    let tasks: Vec<_> = (0..70)
        .map(|_| {
            let limiter = Arc::clone(&limiter);
            tokio::spawn(async move {
                limiter
                    .check("k", &q, FailMode::Open)
                    .await
                    .unwrap()
                    .unwrap()
                    .allowed
            })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap());
    }
    assert_eq!(admitted, 20);
}

#[test]
fn headers_show_the_tighter_of_two_limits() {
    let loose = Decision {
        allowed: true,
        limit: 600,
        remaining: 599,
        reset_secs: 1,
        retry_after_secs: 0,
    };
    let tight = Decision {
        allowed: true,
        limit: 5,
        remaining: 2,
        reset_secs: 36,
        retry_after_secs: 0,
    };
    let mut h = http::HeaderMap::new();
    tight.apply_headers(&mut h);
    loose.apply_headers(&mut h);
    assert_eq!(h["ratelimit-limit"], "5");
    assert_eq!(h["ratelimit-remaining"], "2");
    assert_eq!(h["ratelimit-reset"], "36");
    let refused = Decision {
        allowed: false,
        limit: 5,
        remaining: 0,
        reset_secs: 60,
        retry_after_secs: 12,
    };
    let response = refused.too_many_requests();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "12");
}

#[test]
fn an_admitted_requests_own_retry_after_is_kept() {
    // A handler answered 503 with Retry-After (its database is down): the limit admitted the
    // request, so its headers must not erase the handler's advice.
    let admitted = Decision {
        allowed: true,
        limit: 600,
        remaining: 599,
        reset_secs: 1,
        retry_after_secs: 0,
    };
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    admitted.apply_headers(&mut h);
    assert_eq!(h["retry-after"], "1");
    assert_eq!(h["ratelimit-remaining"], "599");
}

#[test]
fn route_keys_parse() {
    let k: RouteKey = "post /items/".parse().unwrap();
    assert_eq!(k.to_string(), "POST /items/");
    assert!("POST items".parse::<RouteKey>().is_err());
    assert!("/items".parse::<RouteKey>().is_err());
}

/// The behaviour every rate-limit store must have.
async fn store_conformance(store: Arc<dyn RateLimitStore>, prefix: &str) {
    let q = Quota::new(10, Duration::from_secs(60));
    let key = format!("{prefix}exact");
    // limit + 50 concurrent checks: exactly `limit` admitted.
    let tasks: Vec<_> = (0..60)
        .map(|_| {
            let store = Arc::clone(&store);
            let key = key.clone();
            tokio::spawn(async move { store.check(&key, &q).await.unwrap() })
        })
        .collect();
    let mut decisions = Vec::new();
    for t in tasks {
        decisions.push(t.await.unwrap());
    }
    assert_eq!(decisions.iter().filter(|d| d.allowed).count(), 10);
    let refused = decisions.iter().find(|d| !d.allowed).unwrap();
    assert_eq!(refused.remaining, 0);
    assert!(
        (5..=6).contains(&refused.retry_after_secs),
        "retry after one interval: {refused:?}"
    );
    // Remaining counts down from limit - 1.
    let other = format!("{prefix}countdown");
    let mut remaining = Vec::new();
    for _ in 0..3 {
        remaining.push(store.check(&other, &q).await.unwrap().remaining);
    }
    assert_eq!(remaining, [9, 8, 7]);
    // Keys are independent.
    assert!(
        store
            .check(&format!("{prefix}fresh"), &q)
            .await
            .unwrap()
            .allowed
    );
}

#[tokio::test]
async fn memory_rate_limit_store_conforms() {
    store_conformance(Arc::new(MemoryRateLimitStore::default()), "").await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_rate_limit_store_conforms() {
    let Ok(url) = std::env::var("BULWARK_TEST_REDIS_URL") else {
        eprintln!("BULWARK_TEST_REDIS_URL is not set: Redis variant not run");
        return;
    };
    let store = store::redis::RedisRateLimitStore::new(&url, Duration::from_millis(500)).unwrap();
    store.ping().await.expect("Redis reachable");
    let prefix = format!("test-{}:", crate::secret::random_token(8));
    store_conformance(Arc::new(store), &prefix).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn an_unreachable_redis_fails_fast() {
    // Nothing listens on port 1: the check must fail within its budget, not hang.
    let store =
        store::redis::RedisRateLimitStore::new("redis://127.0.0.1:1", Duration::from_millis(50))
            .unwrap();
    let q = Quota::new(1, Duration::from_secs(60));
    let started = std::time::Instant::now();
    assert!(store.check("k", &q).await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn header_numbers_from_the_static_table_are_the_numbers() {
    for n in (0..1100).chain([u64::from(u32::MAX), u64::MAX]) {
        assert_eq!(number_value(n), HeaderValue::from(n), "{n}");
    }
}
