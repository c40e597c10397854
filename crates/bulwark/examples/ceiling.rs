//! The load benchmark's ceiling: the cheapest JSON route axum can serve on this machine.
//!
//! `bench/load.sh` runs it beside the real server, pinned to the same core and driven the same
//! way, and reports every Bulwark figure as a share of this one. It does nothing else: no
//! middleware, no state, no logging. The runtime is multi-threaded like the server's so the two
//! pay the same scheduling costs.
//!
//! ```text
//! cargo run --release -p bulwark --example ceiling -- 127.0.0.1:18090
//! curl http://127.0.0.1:18090/health   # {"status":"ok"}
//! ```

use axum::{Json, Router, routing::get};
use serde_json::{Value, json};

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

fn main() -> std::io::Result<()> {
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18090".to_owned());
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(&bind).await?;
            eprintln!("ceiling listening on {}", listener.local_addr()?);
            let app = Router::new().route("/health", get(health));
            axum::serve(listener, app).await
        })
}
