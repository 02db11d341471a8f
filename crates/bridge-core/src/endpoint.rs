//! What both sides of a call share: how events and commands move ([`Endpoint`]) and the error
//! an endpoint reports.
//!
//! Re-exported from [`crate::caller`] and [`crate::agent`], so each side's imports stay in one
//! place.

use std::task::{Context, Poll};

/// Why an endpoint failed or closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The peer closed the connection or it was lost.
    #[error("connection closed: {0}")]
    Closed(String),
    /// The peer sent something we could not understand and the call cannot continue.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// An I/O failure on the transport.
    #[error("transport error: {0}")]
    Transport(String),
    /// A send did not complete in time (the peer stopped reading).
    #[error("send timed out")]
    SendTimeout,
}

impl EndpointError {
    /// Whether trying again (a new connection) may help: a lost or timed-out connection may,
    /// a refusal or a protocol failure ([`EndpointError::Protocol`]: 401/403/404, an invalid
    /// model, a configuration the peer refused) never does.
    pub fn is_transient(&self) -> bool {
        !matches!(self, EndpointError::Protocol(_))
    }
}

/// How the driver moves one side's events and commands: the transport half of
/// [`crate::caller::CallerEndpoint`] and [`crate::agent::AgentEndpoint`].
///
/// The shape is tokio's and `futures`' (`Stream::poll_next`, `Sink::poll_ready` /
/// `start_send` / `poll_flush`), so an adapter over a WebSocket forwards each method to its
/// socket, and the driver is a plain poll loop over both sides with no future kept or built
/// per frame.
///
/// * **Reads.** [`poll_recv`](Self::poll_recv) keeps the [`std::future::Future`] contract to
///   the letter: when it returns `Pending`, the waker of `cx` is woken once an event is
///   available — also when the event was produced by [`start_send`](Self::start_send) rather
///   than by the network. The driver polls both sides whenever the call's task runs (for
///   either side's traffic, a timer, a tool), so a poll with nothing to return should be
///   cheap; but it may also not be polled again until its waker fires, so an endpoint that
///   waits to be polled again by chance stalls.
/// * **Writes.** [`poll_ready`](Self::poll_ready) before every
///   [`start_send`](Self::start_send) (`Pending`: the peer is not taking more now; wake `cx`
///   when it may), then one [`poll_flush`](Self::poll_flush) puts everything sent on the wire
///   (a media message and its mark leave in one write). None of these waits: the driver keeps
///   what a side does not take in that side's bounded outbox, so a slow peer never stalls the
///   other direction.
/// * **Closing.** [`close`](Self::close) is the closing handshake (a WebSocket close frame,
///   GPT-Live's `session.close` … `session.closed`), awaited once, at the end, bounded by the
///   driver. The engine asks for it with `CallerCommand::Close` / `AgentCommand::Close`; the
///   driver calls `close` for that command and never passes it to `start_send`.
#[async_trait::async_trait]
pub trait Endpoint: Send {
    /// What the side reports.
    type Event;
    /// What the engine asks of the side.
    type Command;

    /// The next event; `Ready(None)` once the connection has closed. Recoverable problems (a
    /// malformed message) should be logged by the adapter and skipped, not returned.
    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Self::Event, EndpointError>>>;

    /// Ready to take one more command with [`start_send`](Self::start_send).
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>>;

    /// Queues one command (after [`poll_ready`](Self::poll_ready) said `Ready`). Never the
    /// close command: see [`close`](Self::close).
    fn start_send(&mut self, command: Self::Command) -> Result<(), EndpointError>;

    /// Writes everything queued by [`start_send`](Self::start_send).
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>>;

    /// Ends the connection with its closing handshake; after this the endpoint is dropped.
    /// Best effort: a peer that is already gone is not an error worth more than a log line.
    async fn close(&mut self) -> Result<(), EndpointError>;
}

#[async_trait::async_trait]
impl<T: Endpoint + ?Sized> Endpoint for Box<T> {
    type Event = T::Event;
    type Command = T::Command;

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Self::Event, EndpointError>>> {
        (**self).poll_recv(cx)
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
        (**self).poll_ready(cx)
    }

    fn start_send(&mut self, command: Self::Command) -> Result<(), EndpointError> {
        (**self).start_send(command)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
        (**self).poll_flush(cx)
    }

    async fn close(&mut self) -> Result<(), EndpointError> {
        (**self).close().await
    }
}
