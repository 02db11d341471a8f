//! `GET /console/events`: the live calls as Server-Sent Events.
//!
//! The stream opens with a `hello` event (every live call and its number of lines so far, for
//! the page to check it is current), then one `update` event per change (see
//! [`super::live::Update`]), and a comment every [`HEARTBEAT`] so a vanished browser is noticed.
//! Each stream reads its own bounded receiver of the registry's broadcast channel: a browser
//! that does not keep up misses updates and gets a `resync` event (the page reloads) — calls
//! never wait for it. Streams end when the server stops serving connections.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{Either, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::live::Update;
use crate::routes::{self, Body};
use crate::server::AppState;

/// The path of the event stream.
pub(crate) const PATH: &str = "/console/events";
/// How often an idle stream sends a comment.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(15);

/// The body of an event stream.
pub(crate) type EventBody =
    StreamBody<Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, Infallible>> + Send>>>;
/// A response body of the server: a whole body, or an event stream.
pub(crate) type AnyBody = Either<Body, EventBody>;

/// Whether `req` asks for the event stream.
pub(crate) fn is_events<B>(req: &Request<B>) -> bool {
    req.uri().path() == PATH
}

fn event(name: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// Serves `GET /console/events`.
pub(crate) fn handle(state: &Arc<AppState>, req: &Request<Incoming>) -> Response<AnyBody> {
    if !super::enabled(state) {
        return routes::text(StatusCode::NOT_FOUND, "not found\n").map(Either::Left);
    }
    if req.method() != Method::GET {
        return super::secure(routes::method_not_allowed("GET")).map(Either::Left);
    }
    if state
        .console
        .sessions
        .of_request(req.headers(), Instant::now())
        .is_none()
    {
        crate::telemetry::rejected("console_session");
        return super::secure(routes::text(StatusCode::FORBIDDEN, "sign in first\n"))
            .map(Either::Left);
    }
    // Subscribe before the snapshot: an update after it is delivered (maybe twice; the page
    // drops lines it has).
    let updates = state.console.live.subscribe();
    let calls: Vec<serde_json::Value> = state
        .console
        .live
        .snapshot()
        .into_iter()
        .map(|(s, _, total)| serde_json::json!({"call_sid": s.call_sid, "lines": total}))
        .collect();
    let hello = event("hello", &serde_json::json!({ "calls": calls }).to_string());
    let reader = Reader {
        first: Some(hello),
        heartbeat: tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT),
        updates,
        closing: state.console.closing.clone(),
    };
    let stream = futures_util::stream::unfold(reader, |mut reader| async move {
        let bytes = reader.next().await?;
        Some((Ok(Frame::data(bytes)), reader))
    });
    let mut response = Response::new(Either::Right(StreamBody::new(
        Box::pin(stream) as Pin<Box<dyn Stream<Item = _> + Send>>
    )));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    super::secure(response)
}

/// The state of one event stream.
struct Reader {
    first: Option<Bytes>,
    heartbeat: tokio::time::Interval,
    updates: broadcast::Receiver<Update>,
    closing: CancellationToken,
}

impl Reader {
    /// The next chunk; `None` ends the stream.
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        tokio::select! {
            _ = self.closing.cancelled() => None,
            _ = self.heartbeat.tick() => Some(Bytes::from_static(b": keep-alive\n\n")),
            update = self.updates.recv() => match update {
                Ok(update) => Some(update_event(&update)),
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "console: an event stream fell behind");
                    Some(event("resync", "{}"))
                }
                Err(RecvError::Closed) => None,
            },
        }
    }
}

fn update_event(update: &Update) -> Bytes {
    event(
        "update",
        &serde_json::to_string(update).unwrap_or_else(|_| "{}".to_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(capacity: usize) -> (broadcast::Sender<Update>, Reader) {
        let (tx, updates) = broadcast::channel(capacity);
        let reader = Reader {
            first: Some(event("hello", r#"{"calls":[]}"#)),
            heartbeat: tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT),
            updates,
            closing: CancellationToken::new(),
        };
        (tx, reader)
    }

    fn ended(n: usize) -> Update {
        Update::Ended {
            call_sid: format!("CA{n}"),
        }
    }

    #[tokio::test]
    async fn hello_then_updates_in_order() {
        let (tx, mut r) = reader(8);
        tx.send(ended(1)).unwrap();
        assert_eq!(
            r.next().await.unwrap(),
            "event: hello\ndata: {\"calls\":[]}\n\n"
        );
        assert_eq!(
            r.next().await.unwrap(),
            "event: update\ndata: {\"type\":\"ended\",\"call_sid\":\"CA1\"}\n\n"
        );
    }

    /// A subscriber that does not read never holds the sender up: it loses what overflowed
    /// its buffer and is told to reload, then reads on.
    #[tokio::test]
    async fn a_slow_reader_is_told_to_resync() {
        let (tx, mut r) = reader(4);
        r.first = None;
        for n in 0..10 {
            tx.send(ended(n)).unwrap();
        }
        assert_eq!(r.next().await.unwrap(), "event: resync\ndata: {}\n\n");
        // The newest four are still there.
        assert_eq!(
            r.next().await.unwrap(),
            "event: update\ndata: {\"type\":\"ended\",\"call_sid\":\"CA6\"}\n\n"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeats_and_the_end() {
        let (_tx, mut r) = reader(4);
        r.first = None;
        assert_eq!(r.next().await.unwrap(), ": keep-alive\n\n");
        r.closing.cancel();
        assert!(r.next().await.is_none());
    }
}
