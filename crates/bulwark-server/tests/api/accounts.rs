//! Self-service accounts over HTTP (contract: "Accounts (self-service)", "Mail"): password
//! change, e-mail address and verification, password reset, user deletion. Mails are read from
//! the outbox (the default without `smtp_url`); the SMTP path is in `mail.rs`.

use serde_json::json;

use crate::{
    helpers::{Backend, PASSWORD, detail, json_with_status, spawn_app},
    mailbox, test_both,
};

const NEW_PASSWORD: &str = "quiet-Lantern-48-orbit";

async fn a_forgotten_password_is_reset_through_the_mailed_link(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("Alice@Example.com"))
        .await;
    let old = app.access_token("alice", PASSWORD).await;

    // Act: ask with another letter case, follow the link's token.
    let response = app
        .post_json(
            "/password-reset/request",
            None,
            &json!({"email": "alice@example.COM"}),
        )
        .await;
    let body = json_with_status(response, 202).await;
    assert_eq!(
        body,
        json!({"detail": "If the address is known, a reset link is on its way"})
    );
    let mail = mailbox::mails(&app, 1).await.remove(0);
    assert_eq!(mail.to, "Alice@Example.com");
    let token = mail.token("/password-reset");
    let page = app
        .get(&format!("/password-reset?token={token}"), None)
        .await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains(&token));
    let response = app
        .post_json(
            "/password-reset/confirm",
            None,
            &json!({"token": token, "new_password": NEW_PASSWORD}),
        )
        .await;

    // Assert
    assert_eq!(response.status(), 204);
    assert_eq!(app.login("alice", PASSWORD).await.status(), 401);
    assert_eq!(app.login("alice", NEW_PASSWORD).await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(app.get("/users/me", Some(&old)).await.status(), 401);
    let again = app
        .post_json(
            "/password-reset/confirm",
            None,
            &json!({"token": token, "new_password": "another-Strong-93-pass"}),
        )
        .await;
    assert_eq!(detail(again, 400).await, "Invalid or expired token");
}
test_both!(a_forgotten_password_is_reset_through_the_mailed_link);

async fn queued_mails_hold_no_usable_link(backend: Backend) {
    // Arrange: a mail server that refuses connections, so the mail stays in the queue.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.smtp_url = Some(format!("smtp://127.0.0.1:{port}").parse().unwrap());
    })
    .await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;

    // Act
    let response = app
        .post_json(
            "/password-reset/request",
            None,
            &json!({"email": "alice@example.com"}),
        )
        .await;
    assert_eq!(response.status(), 202);

    // Assert: the row as stored (read past any retry time and lease) has the recipient and
    // subject, and sealed bodies without the link.
    let queue = app.state.repo.mail_queue();
    let mut stored = None;
    for _ in 0..50 {
        stored = queue.claim(crate::helpers::now() + 7200, 1).await.unwrap();
        if stored.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let stored = stored.expect("the mail is queued");
    assert_eq!(stored.mail.to, "alice@example.com");
    for body in [&stored.mail.text, &stored.mail.html] {
        assert!(body.starts_with("sealed:v1:"), "{body}");
        assert!(!body.contains("token="), "{body}");
    }
}
test_both!(queued_mails_hold_no_usable_link);

async fn a_new_address_kills_the_links_mailed_to_the_old_one(backend: Backend) {
    // Arrange: a reset link mailed to alice's first address.
    let app = spawn_app(backend).await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@old.example"))
        .await;
    let token = app.access_token("alice", PASSWORD).await;
    let response = app
        .post_json(
            "/password-reset/request",
            None,
            &json!({"email": "alice@old.example"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let reset = mailbox::mails(&app, 1)
        .await
        .remove(0)
        .token("/password-reset");

    // Act: the address changes.
    let response = app
        .post_json(
            "/users/me/email",
            Some(&token),
            &json!({"email": "alice@new.example"}),
        )
        .await;
    assert_eq!(response.status(), 200);

    // Assert: whoever reads the old mailbox cannot set the password.
    let response = app
        .post_json(
            "/password-reset/confirm",
            None,
            &json!({"token": reset, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(detail(response, 400).await, "Invalid or expired token");
    assert_eq!(app.login("alice", PASSWORD).await.status(), 200);
}
test_both!(a_new_address_kills_the_links_mailed_to_the_old_one);
