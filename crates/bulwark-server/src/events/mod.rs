//! Change events for the items of each user, delivered to that user's WebSockets on every
//! instance.
//!
//! Every instance keeps one local broadcast channel that its sockets read (each socket keeps
//! only its own user's events). Where events come from depends on the deployment:
//!
//! - one process: published straight into the local channel ([`memory`]);
//! - `redis_url` set: `PUBLISH` on one channel, every instance's subscriber task forwards into
//!   its local channel ([`redis`]);
//! - PostgreSQL without Redis: `NOTIFY`/`LISTEN` ([`postgres`]).
//!
//! With Redis or PostgreSQL an instance receives its own events back through the shared
//! channel, so every socket sees one order: the order in which the writes were published.

pub mod memory;
pub mod postgres;
pub mod redis;

use std::{future::Future, pin::Pin, sync::Arc};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::domain::ItemOut;

/// One event as sent to a socket: `{"event": "item.created", "item": {...}}`.
#[derive(Debug, Serialize)]
pub struct ItemEvent {
    /// `item.created`, `item.updated` or `item.deleted`.
    pub event: &'static str,
    /// The item as answered by the API (after the change; before it, for a deletion).
    pub item: ItemOut,
}

/// An event on its way: the owner it is for, and the JSON text to send.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The item owner's user id.
    pub owner_id: i64,
    /// The message, already serialized.
    pub json: Arc<str>,
}

impl Envelope {
    /// `owner|json`, as carried by Redis and PostgreSQL.
    pub fn encode(&self) -> String {
        format!("{}|{}", self.owner_id, self.json)
    }

    /// Parses [`Envelope::encode`]'s output.
    pub fn decode(text: &str) -> Option<Self> {
        let (owner, json) = text.split_once('|')?;
        Some(Self {
            owner_id: owner.parse().ok()?,
            json: Arc::from(json),
        })
    }
}

/// A boxed future for the bus's publish.
pub type PublishFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// Publishes events and hands out subscriptions to this instance's stream of them.
pub trait EventBus: Send + Sync {
    /// Publishes one envelope to every instance (this one included).
    fn publish(&self, envelope: Envelope) -> PublishFuture<'_>;
    /// A receiver of every envelope this instance sees.
    fn subscribe(&self) -> broadcast::Receiver<Envelope>;
    /// The transport's name, for logs.
    fn name(&self) -> &'static str;
}

/// Capacity of the local channel: a socket more than this many events behind is closed (its
/// client reconnects and lists its items again).
pub const LOCAL_CAPACITY: usize = 1024;

/// Serializes and publishes an item event; failures are logged, never answered to the client
/// (the write itself succeeded).
pub async fn publish_item_event(bus: &dyn EventBus, event: &'static str, item: ItemOut) {
    let owner_id = item.owner_id;
    let json = match serde_json::to_string(&ItemEvent { event, item }) {
        Ok(json) => json,
        Err(err) => {
            tracing::error!(error = %err, "cannot serialize an item event");
            return;
        }
    };
    let envelope = Envelope {
        owner_id,
        json: Arc::from(json),
    };
    if let Err(err) = bus.publish(envelope).await {
        tracing::warn!(error = %err, bus = bus.name(), "cannot publish an item event");
    }
}
