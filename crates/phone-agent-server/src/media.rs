//! `GET /media` and `GET /media/<token>`: the Media Streams WebSocket upgrade.
//!
//! Everything that can refuse a stream happens **before** the 101 response, so an
//! unauthenticated or unwanted socket never holds a call slot or opens an agent session:
//!
//! 1. the `X-Twilio-Signature` over the exact stream URL (`wss://…/media/<token>`, built from
//!    `PUBLIC_URL` and the request's path; no parameters) → 403;
//! 2. the stream token in the path (when `twilio.require_stream_token`): missing, malformed,
//!    forged or expired → 403 (see [`crate::tokens`]);
//! 3. draining, for a stream without a valid stream token → 503 (a stream with one belongs to a
//!    call some instance answered: the caller was not told "busy", so it is accepted and
//!    drained with the others, even when another instance answered its `/voice`); too many
//!    streams waiting for `start` (`server.max_pending_streams`) → 503;
//! 4. tungstenite's handshake validation (`create_response_with_body`) → 400;
//! 5. this CallSid's stream was already accepted by this instance → 403.
//!
//! Then the call task is spawned on the server's call tracker; it awaits the upgraded socket
//! and runs the call ([`crate::call::run`]), which claims the call's slot once `start` arrived.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use openai_realtime::client::SocketWebSocket;
use tokio_tungstenite::tungstenite::handshake::server::create_response_with_body;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::routes::{self, Body};
use crate::server::AppState;

pub(crate) fn handle(state: &Arc<AppState>, mut req: Request<Incoming>) -> Response<Body> {
    let config = &state.config;
    // `/media` or `/media/<token>`.
    let token = req.uri().path().strip_prefix("/media/").map(str::to_owned);
    if let Some(key) = config.twilio.signature_key() {
        // Invariant: config validation refuses a signature key without PUBLIC_URL.
        let Some(public) = &config.server.public_url else {
            return routes::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "PUBLIC_URL is not configured\n",
            );
        };
        let mut url = public.media_url();
        if let Some(token) = &token {
            url.push('/');
            url.push_str(token);
        }
        let header = req
            .headers()
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok());
        if !crate::signature::is_valid(key, &url, &[], header) {
            tracing::warn!(
                signature_present = header.is_some(),
                "refusing /media upgrade: invalid Twilio signature"
            );
            crate::telemetry::rejected("signature");
            return routes::text(StatusCode::FORBIDDEN, "invalid signature\n");
        }
    }
    let now = crate::tokens::unix_now();
    let claims = if config.twilio.require_stream_token {
        match state.token_key.verify(token.as_deref(), now) {
            Ok(claims) => Some(claims),
            Err(e) => {
                tracing::warn!(error = %e, "refusing /media upgrade: bad stream token");
                crate::telemetry::rejected("token");
                return routes::text(StatusCode::FORBIDDEN, "invalid stream token\n");
            }
        }
    } else {
        None
    };
    // While draining, only streams of calls already answered go on: a valid stream token says
    // an instance (this one or another behind the same load balancer) answered the call's
    // `/voice`, so its caller was not told "busy" and refusing the stream would fail the call.
    if state.is_draining() && claims.is_none() {
        crate::telemetry::rejected("draining");
        return routes::text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    let Some(pending) = state.calls.try_pending() else {
        tracing::warn!(
            max = config.server.max_pending_streams,
            "refusing /media upgrade: too many streams waiting for start"
        );
        crate::telemetry::rejected("pending");
        return routes::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many pending streams\n",
        );
    };
    let response = match create_response_with_body(&req, Body::default) {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(error = %e, "bad WebSocket upgrade request");
            return routes::text(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade\n");
        }
    };
    if let Some(claims) = &claims
        && let Err(e) = state.used_streams.use_once(claims, now)
    {
        tracing::warn!(call_sid = %claims.call_sid, error = %e, "refusing /media upgrade");
        crate::telemetry::rejected("token");
        return routes::text(StatusCode::FORBIDDEN, "stream already accepted\n");
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let task_state = Arc::clone(state);
    state.calls.tracker.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket upgrade failed");
                crate::telemetry::error("upgrade");
                return;
            }
        };
        // The upgraded connection is the listener's own TCP socket: take it back from hyper,
        // so every read and write of the call goes straight to it rather than through hyper's
        // boxed I/O (any bytes hyper read past the request go to tungstenite first), driven
        // from the socket's readiness (`openai_realtime::client::socket`).
        let ws = match upgraded.downcast::<TokioIo<tokio::net::TcpStream>>() {
            Ok(parts) => SocketWebSocket::from_partially_read(
                parts.io.into_inner(),
                parts.read_buf.to_vec(),
                Role::Server,
                Some(crate::adapters::twilio::websocket_config()),
            ),
            Err(_) => {
                // Unreachable while the server serves plain TCP (`server::serve_connection`).
                tracing::error!("a /media upgrade did not carry a TCP socket; stream dropped");
                crate::telemetry::error("upgrade");
                return;
            }
        };
        // The call future is large (the engine and both endpoints live in it): keep it on the
        // heap rather than in the task header.
        Box::pin(crate::call::run(task_state, ws, claims, pending)).await;
    });
    response
}
