//! Test helpers: a minimal axum app on a loopback port and a context aimed at it.

use http::Method;
use serde_json::{Value, json};

use crate::{
    api::{Api, BodyKind, Operation, Param, ParamIn, RequestBody},
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

/// An operation for a test document: path parameters from the template (integers), the body
/// given, `responses` documented.
pub(crate) fn op(
    method: Method,
    path: &str,
    body: Option<(BodyKind, Value)>,
    responses: &[&str],
) -> Operation {
    let params = path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| Param {
            name: name.to_owned(),
            location: ParamIn::Path,
            required: true,
            schema: json!({"type": "integer"}),
            example: None,
        })
        .collect();
    Operation {
        method,
        path: path.to_owned(),
        operation_id: None,
        params,
        body: body.map(|(kind, schema)| RequestBody {
            kind,
            schema,
            required: true,
            example: None,
        }),
        secured: false,
        responses: responses
            .iter()
            .map(|s| crate::api::Response {
                status: (*s).to_owned(),
                schema: None,
            })
            .collect(),
    }
}

/// A document of `operations`.
pub(crate) fn api(operations: Vec<Operation>) -> Api {
    Api {
        title: "test".into(),
        operations,
        token_url: Some("/token".into()),
        base_path: String::new(),
    }
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
