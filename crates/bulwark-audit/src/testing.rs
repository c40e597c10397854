//! Test helpers: a minimal axum app on a loopback port and a context aimed at it.

use crate::{
    api::Api,
    context::{Context, Session},
    probe::{Auth, Probe, ProbeLimits, Secrets},
    target::Target,
};

/// Serves `app` on `127.0.0.1:0`; its base URL (`http://127.0.0.1:PORT/`).
pub(crate) async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });
    format!("http://{addr}/")
}

/// A context for `url` with a generous budget and rate, `api` and bearer `tokens` as sessions.
pub(crate) fn context(url: &str, api: Option<Api>, tokens: &[&str]) -> Context {
    let limits = ProbeLimits {
        max_requests: 10_000,
        rps: 10_000,
        timeout: std::time::Duration::from_secs(5),
    };
    let target = Target::parse(url).expect("target");
    let secrets = Secrets::default();
    let mut cx = Context::new(Probe::new(target, limits).expect("probe"), secrets);
    cx.api = api;
    for (i, t) in tokens.iter().enumerate() {
        cx.secrets.add(t);
        cx.sessions.push(Session {
            label: format!("user {}", char::from(b'A' + i as u8)),
            username: None,
            auth: Auth {
                token: Some((*t).to_owned()),
                headers: Vec::new(),
            },
        });
    }
    cx
}

#[cfg(test)]
mod tests {
    use crate::probe::ProbeRequest;

    #[tokio::test]
    async fn the_probe_talks_to_a_local_app_and_masks_what_it_sent() {
        let app = axum::Router::new().route("/echo", axum::routing::get(|| async { "hello" }));
        let url = super::serve(app).await;
        let cx = super::context(&url, None, &["s3cret-token"]);
        let request = ProbeRequest::get("/echo").with_auth(&cx.sessions[0].auth);
        let exchange = cx.send(request).await.expect("answer");
        assert_eq!(exchange.status, 200);
        assert_eq!(exchange.text(), "hello");
        let evidence = cx.evidence(&exchange);
        assert!(!evidence.request.contains("s3cret-token"), "{evidence:?}");
        assert_eq!(cx.probe.sent(), 1);
    }
}
