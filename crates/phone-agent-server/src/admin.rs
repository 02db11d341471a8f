//! The admin API over the call records (`/api/*`), closed unless `[admin] token` is set.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/calls` | `{"calls": [...], "next_cursor": "…" or null}`, newest first; the items are records without their transcript |
//! | `GET /api/calls/{sid}` | the whole record |
//! | `GET /api/calls/{sid}/transcript` | `{"call_sid": …, "transcript": [...]}`, or plain text with `Accept: text/plain` |
//! | `POST /api/calls` | places an outbound call (see [`crate::outbound`]); 201 `{"call_sid": …}` |
//!
//! Without a token every `/api` path is 404, exactly like an unknown path; with one, a request
//! without `Authorization: Bearer <token>` or with another token is 401. Tokens are compared in
//! constant time (their SHA-256 digests, so neither content nor length leaks through timing).
//!
//! List filters (query string): `since_ms` / `until_ms` (Unix epoch milliseconds, when the
//! store first heard of the call), `number` (the `from` or the `to` number, exactly),
//! `end_reason`, `direction` (`inbound`/`outbound`), `limit` (1–200, default 50) and `cursor`
//! (the previous page's `next_cursor`). Pages follow the order in which the calls were first
//! stored **as committed** (`list_seq`, drawn at commit under a lock in PostgreSQL; see
//! migration 0004), not the order ids were drawn: a call committed while a client pages
//! appears at the top, above every position already read, and never shifts, skips or repeats
//! a call on the pages after the first, even when two instances write concurrently.

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::routes::{self, Body};
use crate::server::AppState;
use crate::store::{Db, ListQuery};

/// The default page size.
const DEFAULT_LIMIT: i64 = 50;
/// The largest page size.
const MAX_LIMIT: i64 = 200;

/// Serves one `/api/*` request.
pub(crate) async fn handle(state: &AppState, req: Request<Incoming>) -> Response<Body> {
    let Some(token) = &state.config.admin.token else {
        return routes::text(StatusCode::NOT_FOUND, "not found\n");
    };
    if !authorized(token.expose(), req.headers().get(header::AUTHORIZATION)) {
        crate::telemetry::rejected("admin_token");
        let mut response = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"phone-agent\""),
        );
        return response;
    }
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method().clone();
    match (segments.as_slice(), &method) {
        (["api", "calls"], &Method::POST) => crate::outbound::place(state, req).await,
        (["api", "calls"], &Method::GET) => list(state, req.uri().query()).await,
        (["api", "calls", sid], &Method::GET) => get(state, sid, false, None).await,
        (["api", "calls", sid, "transcript"], &Method::GET) => {
            let plain = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/plain"));
            get(state, sid, true, Some(plain)).await
        }
        (["api", "calls"], _) => routes::method_not_allowed("GET, POST"),
        (["api", "calls", _] | ["api", "calls", _, "transcript"], _) => {
            routes::method_not_allowed("GET")
        }
        _ => routes::text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Whether the `Authorization` header carries the token.
fn authorized(token: &str, header: Option<&HeaderValue>) -> bool {
    let Some(given) = header
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let given = Sha256::digest(given.trim().as_bytes());
    let expected = Sha256::digest(token.as_bytes());
    bool::from(given.as_slice().ct_eq(expected.as_slice()))
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    routes::with_body(
        status,
        "application/json",
        serde_json::json!({ "error": message }).to_string(),
    )
}

fn json(value: &serde_json::Value) -> Response<Body> {
    routes::with_body(StatusCode::OK, "application/json", value.to_string())
}

/// The database, or the status and message to answer with.
fn db(state: &AppState) -> Result<&Db, (StatusCode, &'static str)> {
    match &state.store {
        None => Err((
            StatusCode::NOT_FOUND,
            "call records are off (database.url = \"off\")",
        )),
        Some(store) => store.db().ok_or((
            StatusCode::SERVICE_UNAVAILABLE,
            "the call store's database is not reachable yet",
        )),
    }
}

fn parse_query(query: Option<&str>) -> Result<ListQuery, String> {
    let mut q = ListQuery {
        limit: DEFAULT_LIMIT,
        ..ListQuery::default()
    };
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let int = |v: &str| {
            v.parse::<i64>()
                .map_err(|_| format!("{key} must be an integer, not {v:?}"))
        };
        match key.as_ref() {
            "limit" => {
                q.limit = int(&value)?;
                if !(1..=MAX_LIMIT).contains(&q.limit) {
                    return Err(format!("limit must be between 1 and {MAX_LIMIT}"));
                }
            }
            "cursor" => q.before = Some(int(&value)?),
            "since_ms" => q.since_ms = Some(int(&value)?),
            "until_ms" => q.until_ms = Some(int(&value)?),
            "number" => q.number = Some(value.into_owned()),
            "end_reason" => q.end_reason = Some(value.into_owned()),
            "direction" => {
                if value != "inbound" && value != "outbound" {
                    return Err("direction must be inbound or outbound".into());
                }
                q.direction = Some(value.into_owned());
            }
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    Ok(q)
}

async fn list(state: &AppState, query: Option<&str>) -> Response<Body> {
    let mut q = match parse_query(query) {
        Ok(q) => q,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let db = match db(state) {
        Ok(db) => db,
        Err((status, message)) => return error(status, message),
    };
    let limit = q.limit;
    q.limit += 1;
    match db.list(&q).await {
        Ok(mut rows) => {
            let more = rows.len() as i64 > limit;
            rows.truncate(limit as usize);
            let next = more
                .then(|| rows.last().map(|r| r.seq.to_string()))
                .flatten();
            let calls: Vec<serde_json::Value> = rows
                .into_iter()
                .map(|mut r| {
                    if let Some(obj) = r.json.as_object_mut() {
                        obj.remove("transcript");
                    }
                    r.json
                })
                .collect();
            json(&serde_json::json!({ "calls": calls, "next_cursor": next }))
        }
        Err(e) => {
            tracing::error!(error = %e, "admin API: listing calls failed");
            error(StatusCode::SERVICE_UNAVAILABLE, "the database failed")
        }
    }
}

async fn get(state: &AppState, sid: &str, transcript: bool, plain: Option<bool>) -> Response<Body> {
    if sid.is_empty() || sid.len() > 64 || !sid.chars().all(|c| c.is_ascii_alphanumeric()) {
        return error(StatusCode::NOT_FOUND, "no such call");
    }
    let db = match db(state) {
        Ok(db) => db,
        Err((status, message)) => return error(status, message),
    };
    let call = match db.get(sid).await {
        Ok(Some(call)) => call,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such call"),
        Err(e) => {
            tracing::error!(error = %e, "admin API: reading a call failed");
            return error(StatusCode::SERVICE_UNAVAILABLE, "the database failed");
        }
    };
    if !transcript {
        return json(&call.json);
    }
    let turns = call
        .json
        .get("transcript")
        .cloned()
        .unwrap_or_else(|| serde_json::json!([]));
    if plain == Some(true) {
        let record: Result<crate::record::CallRecord, _> = serde_json::from_value(call.json);
        let text = match record {
            Ok(record) => crate::record::transcript_text(&record),
            Err(_) => String::new(),
        };
        return routes::with_body(StatusCode::OK, "text/plain; charset=utf-8", text);
    }
    json(&serde_json::json!({ "call_sid": sid, "transcript": turns }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        let ok = HeaderValue::from_static("Bearer 0123456789abcdef");
        assert!(authorized("0123456789abcdef", Some(&ok)));
        let wrong = HeaderValue::from_static("Bearer 0123456789abcdeX");
        assert!(!authorized("0123456789abcdef", Some(&wrong)));
        let basic = HeaderValue::from_static("Basic 0123456789abcdef");
        assert!(!authorized("0123456789abcdef", Some(&basic)));
        assert!(!authorized("0123456789abcdef", None));
    }

    #[test]
    fn list_queries() {
        let q = parse_query(Some(
            "limit=2&cursor=17&number=%2B15551234567&direction=inbound",
        ))
        .unwrap();
        assert_eq!(q.limit, 2);
        assert_eq!(q.before, Some(17));
        assert_eq!(q.number.as_deref(), Some("+15551234567"));
        assert!(parse_query(Some("limit=0")).is_err());
        assert!(parse_query(Some("direction=sideways")).is_err());
        assert!(parse_query(Some("colour=blue")).is_err());
    }
}
