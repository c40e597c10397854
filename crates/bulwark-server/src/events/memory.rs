//! In-process delivery: one instance, no shared transport.

use tokio::sync::broadcast;

use super::{Envelope, EventBus, LOCAL_CAPACITY, PublishFuture};

/// Publishes straight into the local channel.
#[derive(Debug)]
pub struct MemoryBus {
    sender: broadcast::Sender<Envelope>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(LOCAL_CAPACITY).0,
        }
    }
}

impl EventBus for MemoryBus {
    fn publish(&self, envelope: Envelope) -> PublishFuture<'_> {
        // No receiver (no socket open) is not an error.
        let _ = self.sender.send(envelope);
        Box::pin(async { Ok(()) })
    }

    fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.sender.subscribe()
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}
