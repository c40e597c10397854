//! Delivery across instances through Redis pub/sub.

use std::time::Duration;

use futures_util::StreamExt as _;
use redis::aio::ConnectionManager;
use tokio::sync::broadcast;

use super::{Envelope, EventBus, LOCAL_CAPACITY, PublishFuture};

/// The channel every instance publishes to and subscribes to.
pub const CHANNEL: &str = "bulwark:events";

/// The longest a publish may hold up the write that triggered it. Events are best effort: while
/// Redis is down they are dropped (and logged) after this, so that item writes keep answering
/// within their time budget instead of waiting for reconnection attempts.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_millis(250);

/// Publishes with `PUBLISH`; a background task subscribes (reconnecting after failures) and
/// forwards into the local channel.
pub struct RedisBus {
    connection: ConnectionManager,
    sender: broadcast::Sender<Envelope>,
    task: tokio::task::JoinHandle<()>,
}

impl RedisBus {
    /// Connects lazily to `url` and starts the subscriber task.
    ///
    /// # Errors
    /// When the URL is invalid.
    pub fn start(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(PUBLISH_TIMEOUT))
            .set_response_timeout(Some(PUBLISH_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        let sender = broadcast::channel(LOCAL_CAPACITY).0;
        let forward = sender.clone();
        let task = tokio::spawn(async move {
            loop {
                match client.get_async_pubsub().await {
                    Ok(mut pubsub) => {
                        if let Err(err) = pubsub.subscribe(CHANNEL).await {
                            tracing::warn!(error = %err, "redis subscribe failed");
                        } else {
                            let mut messages = pubsub.on_message();
                            while let Some(msg) = messages.next().await {
                                let Ok(text) = msg.get_payload::<String>() else {
                                    continue;
                                };
                                if let Some(envelope) = Envelope::decode(&text) {
                                    let _ = forward.send(envelope);
                                }
                            }
                            tracing::warn!("redis event subscription ended; reconnecting");
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "redis event subscription failed; retrying")
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        Ok(Self {
            connection,
            sender,
            task,
        })
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EventBus for RedisBus {
    fn publish(&self, envelope: Envelope) -> PublishFuture<'_> {
        Box::pin(async move {
            let mut conn = self.connection.clone();
            let mut cmd = redis::cmd("PUBLISH");
            cmd.arg(CHANNEL).arg(envelope.encode());
            match tokio::time::timeout(PUBLISH_TIMEOUT, cmd.query_async::<i64>(&mut conn)).await {
                Ok(answer) => answer.map(drop).map_err(Into::into),
                Err(_) => Err(anyhow::anyhow!("redis: publish timed out")),
            }
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.sender.subscribe()
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}
