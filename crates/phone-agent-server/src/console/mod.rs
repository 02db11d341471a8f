//! The operator console (`/console`): live calls with their transcripts as they are spoken,
//! hang-up and transfer of a live call, the call history with totals, and one call's record
//! with a timeline picture. Served by the same binary, its assets embedded; closed (404 like
//! any unknown path) unless `[admin] token` is set.
//!
//! | route | |
//! |---|---|
//! | `GET /console/login`, `POST /console/login` | sign in with the admin token (form field `token`) |
//! | `POST /console/logout` | sign out |
//! | `GET /console` | live calls of this instance |
//! | `GET /console/events` | Server-Sent Events of the live calls (see [`sse`]) |
//! | `GET /console/history` | stored calls, filters, totals (see [`history`]) |
//! | `GET /console/calls/{sid}` | one call: record, timeline, transcript, tool calls |
//! | `GET /console/calls/{sid}/recording.wav` | the call's recording (see [`recording`]) |
//! | `POST /console/calls/{sid}/hangup`, `…/transfer` | actions on a live call (asked to confirm first) |
//! | `GET /console/assets/console.{js,css}` | the embedded script and style sheet |
//!
//! Security: sessions and CSRF in [`auth`]; every console response carries a strict
//! Content-Security-Policy ([`CSP`]: no inline script or style), `X-Frame-Options: DENY`,
//! `X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin` (not `no-referrer`, which
//! makes browsers send `Origin: null` on the console's own forms) and
//! `Cache-Control: no-store`. A `POST` needs the session cookie, the session's CSRF token and,
//! when the browser sends one, an `Origin` naming this host.

pub(crate) mod auth;
pub(crate) mod escape;
pub(crate) mod history;
pub(crate) mod live;
pub(crate) mod pages;
pub(crate) mod recording;
pub(crate) mod sse;
pub(crate) mod timeline;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;
use twilio_media::rest::UpdateCall;

use crate::routes::{self, Body};
use crate::server::AppState;
use crate::twilio_rest::UpdateOutcome;

/// The Content-Security-Policy of every console response.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// The largest form the console accepts.
const FORM_LIMIT: usize = 4096;
/// How long a browser may take to send a form.
const FORM_TIMEOUT: Duration = Duration::from_secs(10);

const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

/// The console's state in the server.
#[derive(Debug, Default)]
pub(crate) struct Console {
    /// Signed-in browsers.
    pub(crate) sessions: auth::Sessions,
    /// Live calls of this instance (fed only while the console is enabled).
    pub(crate) live: Arc<live::LiveCalls>,
    /// Cancelled when the server stops serving connections: event streams end.
    pub(crate) closing: CancellationToken,
}

/// Whether the console is on (the admin token is set).
pub(crate) fn enabled(state: &AppState) -> bool {
    state.config.admin.token.is_some()
}

/// Adds the console's security headers.
pub(crate) fn secure<B>(mut response: Response<B>) -> Response<B> {
    let h = response.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn page(status: StatusCode, html: String) -> Response<Body> {
    routes::with_body(status, "text/html; charset=utf-8", html)
}

fn redirect(to: &'static str) -> Response<Body> {
    let mut r = routes::text(StatusCode::SEE_OTHER, "");
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    r
}

fn with_cookie(mut r: Response<Body>, cookie: &str) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Serves one `/console…` request (all but the event stream, see [`sse`]).
pub(crate) async fn handle(state: &AppState, req: Request<Incoming>) -> Response<Body> {
    let Some(token) = &state.config.admin.token else {
        return routes::text(StatusCode::NOT_FOUND, "not found\n");
    };
    secure(route(state, token.expose(), req).await)
}

async fn route(state: &AppState, token: &str, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let method = req.method().clone();
    match (path.as_str(), &method) {
        ("/console/assets/console.js", &Method::GET) => {
            return routes::with_body(StatusCode::OK, "text/javascript; charset=utf-8", SCRIPT);
        }
        ("/console/assets/console.css", &Method::GET) => {
            return routes::with_body(StatusCode::OK, "text/css; charset=utf-8", STYLE);
        }
        ("/console/login", &Method::GET) => return page(StatusCode::OK, pages::login(false)),
        ("/console/login", &Method::POST) => return login(state, token, req).await,
        ("/console/login", _) => return routes::method_not_allowed("GET, POST"),
        _ => {}
    }
    let Some(session) = state
        .console
        .sessions
        .of_request(req.headers(), Instant::now())
    else {
        return if method == Method::GET {
            redirect("/console/login")
        } else {
            crate::telemetry::rejected("console_session");
            routes::text(StatusCode::FORBIDDEN, "sign in first\n")
        };
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if method == Method::POST {
        let form = match checked_form(&session, req).await {
            Ok(form) => form,
            Err(response) => return response,
        };
        return match segments.as_slice() {
            ["console", "logout"] => logout(state, &form.headers),
            ["console", "calls", sid, action @ ("hangup" | "transfer")] => {
                act(state, &session.csrf, sid, action, &form.fields).await
            }
            _ => routes::text(StatusCode::NOT_FOUND, "not found\n"),
        };
    }
    match (segments.as_slice(), &method) {
        (["console"], &Method::GET) => live_page(state, &session.csrf),
        (["console", "history"], &Method::GET) => {
            history_page(state, &session.csrf, req.uri().query()).await
        }
        (["console", "calls", sid], &Method::GET) => call_page(state, &session.csrf, sid).await,
        (["console", "calls", sid, "recording.wav"], &Method::GET) => {
            recording::serve(state, sid).await
        }
        (
            ["console"]
            | ["console", "history"]
            | ["console", "calls", _]
            | ["console", "calls", _, "recording.wav"],
            _,
        ) => routes::method_not_allowed("GET"),
        _ => routes::text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// A posted form with its request headers.
struct Form {
    headers: HeaderMap,
    fields: Vec<(String, String)>,
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn read_form(req: Request<Incoming>) -> Result<Form, Response<Body>> {
    let (parts, body) = req.into_parts();
    let body: Bytes =
        match tokio::time::timeout(FORM_TIMEOUT, Limited::new(body, FORM_LIMIT).collect()).await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(_)) => {
                return Err(routes::text(
                    StatusCode::BAD_REQUEST,
                    "could not read the form\n",
                ));
            }
            Err(_) => {
                return Err(routes::text(
                    StatusCode::REQUEST_TIMEOUT,
                    "request body timed out\n",
                ));
            }
        };
    Ok(Form {
        headers: parts.headers,
        fields: form_urlencoded::parse(&body).into_owned().collect(),
    })
}

/// Whether the `Origin` header, when present, names the host the request was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o == h)
}

/// The form of a state-changing request, once its origin and CSRF token were checked.
async fn checked_form(
    session: &auth::Session,
    req: Request<Incoming>,
) -> Result<Form, Response<Body>> {
    if !same_origin(req.headers()) {
        crate::telemetry::rejected("console_csrf");
        return Err(routes::text(
            StatusCode::FORBIDDEN,
            "cross-origin request refused\n",
        ));
    }
    let form = read_form(req).await?;
    let given = field(&form.fields, "csrf").unwrap_or_default();
    if !auth::same_secret(&session.csrf, given) {
        tracing::warn!("console: refusing a form with a missing or wrong CSRF token");
        crate::telemetry::rejected("console_csrf");
        return Err(routes::text(StatusCode::FORBIDDEN, "invalid CSRF token\n"));
    }
    Ok(form)
}

async fn login(state: &AppState, token: &str, req: Request<Incoming>) -> Response<Body> {
    if !same_origin(req.headers()) {
        crate::telemetry::rejected("console_csrf");
        return routes::text(StatusCode::FORBIDDEN, "cross-origin request refused\n");
    }
    let public_https = state
        .config
        .server
        .public_url
        .as_ref()
        .is_some_and(|u| u.http_base().starts_with("https://"));
    let form = match read_form(req).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let given = field(&form.fields, "token").unwrap_or_default();
    if !auth::same_secret(token, given.trim()) {
        tracing::warn!("console: sign-in with a wrong token");
        crate::telemetry::rejected("console_login");
        return page(StatusCode::UNAUTHORIZED, pages::login(true));
    }
    let id = state.console.sessions.create(Instant::now());
    tracing::info!("console: signed in");
    let secure = auth::is_https(public_https, &form.headers);
    with_cookie(redirect("/console"), &auth::session_cookie(&id, secure))
}

fn logout(state: &AppState, headers: &HeaderMap) -> Response<Body> {
    state.console.sessions.remove(headers);
    with_cookie(redirect("/console/login"), &auth::cleared_cookie(false))
}

fn live_page(state: &AppState, csrf: &str) -> Response<Body> {
    let calls: Vec<_> = state
        .console
        .live
        .snapshot()
        .into_iter()
        .map(|(summary, lines, total)| {
            let destinations = state
                .console
                .live
                .with_call(&summary.call_sid, |c| {
                    c.profile
                        .tools
                        .destinations()
                        .iter()
                        .map(|d| d.name.clone())
                        .collect()
                })
                .unwrap_or_default();
            (summary, lines, total, destinations)
        })
        .collect();
    page(StatusCode::OK, pages::live(&calls, csrf))
}

pub(crate) fn valid_sid(sid: &str) -> bool {
    !sid.is_empty() && sid.len() <= 64 && sid.chars().all(|c| c.is_ascii_alphanumeric())
}

async fn history_page(state: &AppState, csrf: &str, query: Option<&str>) -> Response<Body> {
    let filters = history::Filters::parse(query);
    let db = match state.store.as_ref().map(|s| s.db()) {
        None => {
            return page(
                StatusCode::NOT_FOUND,
                pages::message(
                    csrf,
                    "No history",
                    "Call records are off (database.url = \"off\").",
                ),
            );
        }
        Some(None) => {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::message(
                    csrf,
                    "No history yet",
                    "The call store's database is not reachable yet.",
                ),
            );
        }
        Some(Some(db)) => db,
    };
    let rows = match db.list(&filters.query(crate::record::now_ms())).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "console: listing calls failed");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::message(
                    csrf,
                    "Database error",
                    "The database failed; see the server log.",
                ),
            );
        }
    };
    let scanned = rows.len();
    let calls: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|r| r.json)
        .filter(|c| filters.keeps(c))
        .collect();
    let totals = history::totals(&calls);
    let note = (scanned as i64 >= history::SCAN_LIMIT).then(|| {
        format!(
            "More than {} calls match: the totals cover the newest {}.",
            history::SCAN_LIMIT,
            history::SCAN_LIMIT
        )
    });
    let shown = &calls[..calls.len().min(history::SHOWN)];
    page(
        StatusCode::OK,
        pages::history(csrf, &filters, &totals, shown, note.as_deref()),
    )
}

async fn call_page(state: &AppState, csrf: &str, sid: &str) -> Response<Body> {
    let not_found = || {
        page(
            StatusCode::NOT_FOUND,
            pages::message(
                csrf,
                "No such call",
                "No stored record of this call (a live call has its record once it ends).",
            ),
        )
    };
    if !valid_sid(sid) {
        return not_found();
    }
    let Some(Some(db)) = state.store.as_ref().map(|s| s.db()) else {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::message(
                csrf,
                "No records",
                "Call records are off or the database is not reachable yet.",
            ),
        );
    };
    let stored = match db.get(sid).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "console: reading a call failed");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::message(
                    csrf,
                    "Database error",
                    "The database failed; see the server log.",
                ),
            );
        }
    };
    match serde_json::from_value::<crate::record::CallRecord>(stored.json) {
        Ok(record) => {
            let svg = timeline::svg(&record);
            page(StatusCode::OK, pages::call(csrf, &record, &svg))
        }
        // Known from the webhook or status callbacks, but its stream has not ended yet.
        Err(_) => not_found(),
    }
}

/// Hang-up or transfer of a live call: asks to confirm, then does it.
async fn act(
    state: &AppState,
    csrf: &str,
    sid: &str,
    action: &str,
    fields: &[(String, String)],
) -> Response<Body> {
    let live = valid_sid(sid) && state.console.live.with_call(sid, |_| ()).is_some();
    if !live {
        return page(
            StatusCode::NOT_FOUND,
            pages::message(csrf, "Not live", "This call is not live on this instance."),
        );
    }
    let destination = field(fields, "destination").unwrap_or_default();
    if field(fields, "confirm") != Some("yes") {
        let (question, extra): (String, Vec<(&str, &str)>) = if action == "hangup" {
            (format!("Hang up call {sid}?"), Vec::new())
        } else {
            (
                format!("Transfer call {sid} to {destination}?"),
                vec![("destination", destination)],
            )
        };
        return page(
            StatusCode::OK,
            pages::confirm(csrf, sid, action, &question, &extra),
        );
    }
    let result = if action == "hangup" {
        hang_up(state, sid).await
    } else {
        transfer(state, sid, destination).await
    };
    match result {
        Ok(done) => page(StatusCode::OK, pages::message(csrf, "Done", &done)),
        Err(e) => {
            tracing::warn!(call_sid = sid, action, error = %e, "console: action failed");
            page(StatusCode::BAD_GATEWAY, pages::message(csrf, "Failed", &e))
        }
    }
}

/// Hangs up a live call: `Status=completed` over Twilio REST (Twilio then ends the stream);
/// without REST, or when Twilio says the call is gone, the media stream is closed here.
async fn hang_up(state: &AppState, sid: &str) -> Result<String, String> {
    let end = state
        .console
        .live
        .with_call(sid, |c| c.end.clone())
        .ok_or("the call has just ended")?;
    tracing::info!(call_sid = sid, "console: hang-up requested");
    let Some(rest) = &state.tool_services.rest else {
        end.cancel();
        return Ok("Twilio REST is not configured: the media stream was closed.".into());
    };
    match rest.update_call(sid, &UpdateCall::hang_up()).await {
        Ok(UpdateOutcome::Updated) => Ok("Twilio is hanging up the call.".into()),
        Ok(UpdateOutcome::AlreadyGone(_)) => {
            end.cancel();
            Ok("Twilio says the call had already ended; its media stream was closed.".into())
        }
        Err(e) => Err(format!("the hang-up over Twilio REST failed: {e}")),
    }
}

/// Transfers a live call to one of its profile's allow-listed destinations (the same TwiML as
/// the agent's `transfer_call`, without a whisper summary).
async fn transfer(state: &AppState, sid: &str, name: &str) -> Result<String, String> {
    let (to, destination) = state
        .console
        .live
        .with_call(sid, |c| {
            (
                c.context.to.clone(),
                c.profile
                    .tools
                    .destinations()
                    .iter()
                    .find(|d| d.name == name)
                    .cloned(),
            )
        })
        .ok_or("the call has just ended")?;
    let destination = destination
        .ok_or_else(|| format!("{name:?} is not a transfer destination of this call"))?;
    let rest = state
        .tool_services
        .rest
        .as_ref()
        .ok_or("Twilio REST is not configured: transfers are not possible")?;
    tracing::info!(call_sid = sid, destination = %destination.name, "console: transfer requested");
    let twiml = crate::tools::control::transfer_twiml(
        &state.tool_services.call_control,
        &crate::tools::PendingTransfer {
            destination: destination.clone(),
            summary: None,
        },
        &to,
        state
            .tool_services
            .public_url
            .as_ref()
            .map(|u| u.http_base()),
    );
    let update = UpdateCall::twiml(twiml).map_err(|e| format!("transfer TwiML: {e}"))?;
    match rest.update_call(sid, &update).await {
        Ok(UpdateOutcome::Updated) => Ok(format!("Transferring the call to {}.", destination.name)),
        Ok(UpdateOutcome::AlreadyGone(_)) => Err("the call had already ended".into()),
        Err(e) => Err(format!("the transfer failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h));
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
    }

    #[test]
    fn security_headers() {
        let r = secure(routes::text(StatusCode::OK, ""));
        assert_eq!(r.headers()["content-security-policy"], CSP);
        assert!(!CSP.contains("unsafe"));
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    }
}
