//! Request routing and the small routes (`/health`, `/ready`, `/metrics`).
//!
//! | route | methods | answer |
//! |---|---|---|
//! | `/voice` | `POST`, `GET` | TwiML opening the Media Stream (see [`crate::voice`]) |
//! | `/voice/next`, `/voice/fallback` | `POST` | after the stream: a resumed stream (handover), `<Hangup/>`, a goodbye or the fallback (see [`crate::handover`]) |
//! | `/media` | `GET` (WebSocket upgrade) | the call (see [`crate::media`]) |
//! | `/health` | `GET`, `HEAD` | `{"status":"ok"}` while the process runs |
//! | `/ready` | `GET`, `HEAD` | 200 `{"status":"ready"}`, 503 `{"status":"draining"}` during shutdown |
//! | `/twilio/whisper` | `POST`, `GET` | a transfer's whisper to the callee (see [`crate::whisper`]) |
//! | `/voice/outbound` | `POST` | TwiML of an outbound call placed by `POST /api/calls` (see [`crate::outbound`]) |
//! | `/twilio/status` | `POST` | Twilio's call status callbacks (see [`crate::status`]) |
//! | `/twilio/amd` | `POST` | answering machine detection results of outbound calls (see [`crate::outbound::amd`]) |
//! | `/api/calls…` | `GET`, `POST` | call records, outbound calls; with the admin token only (see [`crate::admin`]) |
//! | `/console…` | `GET`, `POST` | the operator console, with the admin token only (see [`crate::console`]) |
//!
//! Anything else is 404 (also `/metrics`: metrics are served on their own listener, see
//! `metrics_server`); a known path with another method is 405 with `Allow`.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::server::AppState;

/// The body type of every response.
pub(crate) type Body = Full<Bytes>;

pub(crate) async fn handle(state: Arc<AppState>, req: Request<Incoming>) -> Response<Body> {
    let route: &'static str = match req.uri().path() {
        "/voice" => "voice",
        "/voice/next" => "voice_next",
        "/voice/fallback" => "voice_fallback",
        "/voice/outbound" => "voice_outbound",
        "/media" => "media",
        p if p.starts_with("/media/") => "media",
        "/health" => "health",
        "/ready" => "ready",
        "/twilio/whisper" => "whisper",
        "/twilio/status" => "status",
        "/twilio/amd" => "amd",
        p if p == "/api" || p.starts_with("/api/") => "api",
        p if p == "/console" || p.starts_with("/console/") => "console",
        _ => "other",
    };
    let method = req.method().clone();
    let response = match (route, &method) {
        ("voice", &Method::POST | &Method::GET) => crate::voice::handle(&state, req, false).await,
        ("voice_outbound", &Method::POST) => crate::voice::handle(&state, req, true).await,
        ("voice_outbound", _) => method_not_allowed("POST"),
        ("voice", _) => method_not_allowed("GET, POST"),
        ("voice_next", &Method::POST) => {
            crate::handover::handle(&state, req, crate::handover::NEXT_PATH).await
        }
        ("voice_fallback", &Method::POST) => {
            crate::handover::handle(&state, req, "/voice/fallback").await
        }
        ("voice_next" | "voice_fallback", _) => method_not_allowed("POST"),
        ("media", &Method::GET) => crate::media::handle(&state, req),
        ("media", _) => method_not_allowed("GET"),
        ("health", &Method::GET | &Method::HEAD) => json(StatusCode::OK, r#"{"status":"ok"}"#),
        ("ready", &Method::GET | &Method::HEAD) => ready(state.is_draining()),
        ("health" | "ready", _) => method_not_allowed("GET, HEAD"),
        ("whisper", &Method::POST | &Method::GET) => crate::whisper::handle(&state, req).await,
        ("whisper", _) => method_not_allowed("GET, POST"),
        ("status", _) => crate::status::handle(&state, req).await,
        ("amd", _) => crate::outbound::amd::handle(&state, req).await,
        ("api", _) => crate::admin::handle(&state, req).await,
        ("console", _) => crate::console::handle(&state, req).await,
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    let status = response.status();
    if route != "other" || status != StatusCode::NOT_FOUND {
        metrics::counter!(crate::telemetry::HTTP_REQUESTS, "route" => route, "status" => status.as_str().to_owned())
            .increment(1);
    }
    tracing::debug!(route, %method, status = status.as_u16(), "request");
    if method == Method::HEAD {
        let (parts, _) = response.into_parts();
        return Response::from_parts(parts, Body::default());
    }
    response
}

/// `/ready`: 200 while serving, 503 once a shutdown has begun (load balancers stop sending new
/// calls; calls in progress continue).
fn ready(draining: bool) -> Response<Body> {
    if draining {
        json(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"draining"}"#)
    } else {
        json(StatusCode::OK, r#"{"status":"ready"}"#)
    }
}

/// A response with a static body and content type.
pub(crate) fn with_body(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(Body::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, body: &'static str) -> Response<Body> {
    with_body(status, "application/json", body)
}

/// A plain-text response.
pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    with_body(status, "text/plain; charset=utf-8", body)
}

/// A TwiML response.
pub(crate) fn twiml(xml: String) -> Response<Body> {
    with_body(StatusCode::OK, "text/xml; charset=utf-8", xml)
}

pub(crate) fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(response: Response<Body>) -> String {
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn ready_turns_503_while_draining() {
        let up = ready(false);
        assert_eq!(up.status(), StatusCode::OK);
        assert_eq!(body(up).await, r#"{"status":"ready"}"#);
        let draining = ready(true);
        assert_eq!(draining.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(draining.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(body(draining).await, r#"{"status":"draining"}"#);
    }

    #[tokio::test]
    async fn method_not_allowed_names_the_allowed_methods() {
        let r = method_not_allowed("GET, POST");
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "GET, POST");
    }
}
