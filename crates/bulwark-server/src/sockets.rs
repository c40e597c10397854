//! Open WebSockets, counted per user to cap them (the `/ws` route takes a slot per socket; the
//! metrics and the shutdown read the total).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// Open sockets allowed per user.
pub const MAX_SOCKETS_PER_USER: usize = 8;

/// Counts open sockets per user.
#[derive(Debug, Default)]
pub struct SocketCounter {
    open: Mutex<HashMap<i64, usize>>,
}

/// One counted socket; dropping it uncounts.
pub struct SocketSlot {
    counter: Arc<SocketCounter>,
    user: i64,
}

impl SocketCounter {
    /// Sockets open now, all users together.
    pub fn open_count(&self) -> usize {
        self.open.lock().map(|o| o.values().sum()).unwrap_or(0)
    }

    /// Counts a socket of `user`, unless they have [`MAX_SOCKETS_PER_USER`] open already.
    pub fn acquire(self: &Arc<Self>, user: i64) -> Option<SocketSlot> {
        let mut open = self.open.lock().ok()?;
        let n = open.entry(user).or_insert(0);
        if *n >= MAX_SOCKETS_PER_USER {
            return None;
        }
        *n += 1;
        Some(SocketSlot {
            counter: Arc::clone(self),
            user,
        })
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.counter.open.lock()
            && let Some(n) = open.get_mut(&self.user)
        {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}
