//! Delivery across instances through PostgreSQL `NOTIFY`/`LISTEN`.

use std::time::Duration;

use sqlx::{PgPool, Row as _, postgres::PgListener};
use tokio::sync::broadcast;

use super::{Envelope, EventBus, LOCAL_CAPACITY, PublishFuture};
use crate::db::now;

/// The notification channel.
pub const CHANNEL: &str = "bulwark_events";

/// NOTIFY payloads are limited to 8000 bytes; larger events go through `event_payloads` and
/// the notification carries `#<id>`.
const INLINE_LIMIT: usize = 7000;

/// Publishes with `pg_notify`; a background task listens (sqlx reconnects it) and forwards into
/// the local channel. Notifications arrive in commit order.
pub struct PgBus {
    pool: PgPool,
    sender: broadcast::Sender<Envelope>,
    task: tokio::task::JoinHandle<()>,
}

impl PgBus {
    /// Starts listening on `pool`'s database.
    ///
    /// # Errors
    /// When the listener cannot connect.
    pub async fn start(pool: PgPool) -> anyhow::Result<Self> {
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        let sender = broadcast::channel(LOCAL_CAPACITY).0;
        let forward = sender.clone();
        let lookup = pool.clone();
        let task = tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(notification) => {
                        let payload = notification.payload();
                        let text = match payload.strip_prefix('#') {
                            Some(id) => match fetch_payload(&lookup, id).await {
                                Some(text) => text,
                                None => continue,
                            },
                            None => payload.to_owned(),
                        };
                        if let Some(envelope) = Envelope::decode(&text) {
                            let _ = forward.send(envelope);
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "event listener failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        Ok(Self { pool, sender, task })
    }
}

async fn fetch_payload(pool: &PgPool, id: &str) -> Option<String> {
    let id: i64 = id.parse().ok()?;
    let row = sqlx::query("SELECT payload FROM event_payloads WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .ok()??;
    row.try_get("payload").ok()
}

impl Drop for PgBus {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EventBus for PgBus {
    fn publish(&self, envelope: Envelope) -> PublishFuture<'_> {
        Box::pin(async move {
            let text = envelope.encode();
            let payload = if text.len() <= INLINE_LIMIT {
                text
            } else {
                sqlx::query("DELETE FROM event_payloads WHERE created_at < $1")
                    .bind(now() - 3600)
                    .execute(&self.pool)
                    .await?;
                let row = sqlx::query(
                    "INSERT INTO event_payloads (payload, created_at) VALUES ($1, $2) RETURNING id",
                )
                .bind(&text)
                .bind(now())
                .fetch_one(&self.pool)
                .await?;
                format!("#{}", row.try_get::<i64, _>("id")?)
            };
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(payload)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.sender.subscribe()
    }

    fn name(&self) -> &'static str {
        "postgres"
    }
}
