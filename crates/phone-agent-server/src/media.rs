//! `GET /media`: the Media Streams WebSocket upgrade.
//!
//! Everything that can refuse a call happens **before** the 101 response, so an
//! unauthenticated or unwanted socket never opens an agent session:
//!
//! 1. the `X-Twilio-Signature` over the `wss://…/media` URL built from `PUBLIC_URL` (no
//!    parameters) → 403;
//! 2. draining or at capacity → 503;
//! 3. tungstenite's handshake validation (`create_response_with_body`) → 400.
//!
//! Then the call task is spawned on the server's call tracker; it awaits the upgraded socket
//! and runs the call ([`crate::call::run`]).

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::create_response_with_body;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::routes::{self, Body};
use crate::server::AppState;

pub(crate) fn handle(state: &Arc<AppState>, mut req: Request<Incoming>) -> Response<Body> {
    let config = &state.config;
    if let Some(key) = config.twilio.signature_key() {
        // Invariant: config validation refuses a signature key without PUBLIC_URL.
        let Some(public) = &config.server.public_url else {
            return routes::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "PUBLIC_URL is not configured\n",
            );
        };
        let header = req
            .headers()
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok());
        if !crate::signature::is_valid(key, &public.media_url(), &[], header) {
            tracing::warn!(
                signature_present = header.is_some(),
                "refusing /media upgrade: invalid Twilio signature"
            );
            crate::telemetry::rejected("signature");
            return routes::text(StatusCode::FORBIDDEN, "invalid signature\n");
        }
    }
    if state.is_draining() {
        crate::telemetry::rejected("draining");
        return routes::text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    let Some(slot) = state.calls.try_reserve() else {
        tracing::warn!(
            max = config.server.max_concurrent_calls,
            "refusing /media upgrade: at capacity"
        );
        crate::telemetry::rejected("busy");
        return routes::text(StatusCode::SERVICE_UNAVAILABLE, "at capacity\n");
    };
    let response = match create_response_with_body(&req, Body::default) {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(error = %e, "bad WebSocket upgrade request");
            return routes::text(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade\n");
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let task_state = Arc::clone(state);
    state.calls.tracker.spawn(async move {
        // The slot is held for the whole call and released when this task ends.
        let _slot = slot;
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket upgrade failed");
                crate::telemetry::error("upgrade");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(crate::adapters::twilio::websocket_config()),
        )
        .await;
        // The call future is large (the engine and both endpoints live in it): keep it on the
        // heap rather than in the task header.
        Box::pin(crate::call::run(task_state, ws)).await;
    });
    response
}
