//! The HTTP server: accept loop, connections, calls, and graceful shutdown.
//!
//! HTTP/1 only (Twilio webhooks and the Media Streams upgrade are HTTP/1.1), served by hyper with
//! upgrades enabled and a header read timeout. Each accepted socket gets `TCP_NODELAY`.
//!
//! Shutdown (on [`ServerHandle::shutdown`], which the binary calls on SIGTERM/SIGINT):
//!
//! 1. draining at once: `/ready` answers 503, `/voice` answers new calls "busy"; the listener
//!    keeps serving for `server.shutdown_notice` (load balancers see the 503; `/health`, the
//!    webhooks and the streams of calls answered before are served);
//! 2. stop accepting (the listener is dropped); idle keep-alive connections are closed,
//!    in-flight requests finish;
//! 3. calls that can be handed over (`shutdown.handover`, a call store, Realtime or
//!    GPT-Live) end their streams at their next pause with the conversation saved, for
//!    another instance to resume (see [`crate::handover`]); the others continue for up to
//!    `server.shutdown_grace`;
//! 4. then every remaining call is ended through the engine's shutdown (both sockets closed).
//!
//! Upgraded WebSockets are invisible to hyper's connection tracking, so calls are tracked with a
//! [`TaskTracker`] of their own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bridge_core::driver::CallControl;
use bridge_core::tools::ToolExecutor;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Backend, Config};
use crate::profiles::Profiles;
use crate::store::{CallStore, StoreCounts};
use crate::tokens::{StreamTokenKey, UsedStreams};
use crate::tools::ToolServices;

/// How long after the grace deadline ended calls get to close their sockets before the server
/// stops waiting for them.
const END_CALLS_TIMEOUT: Duration = Duration::from_secs(5);

/// CallSids whose stream was accepted, remembered until their token expires (a bound on
/// memory; at 60 s tokens this is over 1,000 new calls a second per instance).
const MAX_TRACKED_STREAMS: usize = 65_536;

/// Shared state of one server.
pub(crate) struct AppState {
    pub(crate) config: Config,
    /// Tools given with [`Server::with_tools`]: they replace the configured ones on every call.
    pub(crate) tools: Option<Arc<dyn ToolExecutor>>,
    /// Call control given with [`Server::with_call_control`]: it replaces the Twilio REST
    /// call control on every call.
    pub(crate) control: Option<Arc<dyn CallControl>>,
    /// The configured tools' shared services (HTTP client, Twilio REST).
    pub(crate) tool_services: Arc<ToolServices>,
    /// Per-number profiles.
    pub(crate) profiles: Profiles,
    /// Mints and checks stream tokens (stateless).
    pub(crate) token_key: StreamTokenKey,
    /// CallSids whose stream this instance accepted.
    pub(crate) used_streams: UsedStreams,
    /// How this instance's recent calls ended (for `/voice/fallback`).
    pub(crate) call_ends: crate::fallback::CallEnds,
    pub(crate) calls: Calls,
    pub(crate) draining: AtomicBool,
    /// Connection settings for OpenAI Realtime (built once; `None` for other back ends).
    pub(crate) openai: Option<openai_realtime::client::Endpoint>,
    /// The call store (`None` with `database.url = "off"`).
    pub(crate) store: Option<CallStore>,
    /// Calls whose stream is open on this instance, by call SID.
    pub(crate) open_calls: crate::status::OpenCalls,
    /// The operator console's sessions and live calls.
    pub(crate) console: crate::console::Console,
    /// Agent sessions opened at `/voice`, waiting for their call's stream.
    pub(crate) prewarms: Arc<crate::prewarm::Prewarms>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("active_calls", &self.calls.active())
            .field("draining", &self.is_draining())
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// The calls of one server: capacity, tracking, and the signal that ends them all.
///
/// Capacity is a semaphore of `max_concurrent_calls` slots. `/voice` reserves a slot for the
/// call (keyed by CallSid, for the stream token's lifetime), and the stream of that call claims
/// it after `start`, so a caller who was not rejected at the webhook is not dropped at
/// `/media`; a reservation nobody claims expires and frees its slot. Streams still waiting for
/// `start` hold a permit of a separate, smaller pool (`max_pending_streams`), never a slot.
pub(crate) struct Calls {
    pub(crate) tracker: TaskTracker,
    /// Cancelled when the shutdown grace period is over: every call ends.
    pub(crate) end_all: CancellationToken,
    /// Cancelled when the server stops listening at shutdown (a child of `end_all`): calls
    /// that can be handed over (`shutdown.handover`) end their streams at the next pause
    /// with their conversation saved (see [`crate::handover`]).
    pub(crate) handover_all: CancellationToken,
    slots: Arc<Semaphore>,
    pending: Arc<Semaphore>,
    reservations: std::sync::Mutex<HashMap<String, (OwnedSemaphorePermit, Instant)>>,
    reservation_ttl: Duration,
    running: Arc<AtomicUsize>,
}

/// A call slot, held for the whole call; released when dropped.
pub(crate) struct CallSlot {
    _permit: OwnedSemaphorePermit,
    running: Arc<AtomicUsize>,
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Calls {
    fn new(max: usize, max_pending: usize, reservation_ttl: Duration) -> Self {
        let end_all = CancellationToken::new();
        Calls {
            tracker: TaskTracker::new(),
            handover_all: end_all.child_token(),
            end_all,
            slots: Arc::new(Semaphore::new(max)),
            pending: Arc::new(Semaphore::new(max_pending)),
            reservations: std::sync::Mutex::new(HashMap::new()),
            reservation_ttl,
            running: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Calls in progress (streams that started and hold a slot).
    pub(crate) fn active(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    fn reservations(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (OwnedSemaphorePermit, Instant)>> {
        // Inserts and removes only: a poisoned lock leaves the map consistent.
        self.reservations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reserves a slot for `call_sid` until its stream claims it (or the reservation
    /// expires); false when full. A call that already holds a reservation keeps it (a
    /// replayed webhook reserves nothing more).
    pub(crate) fn reserve(&self, call_sid: &str, now: Instant) -> bool {
        let mut map = self.reservations();
        map.retain(|_, (_, expires)| *expires > now);
        if let Some((_, expires)) = map.get_mut(call_sid) {
            *expires = now + self.reservation_ttl;
            return true;
        }
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => {
                map.insert(call_sid.to_owned(), (permit, now + self.reservation_ttl));
                true
            }
            Err(_) => false,
        }
    }

    /// The slot of a call whose stream started: its reservation from `/voice` if there is
    /// one (even if just expired, as long as nobody took it), else a free slot; `None` when
    /// full.
    pub(crate) fn claim(&self, call_sid: &str, now: Instant) -> Option<CallSlot> {
        let reserved = {
            let mut map = self.reservations();
            let mine = map.remove(call_sid).map(|(permit, _)| permit);
            map.retain(|_, (_, expires)| *expires > now);
            mine
        };
        let permit = match reserved {
            Some(permit) => permit,
            None => Arc::clone(&self.slots).try_acquire_owned().ok()?,
        };
        self.running.fetch_add(1, Ordering::AcqRel);
        Some(CallSlot {
            _permit: permit,
            running: Arc::clone(&self.running),
        })
    }

    /// A permit for a stream waiting for `start`; `None` when too many are waiting.
    pub(crate) fn try_pending(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.pending).try_acquire_owned().ok()
    }

    /// Drops every reservation (shutdown: nobody will claim them here).
    fn clear_reservations(&self) {
        self.reservations().clear();
    }
}

/// Builds and starts a server.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use phone_agent_server::{config::Config, Server};
/// let config = Config::load().expect("valid configuration");
/// let handle = Server::new(config).bind().await?;
/// println!("listening on {}", handle.local_addr());
/// handle.shutdown();
/// let report = handle.wait().await;
/// assert_eq!(report.calls_ended, 0);
/// # Ok(()) }
/// ```
pub struct Server {
    config: Config,
    tools: Option<Arc<dyn ToolExecutor>>,
    control: Option<Arc<dyn CallControl>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What happened during shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Calls that were in progress when shutdown began.
    pub calls_at_shutdown: usize,
    /// Calls still running at the end of the grace period, ended by the server.
    pub calls_ended: usize,
    /// Whether every call task had finished when the server returned.
    pub clean: bool,
}

impl Server {
    /// A server with this configuration: tools, call control (Twilio REST when configured;
    /// otherwise a hang-up just ends the media stream and a transfer is refused) and profiles
    /// as configured.
    pub fn new(config: Config) -> Self {
        Server {
            config,
            tools: None,
            control: None,
        }
    }

    /// Call control (hang-ups and transfers requested by tools) for every call, **instead of**
    /// the built-in Twilio REST call control.
    pub fn with_call_control(mut self, control: Arc<dyn CallControl>) -> Self {
        self.control = Some(control);
        self
    }

    /// Tools offered to the agent on every call, **instead of** the configured `[[tools]]`
    /// and built-in tools (for embedding Rust tools; call control still works for the
    /// actions they return).
    pub fn with_tools(mut self, tools: Arc<dyn ToolExecutor>) -> Self {
        self.tools = Some(tools);
        self
    }

    /// Binds `server.bind_address:server.port` and starts serving.
    pub async fn bind(self) -> std::io::Result<ServerHandle> {
        let addr = SocketAddr::new(self.config.server.bind_address, self.config.server.port);
        let listener = TcpListener::bind(addr).await?;
        self.serve(listener)
    }

    /// Starts serving on an already bound listener (tests bind `127.0.0.1:0`). Must be called
    /// inside a tokio runtime.
    pub fn serve(self, listener: TcpListener) -> std::io::Result<ServerHandle> {
        let local_addr = listener.local_addr()?;
        let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
        let profiles = Profiles::build(&self.config).map_err(invalid)?;
        let http = crate::twilio_rest::http_client().map_err(invalid)?;
        let rest = crate::twilio_rest::RestSettings::from_config(&self.config)
            .map(|settings| crate::twilio_rest::TwilioRest::new(http.clone(), settings));
        let tool_services = Arc::new(ToolServices {
            http,
            rest,
            signing_secret: self.config.tools.signing_secret.clone(),
            max_response_bytes: self.config.tools.max_response_bytes,
            public_url: self.config.server.public_url.clone(),
            call_control: self.config.tools.call_control.clone(),
        });
        // Check every profile's session settings once at startup rather than on a call.
        let mut openai = None;
        for profile in profiles.all() {
            let definitions = match &self.tools {
                Some(tools) => tools.definitions(),
                None => profile.tools.definitions().to_vec(),
            };
            let in_profile = |e: String| invalid(format!("{e} (profile {})", profile.name));
            match profile.agent.backend {
                Backend::Realtime => {
                    crate::adapters::realtime::session_config(
                        &self.config.openai,
                        &profile.agent,
                        String::new(),
                        &definitions,
                        &profile.mcp_tools(),
                    )
                    .map_err(|e| in_profile(format!("OpenAI session configuration: {e}")))?;
                }
                Backend::Live => {
                    crate::adapters::live::check_startup(
                        &self.config.live,
                        &definitions,
                        &profile.mcp_servers,
                    )
                    .map_err(|e| in_profile(format!("GPT-Live configuration: {e}")))?;
                }
                Backend::Echo => continue,
            }
            if openai.is_none() {
                openai = Some(
                    crate::adapters::realtime::endpoint(&self.config.openai)
                        .map_err(|e| invalid(format!("OpenAI configuration: {e}")))?,
                );
            }
        }
        if tool_services.rest.is_none() && profiles.all().any(|p| p.tools.has_transfer()) {
            tracing::warn!(
                "transfer destinations are configured but the Twilio REST API is not \
                 (TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN or an API key): transfer_call \
                 will refuse every transfer"
            );
        }
        for warning in self.config.startup_warnings() {
            tracing::warn!("{warning}");
        }
        let metrics = if self.config.metrics.enabled {
            crate::telemetry::install()
        } else {
            None
        };
        let metrics_listener = match (&metrics, self.config.metrics.bind) {
            (Some(_), Some(addr)) => Some(crate::metrics_server::bind(addr)?),
            _ => None,
        };
        let metrics_addr = match &metrics_listener {
            Some(listener) => Some(listener.local_addr()?),
            None => None,
        };
        let token_key = match (
            &self.config.twilio.stream_token_secret,
            &self.config.twilio.auth_token,
        ) {
            (Some(secret), _) => StreamTokenKey::from_secret(secret.expose()),
            (None, Some(auth_token)) => {
                StreamTokenKey::derived_from_auth_token(auth_token.expose())
            }
            (None, None) => StreamTokenKey::random(),
        };
        let webhook = match (
            &self.config.call_webhook.url,
            &self.config.tools.signing_secret,
        ) {
            (Some(url), Some(secret)) => Some(crate::store::webhook::WebhookSetup {
                config: self.config.call_webhook.clone(),
                url: url.clone(),
                secret: secret.clone(),
                http: tool_services.http.clone(),
            }),
            _ => None,
        };
        let store = CallStore::start(&self.config.database, webhook)?;
        let state = Arc::new(AppState {
            store,
            open_calls: crate::status::OpenCalls::default(),
            prewarms: Arc::default(),
            console: crate::console::Console::default(),
            token_key,
            used_streams: UsedStreams::new(MAX_TRACKED_STREAMS),
            call_ends: crate::fallback::CallEnds::default(),
            calls: Calls::new(
                self.config.server.max_concurrent_calls,
                self.config.server.max_pending_streams,
                self.config.twilio.stream_token_ttl,
            ),
            tools: self.tools,
            control: self.control,
            tool_services,
            profiles,
            draining: AtomicBool::new(false),
            openai,
            config: self.config,
        });
        let shutdown = CancellationToken::new();
        // Stopped once the server has shut down (metrics stay readable while calls drain).
        let stopped = CancellationToken::new();
        if let (Some(handle), Some(listener)) = (&metrics, metrics_listener) {
            tokio::spawn(crate::metrics_server::run(
                listener,
                handle.clone(),
                stopped.clone(),
            ));
        }
        if let Some(handle) = metrics {
            // Histograms keep every sample until upkeep folds them into buckets: with a relay
            // sample per frame, the period sets how much memory each call holds (~16 bytes x
            // 100 samples/s); every second it is ~1.6 KiB per call.
            tokio::spawn(crate::telemetry::upkeep(
                handle,
                Duration::from_secs(1),
                shutdown.child_token(),
            ));
        }
        tracing::info!(
            %local_addr,
            backend = state.config.agent.backend.as_str(),
            public_url = state.config.server.public_url.as_ref().map(|u| u.http_base()).unwrap_or("-"),
            max_calls = state.config.server.max_concurrent_calls,
            metrics_addr = metrics_addr.map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
            "phone-agent server listening"
        );
        let task = tokio::spawn(run(listener, Arc::clone(&state), shutdown.clone()));
        let task = tokio::spawn(async move {
            let report = task.await;
            stopped.cancel();
            match report {
                Ok(report) => report,
                Err(e) => {
                    tracing::error!(error = %e, "server task failed");
                    ShutdownReport::default()
                }
            }
        });
        Ok(ServerHandle {
            local_addr,
            metrics_addr,
            shutdown,
            task,
            state,
        })
    }
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<ShutdownReport>,
    state: Arc<AppState>,
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the metrics listener (`None` when metrics are off).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Begins a graceful shutdown (returns at once; await [`Self::wait`]).
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// A token that starts the shutdown when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        self.state.calls.active()
    }

    /// The end-of-call webhook's counters (`None` without a store or `call_webhook.url`).
    pub fn webhook_counts(&self) -> Option<crate::store::WebhookCounts> {
        self.state
            .store
            .as_ref()
            .and_then(CallStore::webhook_counts)
    }

    /// How the agent sessions pre-warmed at `/voice` ended so far.
    pub fn prewarm_counts(&self) -> crate::PrewarmCounts {
        self.state.prewarms.counts()
    }

    /// The call store's counters (`None` with `database.url = "off"`).
    pub fn store_counts(&self) -> Option<StoreCounts> {
        self.state.store.as_ref().map(CallStore::counts)
    }

    /// Waits until the server has shut down (after [`Self::shutdown`]) and every call ended.
    pub async fn wait(self) -> ShutdownReport {
        match self.task.await {
            Ok(report) => report,
            Err(e) => {
                tracing::error!(error = %e, "server task failed");
                ShutdownReport::default()
            }
        }
    }
}

async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) -> ShutdownReport {
    let connections = TaskTracker::new();
    let conn_shutdown = CancellationToken::new();
    // Serving until the shutdown signal; then, draining (/ready 503, new calls "busy"), still
    // serving for the notice period so load balancers see the 503 and webhooks of calls in
    // flight are answered.
    let mut notice_over: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled(), if notice_over.is_none() => {
                state.draining.store(true, Ordering::Release);
                let notice = state.config.server.shutdown_notice;
                tracing::info!(
                    notice_secs = notice.as_secs(),
                    active_calls = state.calls.active(),
                    "shutting down: draining (/ready answers 503, new calls hear busy); still \
                     serving for the notice period"
                );
                notice_over = Some(tokio::time::Instant::now() + notice);
            }
            _ = tokio::time::sleep_until(notice_over.unwrap_or_else(tokio::time::Instant::now)),
                if notice_over.is_some() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, error = %e, "could not set TCP_NODELAY");
                    }
                    connections.spawn(serve_connection(stream, peer, Arc::clone(&state), conn_shutdown.clone()));
                }
                Err(e) => {
                    // Per-connection errors (e.g. the peer reset before accept) and resource
                    // exhaustion (EMFILE): log, back off briefly, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    crate::telemetry::error("accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    state.calls.clear_reservations();
    let calls_at_shutdown = state.calls.active();
    tracing::info!(
        active_calls = calls_at_shutdown,
        grace_secs = state.config.server.shutdown_grace.as_secs(),
        "shutting down: no longer accepting; waiting for calls to finish"
    );

    // HTTP connections: close idle ones, let in-flight requests finish (console event streams
    // end now).
    conn_shutdown.cancel();
    state.console.closing.cancel();
    connections.close();

    // Calls that can be handed over go now, each at its next pause; the others may finish
    // within the grace period, then they are ended.
    if state.config.shutdown.handover && state.store.is_some() && calls_at_shutdown > 0 {
        tracing::info!(
            calls = calls_at_shutdown,
            "handing calls over to other instances at their next pause"
        );
    }
    state.calls.handover_all.cancel();
    state.calls.tracker.close();
    let mut calls_ended = 0;
    if tokio::time::timeout(
        state.config.server.shutdown_grace,
        state.calls.tracker.wait(),
    )
    .await
    .is_err()
    {
        calls_ended = state.calls.active();
        tracing::info!(
            calls = calls_ended,
            "grace period over: ending the remaining calls"
        );
        state.calls.end_all.cancel();
    }
    let calls_done = tokio::time::timeout(END_CALLS_TIMEOUT, state.calls.tracker.wait())
        .await
        .is_ok();
    let conns_done = tokio::time::timeout(END_CALLS_TIMEOUT, connections.wait())
        .await
        .is_ok();
    if !calls_done {
        tracing::warn!(
            calls = state.calls.active(),
            "some calls did not end in time"
        );
    }
    // Sessions pre-warmed for calls whose stream never came here.
    state.prewarms.close_all().await;
    if let Some(store) = &state.store {
        store.close().await;
    }
    tracing::info!("shutdown complete");
    ShutdownReport {
        calls_at_shutdown,
        calls_ended,
        clean: calls_done && conns_done,
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) {
    let header_read_timeout = state.config.server.header_read_timeout;
    let service = service_fn(move |req| {
        let state = Arc::clone(&state);
        async move {
            // The console's event stream is the one response with a streaming body.
            if crate::console::sse::is_events(&req) {
                return Ok::<_, std::convert::Infallible>(crate::console::sse::handle(
                    &state, &req,
                ));
            }
            Ok(crate::routes::handle(state, req)
                .await
                .map(http_body_util::Either::Left))
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // Timeouts and resets from clients are routine; keep them out of `info`.
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
