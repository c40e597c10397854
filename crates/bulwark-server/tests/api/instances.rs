//! Two real `bulwark serve` processes on one PostgreSQL database: one key ring, one rotation per
//! interval, each instance verifying the other's tokens, and revocations seen by both within a
//! second.
//!
//! PostgreSQL only: these tests are skipped (with a message) when `BULWARK_TEST_DATABASE_URL`
//! is not set.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, INVALID_TOKEN, PASSWORD, assert_unauthorized, key_encodings, kid_of,
};
use crate::process::{Cluster, Instance};

/// Polls until `instance` refuses the token with the full 401, failing after `deadline`.
async fn assert_refuses_within(instance: &Instance, token: &str, deadline: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let response = instance.send(Method::GET, "/protected", token, None).await;
        if response.status() == 401 {
            assert_unauthorized(response, INVALID_TOKEN).await;
            return start.elapsed();
        }
        assert_eq!(response.status(), 200);
        assert!(
            start.elapsed() < deadline,
            "{} still accepts the token after {:?}",
            instance.name,
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn assert_accepts(instance: &Instance, token: &str, username: &str) {
    let response = instance.send(Method::GET, "/protected", token, None).await;
    assert_eq!(
        response.status(),
        200,
        "{} refuses the token",
        instance.name
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body,
        json!({"message": format!("Beware, {username}. This is a protected route.")})
    );
}

/// The first-start admin's password: written by whichever instance created the admin, and
/// only by one.
fn admin_password(cluster: &Cluster) -> String {
    match (cluster.a.admin_password(), cluster.b.admin_password()) {
        (Some(p), None) | (None, Some(p)) => p,
        (Some(_), Some(_)) => panic!("both instances created a first admin"),
        (None, None) => panic!(
            "no initial-admin-password written\nA:\n{}\nB:\n{}",
            cluster.a.log(),
            cluster.b.log()
        ),
    }
}

async fn pool(cluster: &Cluster) -> sqlx::PgPool {
    sqlx::PgPool::connect(&cluster.database_url)
        .await
        .expect("PostgreSQL reachable")
}

fn postgres_or_skip(test: &str) -> Option<Backend> {
    let backend = Backend::postgres();
    if backend.is_none() {
        eprintln!("BULWARK_TEST_DATABASE_URL is not set: {test} skipped (PostgreSQL only)");
    }
    backend
}

fn unix_now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_verify_each_others_tokens_and_see_revocations_within_a_second() {
    let Some(backend) = postgres_or_skip("two_instances_verify_each_others_tokens") else {
        return;
    };
    // Arrange: two servers, one database; alice logged in on each.
    let cluster = Cluster::start(&backend, &[]).await;
    let (a, b) = (&cluster.a, &cluster.b);
    let admin = a.login("admin", &admin_password(&cluster)).await;
    let created = a
        .send(
            Method::POST,
            "/admin/users",
            &admin,
            Some(&json!({"username": "alice", "password": PASSWORD, "roles": []})),
        )
        .await;
    assert_eq!(created.status(), 201);
    let alice_id = created.json::<Value>().await.expect("json")["id"]
        .as_i64()
        .expect("id");
    let from_a = a.login("alice", PASSWORD).await;
    let from_b = b.login("alice", PASSWORD).await;

    // Act / Assert: one key ring, so each verifies the other's tokens.
    assert_eq!(kid_of(&from_a), kid_of(&from_b), "both sign with one key");
    assert_accepts(b, &from_a, "alice").await;
    assert_accepts(a, &from_b, "alice").await;

    // A logout on A is seen by B within a second; the other session lives on.
    assert_eq!(
        a.send(Method::POST, "/logout", &from_a, None)
            .await
            .status(),
        204
    );
    assert_refuses_within(b, &from_a, Duration::from_secs(1)).await;
    assert_accepts(a, &from_b, "alice").await;
    assert_accepts(b, &from_b, "alice").await;

    // A rotation on A: its new tokens verify on B at once (B reloads the ring on an unknown
    // kid), B signs with the new key within 5 s, and tokens of the old key keep working.
    let rotated = a
        .send(Method::POST, "/admin/keys/rotate", &admin, None)
        .await;
    assert_eq!(rotated.status(), 200);
    let new_kid = rotated.json::<Value>().await.expect("json")["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    let after_rotation = a.login("alice", PASSWORD).await;
    assert_eq!(kid_of(&after_rotation), new_kid);
    assert_accepts(b, &after_rotation, "alice").await;
    let start = Instant::now();
    loop {
        let token = b.login("admin", &admin_password(&cluster)).await;
        if kid_of(&token) == new_kid {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "B still signs with the old key 5 s after the rotation"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_accepts(b, &from_b, "alice").await;
    let keys_on_b = b.send(Method::GET, "/admin/keys", &admin, None).await;
    assert_eq!(keys_on_b.status(), 200);

    // Disabling alice on B ends her tokens on A within a second.
    let disabled = b
        .send(
            Method::PATCH,
            &format!("/admin/users/{alice_id}"),
            &admin,
            Some(&json!({"disabled": true})),
        )
        .await;
    assert_eq!(disabled.status(), 200);
    assert_refuses_within(a, &after_rotation, Duration::from_secs(1)).await;
    assert_refuses_within(a, &from_b, Duration::from_secs(1)).await;
    assert_refuses_within(b, &after_rotation, Duration::from_secs(1)).await;
}

/// Every `(kid, created_at)` of the ring, and the claimed rotation slots, as stored.
async fn stored_keys_and_slots(pool: &sqlx::PgPool) -> (Vec<(String, i64)>, Vec<i64>) {
    let keys: Vec<(String, i64)> =
        sqlx::query_as("SELECT kid, created_at FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(pool)
            .await
            .expect("keys");
    let slots: Vec<(i64,)> = sqlx::query_as("SELECT slot FROM key_rotations ORDER BY slot")
        .fetch_all(pool)
        .await
        .expect("slots");
    (keys, slots.into_iter().map(|s| s.0).collect())
}

async fn active_kid_in_db(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_as::<_, (String,)>("SELECT kid FROM signing_keys WHERE state = 'active'")
        .fetch_all(pool)
        .await
        .expect("active key")
        .into_iter()
        .map(|r| r.0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_rotate_once_per_interval_and_sign_with_the_new_key_within_5_seconds() {
    let Some(backend) = postgres_or_skip("two_instances_rotate_once_per_interval") else {
        return;
    };
    // Arrange: a 3-second rotation interval, two servers racing to rotate.
    const INTERVAL: i64 = 3;
    let cluster = Cluster::start(&backend, &[("BULWARK_KEY_ROTATION_INTERVAL", "3")]).await;
    let (a, b) = (&cluster.a, &cluster.b);
    let pool = pool(&cluster).await;
    let password = admin_password(&cluster);
    let (keys, _) = stored_keys_and_slots(&pool).await;
    let first_slot = keys.first().expect("a first key").1 / INTERVAL;

    // Act: let two whole intervals pass, and look 2 s into the next slot (both instances run
    // their maintenance every second, so by then this slot's rotation is done).
    let (keys, slots, current_slot) = loop {
        let target = ((first_slot + 3) * INTERVAL) as f64 - 1.0;
        let wait = target - unix_now_f64();
        if wait > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
        let before = unix_now_f64();
        let (keys, slots) = stored_keys_and_slots(&pool).await;
        let after = unix_now_f64();
        let slot = (before as i64) / INTERVAL;
        let offset = before - (slot * INTERVAL) as f64;
        if slot == (after as i64) / INTERVAL && offset >= 1.5 {
            break (keys, slots, slot);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Assert: exactly one key per slot: the first key, then one per elapsed slot.
    let elapsed_slots = current_slot - first_slot;
    assert!(elapsed_slots >= 2, "two intervals passed");
    assert_eq!(
        keys.len() as i64,
        1 + elapsed_slots,
        "keys {keys:?} over slots {first_slot}..={current_slot}"
    );
    let expected_slots: Vec<i64> = std::iter::once(0)
        .chain(first_slot + 1..=current_slot)
        .collect();
    assert_eq!(slots, expected_slots, "one claimed rotation per slot");
    let mut key_slots: Vec<i64> = keys.iter().map(|k| k.1 / INTERVAL).collect();
    key_slots.dedup();
    assert_eq!(key_slots.len(), keys.len(), "never two keys in one slot");
    assert_eq!(active_kid_in_db(&pool).await.len(), 1, "one active key");

    // Within 5 s of a rotation, both instances sign with the new key, and verify each other.
    let before_rotation = active_kid_in_db(&pool).await;
    let deadline = Instant::now() + Duration::from_secs(2 * INTERVAL as u64);
    let rotated_at = loop {
        let now = active_kid_in_db(&pool).await;
        if now != before_rotation {
            break Instant::now();
        }
        assert!(Instant::now() < deadline, "no scheduled rotation happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    loop {
        let (token_a, token_b) = (
            a.login("admin", &password).await,
            b.login("admin", &password).await,
        );
        let active = active_kid_in_db(&pool).await;
        if kid_of(&token_a) == kid_of(&token_b) && active == [kid_of(&token_a)] {
            assert_accepts(b, &token_a, "admin").await;
            assert_accepts(a, &token_b, "admin").await;
            break;
        }
        assert!(
            rotated_at.elapsed() < Duration::from_secs(5),
            "5 s after a rotation, A signs with {} and B with {} (active: {active:?})",
            kid_of(&token_a),
            kid_of(&token_b)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The admin API of either instance lists only stored keys, one of them active.
    let listed: Value = a
        .send(
            Method::GET,
            "/admin/keys",
            &a.login("admin", &password).await,
            None,
        )
        .await
        .json()
        .await
        .expect("json");
    let (stored, _) = stored_keys_and_slots(&pool).await;
    let listed = listed.as_array().expect("list");
    assert!(listed.len() >= 3);
    assert!(
        listed
            .iter()
            .all(|k| stored.iter().any(|(kid, _)| k["kid"] == json!(kid)))
    );
    assert_eq!(listed.iter().filter(|k| k["state"] == "active").count(), 1);

    // Key material is stored sealed, and neither it, the master secret nor the first admin's
    // password ever reaches a log line.
    let sealer = bulwark::secret::MasterSecret::new(cluster.master_secret.as_bytes().to_vec())
        .expect("master secret")
        .sealer();
    let sealed: Vec<(String, Vec<u8>)> = sqlx::query_as("SELECT kid, material FROM signing_keys")
        .fetch_all(&pool)
        .await
        .expect("sealed keys");
    let logs = format!("{}{}", a.log(), b.log());
    assert!(logs.contains("rotated"), "the logs are captured");
    for (kid, sealed) in &sealed {
        let material = sealer.open(sealed, kid.as_bytes()).expect("unseals");
        assert!(
            !sealed
                .windows(material.len())
                .any(|w| w == material.as_slice()),
            "key {kid} is stored in clear"
        );
        for encoded in key_encodings(&material) {
            assert!(!logs.contains(&encoded), "key {kid} appears in a log");
        }
    }
    assert!(!logs.contains(&cluster.master_secret));
    assert!(
        !logs.contains(&password),
        "the admin password appears in a log"
    );
    pool.close().await;
}
