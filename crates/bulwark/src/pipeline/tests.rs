use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::Context,
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    response::Response,
    routing::{get, post},
};
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use tower::{Layer as _, Service as _, ServiceExt as _, service_fn};

use super::*;
use crate::{
    jwt::{JwtAuth, JwtConfig, KeyRing, SigningKey},
    rate_limit::{Quota, RateLimitPolicy, store::memory::MemoryRateLimitStore},
};

const PEER: ([u8; 4], u16) = ([192, 0, 2, 7], 40000);

fn request(method: Method, uri: &str) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(PEER)));
    request
}

fn jwt() -> JwtAuth {
    let ring = Arc::new(KeyRing::new());
    ring.replace(vec![SigningKey::generate_hs256(0)]);
    JwtAuth::new(ring, JwtConfig::new("test", "test"))
}

async fn detail(response: Response) -> String {
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    value["detail"].as_str().unwrap().to_owned()
}

/// A router counting the requests that reach it.
fn counted_router(hits: &Arc<AtomicUsize>) -> Router {
    let hits = Arc::clone(hits);
    Router::new()
        .route(
            "/me",
            get(move || {
                hits.fetch_add(1, Ordering::SeqCst);
                async { "me" }
            }),
        )
        .route("/open", get(|| async { "open" }))
        .route("/token", post(|| async { "token" }))
}

#[tokio::test]
async fn a_request_without_its_socket_address_is_a_500_never_a_shared_bucket() {
    let app = Pipeline::builder()
        .build()
        .unwrap()
        .layer(Router::new().route("/open", get(|| async { "open" })));
    let bare = Request::builder().uri("/open").body(Body::empty()).unwrap();
    let response = app.oneshot(bare).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(detail(response).await, "Internal Server Error");
}

#[tokio::test]
async fn a_route_that_requires_a_caller_is_refused_before_the_router() {
    let hits = Arc::new(AtomicUsize::new(0));
    let jwt = jwt();
    let app = Pipeline::builder()
        .authentication(jwt.clone())
        .authenticated("/me", [Method::GET])
        .build()
        .unwrap()
        .layer(counted_router(&hits));

    let response = app
        .clone()
        .oneshot(request(Method::GET, "/me"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    let mut forged = request(Method::GET, "/me");
    forged
        .headers_mut()
        .insert(header::AUTHORIZATION, "Bearer a.b.c".parse().unwrap());
    let response = app.clone().oneshot(forged).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    let token = jwt
        .issue("u1", Some("alice"), &["user".to_owned()])
        .unwrap();
    let mut signed = request(Method::GET, "/me");
    signed.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {}", token.token).parse().unwrap(),
    );
    let response = app.clone().oneshot(signed).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Routes not declared pass through to the router.
    let response = app.oneshot(request(Method::GET, "/open")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn login_routes_are_limited_per_client_ip() {
    let limits = RateLimitPolicy::new(Arc::new(MemoryRateLimitStore::default()))
        .login_quotas(
            Quota::new(2, Duration::from_secs(60)),
            Quota::new(2, Duration::from_secs(60)),
        )
        .login_route("POST /token".parse().unwrap());
    let app = Pipeline::builder()
        .rate_limits(limits)
        .build()
        .unwrap()
        .layer(counted_router(&Arc::new(AtomicUsize::new(0))));
    for _ in 0..2 {
        let response = app
            .clone()
            .oneshot(request(Method::POST, "/token"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["ratelimit-limit"], "2");
    }
    let refused = app
        .clone()
        .oneshot(request(Method::POST, "/token"))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key(header::RETRY_AFTER));
    // Other routes keep their own (default) budget.
    let other = app.oneshot(request(Method::GET, "/open")).await.unwrap();
    assert_eq!(other.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_answer_is_hardened_and_carries_a_request_id() {
    let app = Pipeline::builder()
        .build()
        .unwrap()
        .layer(Router::new().route("/open", get(|| async { "open" })));
    for uri in ["/open", "/missing"] {
        let response = app
            .clone()
            .oneshot(request(Method::GET, uri))
            .await
            .unwrap();
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        assert!(
            !response
                .headers()
                .contains_key(header::STRICT_TRANSPORT_SECURITY)
        );
        assert_eq!(response.headers()[X_REQUEST_ID].len(), 36);
    }
    // A client's own request id is not believed (only a trusted proxy's is).
    let mut own = request(Method::GET, "/open");
    own.headers_mut()
        .insert(X_REQUEST_ID, "forged-id".parse().unwrap());
    let response = app.oneshot(own).await.unwrap();
    assert_ne!(response.headers()[X_REQUEST_ID], "forged-id");
}

#[tokio::test]
async fn cors_answers_listed_origins_only() {
    let app = Pipeline::builder()
        .allowed_origins(["https://app.example"])
        .build()
        .unwrap()
        .layer(Router::new().route("/open", get(|| async { "open" })));
    let mut listed = request(Method::GET, "/open");
    listed
        .headers_mut()
        .insert(header::ORIGIN, "https://app.example".parse().unwrap());
    let response = app.clone().oneshot(listed).await.unwrap();
    assert_eq!(
        response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example"
    );
    assert_eq!(
        response.headers()[header::ACCESS_CONTROL_ALLOW_CREDENTIALS],
        "true"
    );
    let mut other = request(Method::GET, "/open");
    other
        .headers_mut()
        .insert(header::ORIGIN, "https://evil.example".parse().unwrap());
    let response = app.oneshot(other).await.unwrap();
    assert!(
        !response
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

#[test]
fn a_wildcard_or_malformed_origin_is_refused_at_build() {
    for origin in ["*", "app.example", "https://app.example/path", "ftp://x"] {
        let built = Pipeline::builder().allowed_origins([origin]).build();
        assert!(built.is_err(), "{origin}");
    }
    assert!(Pipeline::builder().route("/a/{id").build().is_err());
}

/// The pipeline over a bare service (the hardening tests): 16-byte bodies, 50 ms timeout.
fn harden<F, Fut>(handler: F) -> PipelineService<tower::util::ServiceFn<F>>
where
    F: FnMut(axum::extract::Request) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Response, Infallible>> + Send + 'static,
{
    Pipeline::builder()
        .max_body(16)
        .request_timeout(Duration::from_millis(50))
        .build()
        .unwrap()
        .layer(service_fn(handler))
}

fn status_only(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

async fn answer_after(wait: Duration) -> Response {
    harden(move |_| async move {
        tokio::time::sleep(wait).await;
        Ok(Response::new(Body::from("done")))
    })
    .oneshot(request(Method::GET, "/"))
    .await
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_request_answered_in_time_is_untouched_but_hardened() {
    let response = answer_after(Duration::from_millis(10)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert!(response.headers().get(header::CONNECTION).is_none());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"done");
}

#[tokio::test(start_paused = true)]
async fn a_request_still_waiting_at_the_deadline_is_answered_408_and_closed() {
    let started = tokio::time::Instant::now();
    let response = answer_after(Duration::from_secs(3600)).await;
    assert_eq!(started.elapsed(), Duration::from_millis(50));
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(response.headers()[header::CONNECTION], "close");
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert!(!detail(response).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_timer_is_armed_only_once_the_request_waits() {
    let mut service = harden(|request: axum::extract::Request| async move {
        if request.headers().contains_key("wait") {
            tokio::task::yield_now().await;
        }
        Ok(Response::new(Body::empty()))
    });
    let mut cx = Context::from_waker(std::task::Waker::noop());

    let mut at_once = std::pin::pin!(service.call(request(Method::GET, "/")));
    assert!(at_once.as_mut().poll(&mut cx).is_ready());
    assert!(at_once.timer.is_none());

    let mut waiting = request(Method::GET, "/");
    waiting.headers_mut().insert("wait", "1".parse().unwrap());
    let mut waiting = std::pin::pin!(service.call(waiting));
    assert!(waiting.as_mut().poll(&mut cx).is_pending());
    assert!(waiting.timer.is_some());
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_413_unread() {
    let mut long = request(Method::POST, "/");
    *long.body_mut() = Body::from("x".repeat(17));
    long.headers_mut()
        .insert(header::CONTENT_LENGTH, "17".parse().unwrap());
    let response = harden(|_| async { panic!("must not be called") })
        .oneshot(long)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.headers()[header::CONNECTION], "close");
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
}

#[tokio::test]
async fn a_body_is_cut_at_the_limit_whatever_it_declares() {
    let read = |request: axum::extract::Request| async move {
        let status = match request.into_body().collect().await {
            Ok(_) => StatusCode::OK,
            Err(_) => StatusCode::PAYLOAD_TOO_LARGE,
        };
        Ok(status_only(status))
    };
    let with_body = |n: usize| {
        let mut r = request(Method::POST, "/");
        *r.body_mut() = Body::from("x".repeat(n));
        r
    };
    let long = harden(read).oneshot(with_body(17)).await.unwrap();
    assert_eq!(long.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let short = harden(read).oneshot(with_body(16)).await.unwrap();
    assert_eq!(short.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_panic_becomes_a_generic_500_without_its_message() {
    let response = harden(|_| async { panic!("secret-panic-text") })
        .oneshot(request(Method::GET, "/"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(!detail(response).await.contains("secret"));
}

#[tokio::test]
async fn a_panic_while_called_becomes_a_500_too() {
    let service = Pipeline::builder()
        .https(true)
        .build()
        .unwrap()
        .layer(tower::service_fn(
            |_: axum::extract::Request| -> std::future::Ready<Result<Response, Infallible>> {
                panic!("in call")
            },
        ));
    let response = service.oneshot(request(Method::GET, "/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        response
            .headers()
            .contains_key(header::STRICT_TRANSPORT_SECURITY)
    );
}

#[tokio::test]
async fn error_bodies_get_the_contract_shape() {
    let response = harden(|_| async { Ok(status_only(StatusCode::NOT_FOUND)) })
        .oneshot(request(Method::GET, "/"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(detail(response).await, "Not Found");
}

/// An observer that records what it was told.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<(String, u16)>>);

impl Observer for Arc<Recorder> {
    type Route = String;

    fn route(&self, template: &str) -> String {
        template.to_owned()
    }

    fn finished(&self, route: &String, request: &Finished<'_>, response: &Response) {
        assert_eq!(route, request.route);
        self.0
            .lock()
            .unwrap()
            .push((route.clone(), response.status().as_u16()));
    }
}

#[tokio::test]
async fn the_observer_hears_of_every_request_with_its_template() {
    let recorder = Arc::new(Recorder::default());
    let app = Pipeline::builder()
        .authentication(jwt())
        .authenticated("/me", [Method::GET])
        .route("/open")
        .observer(Arc::clone(&recorder))
        .build()
        .unwrap()
        .layer(counted_router(&Arc::new(AtomicUsize::new(0))));
    for uri in ["/me", "/open", "/nowhere"] {
        app.clone()
            .oneshot(request(Method::GET, uri))
            .await
            .unwrap();
    }
    assert_eq!(
        *recorder.0.lock().unwrap(),
        [
            ("/me".to_owned(), 401),
            ("/open".to_owned(), 200),
            (UNMATCHED.to_owned(), 404)
        ]
    );
}
