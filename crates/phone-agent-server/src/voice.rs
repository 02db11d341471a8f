//! `POST`/`GET /voice`: Twilio's voice webhook. Answers TwiML that connects the call to a
//! bidirectional Media Stream on `/media`. `POST /voice/outbound` does the same for a call
//! placed by `POST /api/calls` (see [`crate::outbound`]): its profile and prompt variables
//! come from the URL's query (signed by Twilio), and its stream also carries
//! `<Parameter name="direction" value="outbound"/>` and one `<Parameter>` per variable.
//!
//! Order of checks: request signature (403), account (403), draining or at capacity
//! (`<Reject reason="busy"/>`; otherwise a call slot is **reserved** for this CallSid until its
//! stream claims it, see [`crate::server`]), then the TwiML:
//!
//! ```xml
//! <Response><Connect><Stream url="wss://PUBLIC/media/<token>">   (stateless, see crate::tokens)
//!   <Parameter name="call_sid" value="CA…"/>
//!   <Parameter name="from" value="+1…"/>
//!   <Parameter name="to" value="+1…"/>
//!   <Parameter name="profile" value="…"/>   (the per-number profile, chosen by `To`)
//!   …configured twilio.stream_parameters…
//! </Stream></Connect></Response>
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use twilio_media::twiml;

use crate::routes::{self, Body};
use crate::server::AppState;

/// How long a client may take to send the webhook body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// A webhook's parameters, once its signature (if checked) is valid: `Err` is the response to
/// send instead. `path` is the route Twilio signed (`/voice`, `/voice/fallback`).
pub(crate) async fn read_signed(
    state: &AppState,
    req: Request<Incoming>,
    path: &str,
) -> Result<(http::request::Parts, Vec<(String, String)>), Response<Body>> {
    let (parts, body) = req.into_parts();
    let config = &state.config;

    let body = if parts.method == Method::POST {
        let limited = Limited::new(body, config.server.voice_body_limit);
        match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    return Err(routes::text(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request body too large\n",
                    ));
                }
                return Err(routes::text(
                    StatusCode::BAD_REQUEST,
                    "could not read the request body\n",
                ));
            }
            Err(_) => {
                return Err(routes::text(
                    StatusCode::REQUEST_TIMEOUT,
                    "request body timed out\n",
                ));
            }
        }
    } else {
        Bytes::new()
    };
    let query = parts.uri.query();
    // POST: parameters are the form body (the query, if any, is part of the signed URL).
    // GET: parameters are the query string, and the signature covers the URL only.
    let params: Vec<(String, String)> = if parts.method == Method::POST {
        form_urlencoded::parse(&body).into_owned().collect()
    } else {
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect()
    };

    if let Some(key) = config.twilio.signature_key() {
        // Invariant: config validation refuses a signature key without PUBLIC_URL.
        let Some(public) = &config.server.public_url else {
            return Err(routes::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "PUBLIC_URL is not configured\n",
            ));
        };
        let mut url = format!("{}{path}", public.http_base());
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        let signed_params: &[(String, String)] = if parts.method == Method::POST {
            &params
        } else {
            &[]
        };
        let header = parts
            .headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok());
        if !crate::signature::is_valid(key, &url, signed_params, header) {
            if path == "/voice" {
                tracing::warn!(
                    signature_present = header.is_some(),
                    "refusing /voice: invalid Twilio signature (check TWILIO_AUTH_TOKEN and that PUBLIC_URL matches the webhook URL configured in Twilio)"
                );
            } else {
                tracing::warn!(
                    path,
                    signature_present = header.is_some(),
                    "refusing a webhook: invalid Twilio signature"
                );
            }
            crate::telemetry::rejected("signature");
            return Err(routes::text(StatusCode::FORBIDDEN, "invalid signature\n"));
        }
    }
    Ok((parts, params))
}

/// `/voice`, or with `outbound` `/voice/outbound`: the TwiML of a call placed by
/// `POST /api/calls`, whose profile and prompt variables are in the (signed) query.
pub(crate) async fn handle(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    outbound: bool,
) -> Response<Body> {
    let config = &state.config;
    let path = if outbound {
        "/voice/outbound"
    } else {
        "/voice"
    };
    let (parts, params) = match read_signed(state, req, path).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    // Outbound: `profile=NAME&var.KEY=VALUE…`, written by crate::outbound and covered by
    // Twilio's signature. Inbound `/voice` never reads its query.
    let query: Vec<(String, String)> = if outbound {
        form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect()
    } else {
        Vec::new()
    };
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };

    if let Some(expected) = &config.twilio.account_sid
        && param("AccountSid") != Some(expected.as_str())
    {
        tracing::warn!("refusing /voice: the call belongs to another Twilio account");
        crate::telemetry::rejected("account");
        return routes::text(StatusCode::FORBIDDEN, "wrong account\n");
    }

    let Some(call_sid) = param("CallSid").filter(|s| !s.is_empty()) else {
        return routes::text(
            StatusCode::BAD_REQUEST,
            "missing CallSid (is this a Twilio voice webhook?)\n",
        );
    };
    // Twilio's SIDs are letters and digits; anything else cannot go into a stream token.
    if call_sid.len() > 64 || !call_sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return routes::text(StatusCode::BAD_REQUEST, "malformed CallSid\n");
    }

    let draining = state.is_draining();
    if draining || !state.calls.reserve(call_sid, Instant::now()) {
        let reason = if draining { "draining" } else { "busy" };
        tracing::info!(call_sid, reason, outbound, "rejecting call as busy");
        crate::telemetry::rejected(reason);
        // `<Reject>` is for incoming calls; an answered outbound call is hung up.
        let response = if outbound {
            twiml::Response::new().hangup()
        } else {
            twiml::Response::new().reject(twiml::Reject::busy())
        };
        return routes::twiml(response.to_xml());
    }

    let Some(stream_url) = stream_url(state, &parts.headers, call_sid, param("AccountSid")) else {
        return routes::text(
            StatusCode::BAD_REQUEST,
            "no Host header; set PUBLIC_URL to the address Twilio uses\n",
        );
    };
    // The stream's parameters, which Twilio hands back in `start`: the prompt's variables
    // (also what a pre-warmed session is configured with).
    let mut parameters: Vec<(String, String)> = vec![("call_sid".to_owned(), call_sid.to_owned())];
    if let Some(from) = param("From") {
        parameters.push(("from".to_owned(), from.to_owned()));
    }
    if let Some(to) = param("To") {
        parameters.push(("to".to_owned(), to.to_owned()));
    }
    // The profile answering this number travels with the stream, so `/media` needs no
    // shared state to find it.
    let profile = if outbound {
        let name = query
            .iter()
            .find(|(k, _)| k == "profile")
            .map(|(_, v)| v.as_str());
        state.profiles.named(name)
    } else {
        state.profiles.for_number(param("To"))
    };
    parameters.push(("profile".to_owned(), profile.name.clone()));
    if outbound {
        parameters.push(("direction".to_owned(), "outbound".to_owned()));
        for (k, v) in &query {
            if let Some(name) = k.strip_prefix(crate::outbound::VAR_PREFIX)
                && !crate::config::RESERVED_PARAMETERS.contains(&name)
            {
                parameters.push((name.to_owned(), v.as_str().to_owned()));
            }
        }
    }
    for (name, value) in &config.twilio.stream_parameters {
        parameters.push((name.clone(), value.clone()));
    }
    let mut stream = twiml::Stream::new(stream_url);
    for (name, value) in &parameters {
        stream = stream.parameter(name.as_str(), value.as_str());
    }
    if let Err(e) = stream.validate() {
        // Local tests use ws:// URLs; Twilio would refuse them, which the startup warning says.
        tracing::debug!(error = %e, "the stream URL does not meet Twilio's rules");
    }
    if let Some(store) = &state.store {
        store.submit(crate::store::Write::Webhook(crate::store::WebhookInfo {
            call_sid: call_sid.to_owned(),
            at_ms: crate::record::now_ms(),
            direction: crate::status::direction(param("Direction").unwrap_or("inbound")).to_owned(),
            from: crate::status::stored_number(state, param("From")),
            to: crate::status::stored_number(state, param("To")),
            account_sid: param("AccountSid").map(str::to_owned),
        }));
    }
    if profile.agent.backend == crate::config::Backend::Realtime
        && profile.agent.prewarm
        && state.openai.is_some()
    {
        prewarm(state, call_sid, param("AccountSid"), parameters, profile);
    }
    tracing::info!(call_sid, profile = %profile.name, outbound, "answering call with a media stream");
    let mut response = twiml::Response::new().connect(stream);
    if let Some(redirect) = after_stream(state, &parts.headers) {
        response = response.redirect(redirect);
    }
    routes::twiml(response.to_xml())
}

/// The media stream URL of a call, with a fresh stream token when tokens are required;
/// `None` without `PUBLIC_URL` and without a usable `Host` header.
pub(crate) fn stream_url(
    state: &AppState,
    headers: &http::HeaderMap,
    call_sid: &str,
    account_sid: Option<&str>,
) -> Option<String> {
    let config = &state.config;
    let url = match &config.server.public_url {
        Some(public) => public.media_url(),
        None => format!("wss://{}/media", host_of(headers)?),
    };
    if !config.twilio.require_stream_token {
        return Some(url);
    }
    let token = state.token_key.mint_for(
        call_sid,
        account_sid.filter(|a| !a.is_empty()),
        config.twilio.stream_token_ttl,
    );
    Some(format!("{url}/{token}"))
}

/// What follows `</Connect>`: the redirect to `/voice/next`, which decides from why the
/// stream ended (see [`crate::handover`]); `None` with `fallback.enabled = false`.
pub(crate) fn after_stream(state: &AppState, headers: &http::HeaderMap) -> Option<twiml::Redirect> {
    if !state.config.fallback.enabled {
        return None;
    }
    let base = match &state.config.server.public_url {
        Some(public) => public.http_base().to_owned(),
        None => format!(
            "https://{host}",
            host = host_of(headers).unwrap_or_default()
        ),
    };
    Some(
        twiml::Redirect::new(format!("{base}{}", crate::handover::NEXT_PATH))
            .method(twiml::Method::Post),
    )
}

/// The request's `Host` header, when it is a plain host name (no path or spaces).
fn host_of(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|host| !host.is_empty() && !host.contains(['/', '?', '#', ' ']))
}

/// Opens the call's Realtime session now, so it is ready when the stream starts (see
/// crate::prewarm); closed if no stream claims it within the stream token's lifetime.
fn prewarm(
    state: &Arc<AppState>,
    call_sid: &str,
    account_sid: Option<&str>,
    parameters: Vec<(String, String)>,
    profile: &Arc<crate::profiles::Profile>,
) {
    let info = bridge_core::caller::CallerInfo {
        call_id: call_sid.to_owned(),
        stream_id: String::new(),
        account_id: account_sid.map(str::to_owned),
        parameters,
    };
    let definitions = match &state.tools {
        Some(tools) => tools.definitions(),
        None => profile.tools.definitions().to_vec(),
    };
    let (task_state, profile) = (Arc::clone(state), Arc::clone(profile));
    let connect = async move {
        // Replaced by the call's own clock when the stream claims the session.
        let clock = Arc::new(crate::adapters::RelayClock::new());
        let connected =
            crate::call::connect_realtime(&task_state, &profile, &definitions, &info, clock).await;
        if let Err(e) = &connected {
            tracing::info!(call_sid = %info.call_id, error = %e, "pre-warming the agent session failed");
        }
        connected
    };
    state
        .prewarms
        .start(call_sid, state.config.twilio.stream_token_ttl, connect);
}
