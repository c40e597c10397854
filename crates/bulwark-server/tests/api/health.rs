use serde_json::{Value, json};

use crate::helpers::{Backend, spawn_app};
use crate::test_both;

async fn health_answers_ok(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/health", None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
}
test_both!(health_answers_ok);

async fn ready_answers_ok_when_the_database_answers(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/ready", None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
}
test_both!(ready_answers_ok_when_the_database_answers);
