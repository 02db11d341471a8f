//! What both sides of a call share: the error an endpoint reports.
//!
//! Re-exported from [`crate::caller`] and [`crate::agent`], so each side's imports stay in one
//! place.

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
