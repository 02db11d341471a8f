//! `POST /twilio/whisper?text=…`: the whisper of a transfer. Twilio requests it when the
//! callee of a `<Dial><Number url="…">` answers and plays the answer to the callee only:
//! `<Response><Say>{text}</Say></Response>`, the one-line summary the model gave with
//! `transfer_call`. The text travels in the query, which Twilio's signature covers, so the
//! route speaks only what this server put into a transfer (checked like `/voice` when
//! `TWILIO_AUTH_TOKEN` is set).

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use twilio_media::twiml;

use crate::routes::{self, Body};
use crate::server::AppState;

const BODY_LIMIT: usize = 64 * 1024;
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn handle(state: &AppState, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = if parts.method == Method::POST {
        match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, BODY_LIMIT).collect()).await {
            Ok(Ok(collected)) => collected.to_bytes(),
            _ => return routes::text(StatusCode::BAD_REQUEST, "could not read the request body\n"),
        }
    } else {
        bytes::Bytes::new()
    };
    let query = parts.uri.query().unwrap_or_default();
    if let Some(key) = state.config.twilio.signature_key() {
        let Some(public) = &state.config.server.public_url else {
            return routes::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "PUBLIC_URL is not configured\n",
            );
        };
        let url = format!("{}/twilio/whisper?{query}", public.http_base());
        let params: Vec<(String, String)> = if parts.method == Method::POST {
            form_urlencoded::parse(&body).into_owned().collect()
        } else {
            Vec::new()
        };
        let header = parts
            .headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok());
        if !crate::signature::is_valid(key, &url, &params, header) {
            tracing::warn!("refusing /twilio/whisper: invalid Twilio signature");
            crate::telemetry::rejected("signature");
            return routes::text(StatusCode::FORBIDDEN, "invalid signature\n");
        }
    }
    let text = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "text")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let mut response = twiml::Response::new();
    if !text.trim().is_empty() {
        response = response.say(twiml::Say::new(text.trim()));
    }
    routes::twiml(response.to_xml())
}
