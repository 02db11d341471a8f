//! Mock Twilio REST API (the `Calls` resource), for testing hang-up, transfer and outbound
//! calls without Twilio.
//!
//! Serves, on `127.0.0.1:0`, form-encoded requests with HTTP Basic auth (Account SID + auth
//! token, or an `SK…` API key + secret) exactly where the real API has them (PROTOCOLS.md §5):
//!
//! * `POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json` — update a call
//!   (`Status=completed|canceled`, `Twiml=…`, `Url=…`); `200` + the call resource;
//! * `POST /2010-04-01/Accounts/{AccountSid}/Calls.json` — create an outbound call
//!   (`To`, `From`, one of `Url`/`Twiml`/`ApplicationSid`); `201` + the call resource
//!   (`status: "queued"`);
//! * `GET …/Calls/{CallSid}.json` — fetch a call.
//!
//! Responses are JSON call resources in snake_case; errors are Twilio-shaped
//! `{"code","message","more_info","status"}`: `20003` (401, bad credentials), `20404` (404,
//! unknown route or foreign account), `21220` (400, updating a call that is not in progress —
//! including, by default, a call the mock has never heard of), `12100` (400, unparsable
//! `Twiml`), `21201`/`21603`/`21205` (400, create without `To`/`From`/`Url`). Codes other than
//! 20003/20404/21220 are best-effort approximations.
//!
//! Every request is recorded ([`RestRequest`]) and can be awaited. Calls placed by a linked
//! [`crate::twilio::CallSimulator`] are registered automatically; an update that hangs up or
//! redirects such a call makes the simulator send `stop` and close its media stream, as Twilio
//! does.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use testkit::http::{basic_auth, post_form};
//! use testkit::rest::MockTwilioRest;
//!
//! let rest = MockTwilioRest::start().await?;
//! let sid = "CA00000000000000000000000000000001";
//! rest.register_call(sid, "+14155551234", "+15005550006");
//! // The server under test is configured with rest.base_url(), rest.account_sid() and
//! // rest.auth_token(); here we play the server ourselves.
//! let url = format!("{}/2010-04-01/Accounts/{}/Calls/{sid}.json", rest.base_url(), rest.account_sid());
//! let auth = basic_auth(rest.account_sid(), rest.auth_token());
//! let r = post_form(&url, &[("authorization", &auth)], &[("Status", "completed")]).await?;
//! assert_eq!(r.json()?["status"], "completed");
//!
//! let update = rest.wait_for_update(sid, Duration::from_secs(5)).await?;
//! assert_eq!(update.param("Status"), Some("completed"));
//! // The call is over: a second update is refused with 21220.
//! let r = post_form(&url, &[("authorization", &auth)], &[("Status", "completed")]).await?;
//! assert_eq!(r.json()?["code"], 21220);
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::WaitError;
use crate::http::{ServerResponse, bind_local, json_response, spawn_server};
use crate::twilio::twiml::{Twiml, TwimlError};
use crate::wait::Observed;

/// What the mock does with an update for a call SID it does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownCallPolicy {
    /// Answer `400` with code `21220` ("Call is not in-progress. Cannot redirect.").
    #[default]
    Reject21220,
    /// Answer `404` with code `20404`.
    NotFound,
    /// Register the call as `in-progress` and apply the update.
    AcceptAsInProgress,
}

/// Configuration of a [`MockTwilioRest`].
#[derive(Debug, Clone)]
pub struct RestConfig {
    /// The account (`AC…`) whose `Calls` the mock serves.
    pub account_sid: String,
    /// The account's auth token (Basic auth password with `account_sid` as user name).
    pub auth_token: String,
    /// Accepted API keys: `(SK… sid, secret)`.
    pub api_keys: Vec<(String, String)>,
    /// Handling of updates for unknown calls.
    pub unknown_calls: UnknownCallPolicy,
}

impl Default for RestConfig {
    fn default() -> Self {
        Self {
            account_sid: crate::sid::new_sid("AC"),
            auth_token: "0123456789abcdef0123456789abcdef".to_string(),
            api_keys: Vec::new(),
            unknown_calls: UnknownCallPolicy::default(),
        }
    }
}

/// A request the mock received, with what it answered.
#[derive(Debug, Clone)]
pub struct RestRequest {
    /// When it arrived.
    pub at: Instant,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Decoded form parameters in order (repeats kept).
    pub params: Vec<(String, String)>,
    /// Basic-auth user name, if a well-formed `Authorization: Basic` header was present.
    pub username: Option<String>,
    /// Whether the credentials were accepted.
    pub authenticated: bool,
    /// `Content-Type` request header.
    pub content_type: Option<String>,
    /// The route it matched.
    pub kind: RequestKind,
    /// The call SID in the path (updates and fetches) or created (creates).
    pub call_sid: Option<String>,
    /// Status code answered.
    pub status: u16,
    /// Body answered.
    pub response: String,
}

impl RestRequest {
    /// First value of form parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `Twiml` parameter, parsed.
    pub fn twiml(&self) -> Option<Result<Twiml, TwimlError>> {
        self.param("Twiml").map(Twiml::parse)
    }

    /// Whether the request succeeded (2xx).
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Which route a request matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// `POST …/Calls/{Sid}.json`.
    UpdateCall,
    /// `POST …/Calls.json`.
    CreateCall,
    /// `GET …/Calls/{Sid}.json`.
    FetchCall,
    /// Anything else (answered 404/405).
    Other,
}

/// A call known to the mock.
#[derive(Debug, Clone)]
pub struct CallInfo {
    /// `CA…`.
    pub sid: String,
    /// Caller.
    pub from: String,
    /// Callee.
    pub to: String,
    /// `queued`, `ringing`, `in-progress`, `completed`, `canceled`, ...
    pub status: String,
    /// `inbound`, `outbound-api`.
    pub direction: String,
    /// For created calls: the `Twiml` parameter.
    pub twiml: Option<String>,
    /// For created calls: the `Url` parameter.
    pub url: Option<String>,
    /// Every TwiML document pushed to the call by updates, in order.
    pub twiml_updates: Vec<String>,
    /// Every `Url` pushed to the call by updates, in order.
    pub url_updates: Vec<String>,
    created: SystemTime,
    updated: SystemTime,
    started: Option<SystemTime>,
    ended: Option<SystemTime>,
}

impl CallInfo {
    fn new(sid: &str, from: &str, to: &str, status: &str, direction: &str) -> Self {
        let now = SystemTime::now();
        Self {
            sid: sid.to_string(),
            from: from.to_string(),
            to: to.to_string(),
            status: status.to_string(),
            direction: direction.to_string(),
            twiml: None,
            url: None,
            twiml_updates: Vec::new(),
            url_updates: Vec::new(),
            created: now,
            updated: now,
            started: (status == "in-progress").then_some(now),
            ended: None,
        }
    }

    fn is_live(&self) -> bool {
        matches!(self.status.as_str(), "queued" | "ringing" | "in-progress")
    }

    fn set_status(&mut self, status: &str) {
        let now = SystemTime::now();
        self.status = status.to_string();
        self.updated = now;
        if status == "in-progress" && self.started.is_none() {
            self.started = Some(now);
        }
        if !self.is_live() && self.ended.is_none() {
            self.ended = Some(now);
        }
    }

    fn resource(&self, account_sid: &str) -> serde_json::Value {
        let uri = format!("/2010-04-01/Accounts/{account_sid}/Calls/{}.json", self.sid);
        let sub = |name: &str| {
            format!(
                "/2010-04-01/Accounts/{account_sid}/Calls/{}/{name}.json",
                self.sid
            )
        };
        let duration = match (self.started, self.ended) {
            (Some(s), Some(e)) => json!(
                e.duration_since(s)
                    .unwrap_or_default()
                    .as_secs()
                    .to_string()
            ),
            _ => serde_json::Value::Null,
        };
        json!({
            "sid": self.sid,
            "date_created": rfc2822(self.created),
            "date_updated": rfc2822(self.updated),
            "parent_call_sid": null,
            "account_sid": account_sid,
            "to": self.to,
            "to_formatted": self.to,
            "from": self.from,
            "from_formatted": self.from,
            "phone_number_sid": null,
            "status": self.status,
            "start_time": self.started.map(rfc2822),
            "end_time": self.ended.map(rfc2822),
            "duration": duration,
            "price": null,
            "price_unit": "USD",
            "direction": self.direction,
            "answered_by": null,
            "api_version": "2010-04-01",
            "forwarded_from": null,
            "group_sid": null,
            "caller_name": null,
            "queue_time": "0",
            "trunk_sid": null,
            "uri": uri,
            "subresource_uris": {
                "notifications": sub("Notifications"),
                "recordings": sub("Recordings"),
                "payments": sub("Payments"),
                "events": sub("Events"),
                "siprec": sub("Siprec"),
                "streams": sub("Streams"),
                "transcriptions": sub("Transcriptions"),
                "user_defined_message_subscriptions": sub("UserDefinedMessageSubscriptions"),
                "user_defined_messages": sub("UserDefinedMessages"),
            },
        })
    }
}

/// What a call update asks of the live call; delivered to a linked simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallControl {
    /// `Status=completed`: hang up.
    Hangup,
    /// `Twiml=…`: run this document now (the media stream ends).
    Twiml(String),
    /// `Url=…`: fetch TwiML from this URL now (the media stream ends).
    Redirect(String),
}

#[derive(Debug, Default)]
struct RestState {
    calls: BTreeMap<String, CallInfo>,
    requests: Vec<RestRequest>,
    watchers: HashMap<String, mpsc::UnboundedSender<CallControl>>,
    failures: VecDeque<(u16, u32, String)>,
    /// Authenticated requests still to be stalled (handled, then never answered).
    stalls: usize,
    /// Authenticated requests still to be held (handled at once, answered when released).
    holds: usize,
}

#[derive(Debug)]
struct Shared {
    cfg: RestConfig,
    state: Observed<RestState>,
    /// Cancelled when the mock stops (releases stalled requests).
    stopped: CancellationToken,
    /// Permits for held requests ([`MockTwilioRest::release_held`]).
    released: tokio::sync::Semaphore,
}

#[derive(Debug)]
struct Inner {
    addr: SocketAddr,
    cancel: CancellationToken,
    shared: Arc<Shared>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The mock Twilio REST API. Cheap to clone; the server stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct MockTwilioRest {
    inner: Arc<Inner>,
}

impl MockTwilioRest {
    /// Starts a mock with a generated account SID and the auth token
    /// `0123456789abcdef0123456789abcdef`.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(RestConfig::default()).await
    }

    /// Starts a mock with `cfg`.
    pub async fn start_with(cfg: RestConfig) -> std::io::Result<Self> {
        let (listener, addr) = bind_local().await?;
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared {
            cfg,
            state: Observed::new(RestState::default()),
            stopped: cancel.clone(),
            released: tokio::sync::Semaphore::new(0),
        });
        let handler_shared = shared.clone();
        spawn_server(listener, cancel.clone(), move |req| {
            let shared = handler_shared.clone();
            async move { handle(&shared, req).await }
        });
        Ok(Self {
            inner: Arc::new(Inner {
                addr,
                cancel,
                shared,
            }),
        })
    }

    /// `http://127.0.0.1:PORT` — the API base to configure in place of `https://api.twilio.com`
    /// (request paths start with `/2010-04-01/`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The account SID.
    pub fn account_sid(&self) -> &str {
        &self.inner.shared.cfg.account_sid
    }

    /// The auth token.
    pub fn auth_token(&self) -> &str {
        &self.inner.shared.cfg.auth_token
    }

    fn state(&self) -> &Observed<RestState> {
        &self.inner.shared.state
    }

    /// Registers a live inbound call (`in-progress`), as if Twilio had answered it.
    pub fn register_call(&self, call_sid: &str, from: &str, to: &str) {
        self.state().update(|s| {
            s.calls.insert(
                call_sid.to_string(),
                CallInfo::new(call_sid, from, to, "in-progress", "inbound"),
            );
        });
    }

    /// Sets a call's status (e.g. `completed` when the caller hangs up).
    pub fn set_call_status(&self, call_sid: &str, status: &str) {
        self.state().update(|s| {
            if let Some(c) = s.calls.get_mut(call_sid) {
                c.set_status(status);
            }
        });
    }

    /// A known call.
    pub fn call(&self, call_sid: &str) -> Option<CallInfo> {
        self.state().read(|s| s.calls.get(call_sid).cloned())
    }

    /// All known calls, by SID.
    pub fn calls(&self) -> Vec<CallInfo> {
        self.state().read(|s| s.calls.values().cloned().collect())
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RestRequest> {
        self.state().read(|s| s.requests.clone())
    }

    /// Makes the next authenticated request fail with `status` and a Twilio error body
    /// (`code`, `message`). Queued failures are used in order.
    pub fn fail_next(&self, status: u16, code: u32, message: &str) {
        self.state()
            .update(|s| s.failures.push_back((status, code, message.to_string())));
    }

    /// Makes the next authenticated request succeed or fail as usual (it is recorded, and a
    /// create does create the call) but **never answered** until the mock stops: what a
    /// client sees when Twilio acted on a request and the answer was lost (a timeout after
    /// sending). Queued stalls are used in order.
    pub fn stall_next(&self) {
        self.state().update(|s| s.stalls += 1);
    }

    /// Makes the next authenticated request succeed or fail as usual at once (it is recorded,
    /// an update acts on the call) but **answered** only once [`Self::release_held`] is
    /// called: what a client sees when Twilio acted on a request and its answer is late.
    pub fn hold_next(&self) {
        self.state().update(|s| s.holds += 1);
    }

    /// Answers one held request (the oldest waiting; or the next one held, if none waits yet).
    pub fn release_held(&self) {
        self.inner.shared.released.add_permits(1);
    }

    /// Waits for the first request (received before or after the call) matching `pred`.
    pub async fn wait_for_request(
        &self,
        pred: impl Fn(&RestRequest) -> bool,
        timeout: Duration,
    ) -> Result<RestRequest, WaitError> {
        self.state()
            .wait_until(
                timeout,
                || "a matching REST request".to_string(),
                |s| s.requests.iter().find(|r| pred(r)).cloned(),
                describe,
            )
            .await
    }

    /// Waits for the first update request (`POST …/Calls/{call_sid}.json`) for `call_sid`,
    /// whatever it answered.
    pub async fn wait_for_update(
        &self,
        call_sid: &str,
        timeout: Duration,
    ) -> Result<RestRequest, WaitError> {
        self.state()
            .wait_until(
                timeout,
                || format!("an update of call {call_sid}"),
                |s| {
                    s.requests
                        .iter()
                        .find(|r| {
                            r.kind == RequestKind::UpdateCall
                                && r.call_sid.as_deref() == Some(call_sid)
                        })
                        .cloned()
                },
                describe,
            )
            .await
    }

    /// Waits for the `n`-th (1-based) successfully created outbound call.
    pub async fn wait_for_created_call(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<CallInfo, WaitError> {
        self.state()
            .wait_until(
                timeout,
                || format!("created call #{n}"),
                |s| {
                    let sid = s
                        .requests
                        .iter()
                        .filter(|r| r.kind == RequestKind::CreateCall && r.succeeded())
                        .nth(n.saturating_sub(1))?
                        .call_sid
                        .clone()?;
                    s.calls.get(&sid).cloned()
                },
                describe,
            )
            .await
    }

    /// Subscribes to control actions (hang-up, new TwiML) applied to `call_sid` by updates.
    /// Replaces an earlier subscription for the same call.
    pub fn watch_call(&self, call_sid: &str) -> mpsc::UnboundedReceiver<CallControl> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.state().update(|s| {
            s.watchers.insert(call_sid.to_string(), tx);
        });
        rx
    }
}

fn describe(s: &RestState) -> String {
    let reqs: Vec<String> = s
        .requests
        .iter()
        .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
        .collect();
    format!("requests: [{}]", reqs.join(", "))
}

/// What the mock answers: status, JSON body, and whether to add a Basic-auth challenge.
struct Reply {
    status: u16,
    body: serde_json::Value,
    challenge: bool,
}

fn reply(status: u16, body: serde_json::Value) -> Reply {
    Reply {
        status,
        body,
        challenge: false,
    }
}

fn twilio_error(status: u16, code: u32, message: &str) -> Reply {
    reply(
        status,
        json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        }),
    )
}

/// Parses `Authorization: Basic base64(user:pass)`.
fn basic_credentials(req: &Request<Incoming>) -> Option<(String, String)> {
    let value = req
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> ServerResponse {
    let at = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let creds = basic_credentials(&req);
    let cfg = &shared.cfg;
    let authenticated = creds.as_ref().is_some_and(|(u, p)| {
        (u == &cfg.account_sid && p == &cfg.auth_token)
            || cfg.api_keys.iter().any(|(k, s)| k == u && s == p)
    });
    let body: Bytes = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();

    let mut record = RestRequest {
        at,
        method: method.to_string(),
        path: path.clone(),
        params,
        username: creds.map(|(u, _)| u),
        authenticated,
        content_type,
        kind: RequestKind::Other,
        call_sid: None,
        status: 0,
        response: String::new(),
    };
    let reply = route(shared, &method, &path, &mut record);
    record.status = reply.status;
    record.response = reply.body.to_string();
    let (stall, hold) = shared.state.update(|s| {
        s.requests.push(record);
        let stall = authenticated && s.stalls > 0;
        if stall {
            s.stalls -= 1;
        }
        let hold = authenticated && !stall && s.holds > 0;
        if hold {
            s.holds -= 1;
        }
        (stall, hold)
    });
    if stall {
        shared.stopped.cancelled().await;
    }
    if hold {
        tokio::select! {
            permit = shared.released.acquire() => {
                if let Ok(permit) = permit {
                    permit.forget();
                }
            }
            () = shared.stopped.cancelled() => {}
        }
    }
    let mut response = json_response(
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &reply.body,
    );
    if reply.challenge {
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Basic realm=\"Twilio API\""),
        );
    }
    response
}

fn route(shared: &Shared, method: &Method, path: &str, rec: &mut RestRequest) -> Reply {
    let cfg = &shared.cfg;
    let not_found = || {
        twilio_error(
            404,
            20404,
            &format!("The requested resource {path} was not found"),
        )
    };
    // /2010-04-01/Accounts/{AC}/Calls.json or /2010-04-01/Accounts/{AC}/Calls/{CA}.json
    let Some(rest) = path.strip_prefix("/2010-04-01/Accounts/") else {
        return not_found();
    };
    let Some((account, rest)) = rest.split_once('/') else {
        return not_found();
    };
    let call_sid = match rest {
        "Calls.json" => None,
        other => match other
            .strip_prefix("Calls/")
            .and_then(|s| s.strip_suffix(".json"))
        {
            Some(sid) if !sid.contains('/') => Some(sid.to_string()),
            _ => return not_found(),
        },
    };
    rec.kind = match (&call_sid, method) {
        (None, &Method::POST) => RequestKind::CreateCall,
        (Some(_), &Method::POST) => RequestKind::UpdateCall,
        (Some(_), &Method::GET) => RequestKind::FetchCall,
        _ => RequestKind::Other,
    };
    rec.call_sid.clone_from(&call_sid);
    if !rec.authenticated {
        let mut r = twilio_error(401, 20003, "Authenticate");
        r.challenge = true;
        return r;
    }
    if account != cfg.account_sid {
        return not_found();
    }
    if rec.kind == RequestKind::Other {
        return twilio_error(405, 20004, "Method not allowed");
    }
    if let Some((status, code, message)) = shared.state.update(|s| s.failures.pop_front()) {
        return twilio_error(status, code, &message);
    }
    match rec.kind {
        RequestKind::CreateCall => create_call(shared, rec),
        RequestKind::UpdateCall => update_call(shared, rec),
        RequestKind::FetchCall => {
            let sid = rec.call_sid.clone().unwrap_or_default();
            match shared
                .state
                .read(|s| s.calls.get(&sid).map(|c| c.resource(&cfg.account_sid)))
            {
                Some(resource) => reply(200, resource),
                None => not_found(),
            }
        }
        RequestKind::Other => not_found(),
    }
}

fn create_call(shared: &Shared, rec: &mut RestRequest) -> Reply {
    let (Some(to), Some(from)) = (rec.param("To"), rec.param("From")) else {
        return if rec.param("To").is_none() {
            twilio_error(400, 21201, "No 'To' number is specified")
        } else {
            twilio_error(400, 21603, "A 'From' phone number is required.")
        };
    };
    let url = rec.param("Url").map(str::to_string);
    let twiml = rec.param("Twiml").map(str::to_string);
    if url.is_none() && twiml.is_none() && rec.param("ApplicationSid").is_none() {
        return twilio_error(400, 21205, "Url parameter is required.");
    }
    if url.is_none()
        && let Some(t) = &twiml
    {
        if t.chars().count() > 4000 {
            return twilio_error(400, 21232, "Twiml exceeds the maximum of 4000 characters.");
        }
        if let Err(e) = Twiml::parse(t) {
            return twilio_error(400, 12100, &format!("Document parse failure: {e}"));
        }
    }
    let sid = crate::sid::new_sid("CA");
    let mut call = CallInfo::new(&sid, from, to, "queued", "outbound-api");
    call.twiml = twiml;
    call.url = url;
    let resource = call.resource(&shared.cfg.account_sid);
    shared.state.update(|s| s.calls.insert(sid.clone(), call));
    rec.call_sid = Some(sid);
    reply(201, resource)
}

fn update_call(shared: &Shared, rec: &mut RestRequest) -> Reply {
    let sid = rec.call_sid.clone().unwrap_or_default();
    let account = shared.cfg.account_sid.clone();
    let status = rec.param("Status").map(str::to_string);
    let twiml = rec.param("Twiml").map(str::to_string);
    let url = rec.param("Url").map(str::to_string);
    if let Some(st) = &status
        && st != "completed"
        && st != "canceled"
    {
        return twilio_error(400, 20001, &format!("Invalid Status: {st}"));
    }
    if let Some(t) = &twiml {
        if t.chars().count() > 4000 {
            return twilio_error(400, 21232, "Twiml exceeds the maximum of 4000 characters.");
        }
        if let Err(e) = Twiml::parse(t) {
            return twilio_error(400, 12100, &format!("Document parse failure: {e}"));
        }
    }
    let policy = shared.cfg.unknown_calls;
    let outcome = shared.state.update(|s| {
        if !s.calls.contains_key(&sid) {
            match policy {
                UnknownCallPolicy::Reject21220 => return Err((400, 21220)),
                UnknownCallPolicy::NotFound => return Err((404, 20404)),
                UnknownCallPolicy::AcceptAsInProgress => {
                    s.calls.insert(
                        sid.clone(),
                        CallInfo::new(&sid, "", "", "in-progress", "inbound"),
                    );
                }
            }
        }
        let Some(call) = s.calls.get_mut(&sid) else {
            return Err((404, 20404));
        };
        if !call.is_live() {
            return Err((400, 21220));
        }
        let mut control = None;
        match status.as_deref() {
            Some("completed") => {
                call.set_status("completed");
                control = Some(CallControl::Hangup);
            }
            Some("canceled") if call.status != "in-progress" => {
                call.set_status("canceled");
                control = Some(CallControl::Hangup);
            }
            _ => {}
        }
        if control.is_none() {
            if let Some(u) = &url {
                call.url_updates.push(u.clone());
                call.updated = SystemTime::now();
                control = Some(CallControl::Redirect(u.clone()));
            } else if let Some(t) = &twiml {
                call.twiml_updates.push(t.clone());
                call.updated = SystemTime::now();
                control = Some(CallControl::Twiml(t.clone()));
            }
        } else if let Some(t) = &twiml {
            call.twiml_updates.push(t.clone());
        }
        let resource = call.resource(&account);
        if let Some(c) = control
            && let Some(w) = s.watchers.get(&sid)
        {
            let _ = w.send(c);
        }
        Ok(resource)
    });
    match outcome {
        Ok(resource) => reply(200, resource),
        Err((404, code)) => twilio_error(
            404,
            code,
            &format!("The requested resource {} was not found", rec.path),
        ),
        Err((status, code)) => {
            twilio_error(status, code, "Call is not in-progress. Cannot redirect.")
        }
    }
}

/// Formats a time as RFC 2822 in UTC (`Tue, 31 Aug 2010 20:36:28 +0000`), as Twilio does.
fn rfc2822(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = (days + 4).rem_euclid(7); // 1970-01-01 was a Thursday.
    const WD: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MO: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        WD[weekday as usize],
        day,
        MO[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2822_dates() {
        let t = UNIX_EPOCH + Duration::from_secs(1_283_286_988);
        assert_eq!(rfc2822(t), "Tue, 31 Aug 2010 20:36:28 +0000");
        assert_eq!(rfc2822(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc2822(leap), "Tue, 29 Feb 2000 00:00:00 +0000");
    }
}
