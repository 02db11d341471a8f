//! Reading the embedded server's own view of a call from its log events.
//!
//! The server reports each call in structured `tracing` events (`agent ready`, `first agent
//! audio`, `barge-in`, and the one-line summary `call ended`). [`LogCapture`] is a
//! `tracing-subscriber` layer that keeps the events of the `phone_agent_server` target (up to
//! `debug`; per-frame `trace` events are never enabled) with their fields as text, and lets the
//! demo await one of them.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// One captured log event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogEvent {
    /// The event's message (`call ended`, ...).
    pub(crate) message: String,
    /// Its other fields, rendered as text, in order.
    pub(crate) fields: Vec<(String, String)>,
}

impl LogEvent {
    /// A field's value.
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A field's value as a number.
    pub(crate) fn number(&self, name: &str) -> Option<u64> {
        self.field(name)?.parse().ok()
    }
}

#[derive(Debug)]
struct Inner {
    events: Mutex<Vec<LogEvent>>,
    changed: watch::Sender<usize>,
}

/// The capturing layer; clones share the same records.
#[derive(Debug, Clone)]
pub(crate) struct LogCapture {
    inner: Arc<Inner>,
}

impl Default for LogCapture {
    fn default() -> Self {
        LogCapture {
            inner: Arc::new(Inner {
                events: Mutex::new(Vec::new()),
                changed: watch::Sender::new(0),
            }),
        }
    }
}

impl LogCapture {
    fn lock(&self) -> MutexGuard<'_, Vec<LogEvent>> {
        // A panic while pushing cannot leave the list half-written; keep using it.
        self.inner.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Events captured so far whose message is `message`.
    pub(crate) fn events(&self, message: &str) -> Vec<LogEvent> {
        self.lock()
            .iter()
            .filter(|e| e.message == message)
            .cloned()
            .collect()
    }

    /// Records an event (what the layer does for each `tracing` event).
    pub(crate) fn push(&self, event: LogEvent) {
        self.lock().push(event);
        self.inner.changed.send_modify(|n| *n += 1);
    }

    /// Waits for the first event with `message`, up to `timeout`.
    pub(crate) async fn wait_for(&self, message: &str, timeout: Duration) -> Option<LogEvent> {
        let mut rx = self.inner.changed.subscribe();
        let wait = async {
            loop {
                rx.borrow_and_update();
                if let Some(e) = self.events(message).into_iter().next() {
                    return Some(e);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }

    /// A filter that passes the server's events up to `debug`.
    pub(crate) fn filter() -> tracing_subscriber::filter::Targets {
        tracing_subscriber::filter::Targets::new()
            .with_target("phone_agent_server", tracing::Level::DEBUG)
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields
                .push((field.name().to_string(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields
                .push((field.name().to_string(), format!("{value:?}")));
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogCapture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.push(LogEvent {
            message: fields.message,
            fields: fields.fields,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::{Layer as _, Registry};

    #[test]
    fn captures_server_events_with_their_fields() {
        let capture = LogCapture::default();
        let subscriber =
            Registry::default().with(capture.clone().with_filter(LogCapture::filter()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                target: "phone_agent_server::call",
                duration_ms = 1234u64,
                end_reason = "caller_hung_up",
                clean = true,
                "call ended"
            );
            tracing::trace!(target: "phone_agent_server::call", "per-frame noise");
            tracing::info!(target: "somebody_else", "not ours");
        });
        let ended = capture.events("call ended");
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].number("duration_ms"), Some(1234));
        assert_eq!(ended[0].field("end_reason"), Some("caller_hung_up"));
        assert_eq!(ended[0].field("clean"), Some("true"));
        assert!(capture.events("per-frame noise").is_empty());
        assert!(capture.events("not ours").is_empty());
    }

    #[tokio::test]
    async fn waiting_sees_past_and_future_events() {
        let capture = LogCapture::default();
        capture.push(LogEvent {
            message: "agent ready".into(),
            fields: Vec::new(),
        });
        assert!(
            capture
                .wait_for("agent ready", Duration::from_secs(5))
                .await
                .is_some()
        );
        let later = capture.clone();
        let waiter =
            tokio::spawn(async move { later.wait_for("call ended", Duration::from_secs(5)).await });
        capture.push(LogEvent {
            message: "call ended".into(),
            fields: vec![("end_reason".into(), "caller_hung_up".into())],
        });
        let got = waiter.await.ok().flatten();
        assert_eq!(
            got.as_ref().and_then(|e| e.field("end_reason")),
            Some("caller_hung_up")
        );
    }
}
