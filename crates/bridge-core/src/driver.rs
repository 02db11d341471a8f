//! The thin async driver: runs one [`Call`] over a caller endpoint and an agent endpoint.
//!
//! [`run_call`] is the whole call as one task. It owns the two endpoints, the agent's
//! connection future, the running tool calls and call actions, and the timers, and does
//! nothing but move values: every input goes into the state machine, and after each input all
//! outputs are drained into each side's **outbox**; then each side is written as far as it
//! takes commands *now* ([`Endpoint::poll_ready`] / [`Endpoint::start_send`], then one
//! [`Endpoint::poll_flush`]: a media message and its mark leave in one write). A side that does
//! not take them (its peer stopped reading) keeps them queued and wakes the task when it can
//! take more; meanwhile both sides are read and the other side is written, so a slow Twilio
//! socket never freezes caller→agent audio or barge-in. It decides nothing about the call.
//!
//! The loop, in one sitting: drain outputs → write what each side takes now → `select!` over
//! {shutdown, agent connection, caller side (its blocked writes, then [`Endpoint::poll_recv`]),
//! agent side (same), tool results, call-control results, the engine's timer, the stall timer}
//! → feed the result to the engine → repeat. Both sides' reads are polled with the task's own
//! waker whenever the task runs (a side with nothing to read answers `Pending` cheaply: the
//! WebSocket checks its socket's readiness before it reads); the shutdown and hang-up signals
//! and the two timers, whose polls are not cheap, are polled with a waker of their own
//! (`Wakeup`), only after it fired, all of them waking the task through one `AtomicWaker`,
//! registered once per `select!` poll.
//!
//! Guarantees:
//!
//! * The agent connects **while** the call runs: caller audio is buffered by the engine and
//!   flushed in order once the agent is ready.
//! * Tool calls run concurrently on a [`JoinSet`], each bounded by
//!   [`CallConfig::tool_timeout`] (a slow tool never stalls audio); they are aborted at
//!   teardown.
//! * Call control ([`CallControl`]: a REST hang-up or transfer) runs as a task of its own too,
//!   bounded by [`CallConfig::control_timeout`]; its result goes back to the engine
//!   ([`Call::action_finished`]) while audio and barge-in keep flowing. The end of the caller's
//!   stream read meanwhile is held until the result is in (Twilio stops the stream as soon as a
//!   transfer's TwiML takes over, maybe before the REST answer): the call ends as transferred,
//!   or as hung up if the transfer failed. At teardown the actions still running are awaited
//!   (each within its bound) before the sides are closed: a hang-up is the REST request that
//!   ends the phone call.
//! * Each side has its own bounded outbox ([`OUTBOX_LIMIT`] commands). Policy for a side that
//!   does not take its commands: after [`CallConfig::send_timeout`] blocked, or when its outbox
//!   is full, the call ends ([`crate::engine::EndReason::CallerError`] /
//!   [`crate::engine::EndReason::AgentFailed`], with "send timed out" or "… not reading" as the
//!   detail); the other side is closed normally.
//! * Whatever happens, both endpoints are closed with [`Endpoint::close`] (their closing
//!   handshake, after whatever was queued for them; unless their transport already failed) and
//!   dropped when the call ends; a connection still in progress is dropped. The agent session never outlives the
//!   call.
//! * Make-before-break recycling: on [`Output::ConnectStandby`] a standby agent connection
//!   is opened through the same [`Reconnect`] connector and held beside the agent, with an
//!   outbox and a read waker of its own; its events go to [`Call::handle_standby`] (the engine
//!   only wants its `Ready` or its failure) and a failure of it to [`Call::standby_lost`],
//!   never ending the call. [`Output::SwitchToStandby`] makes it the agent (the old one,
//!   `Close` queued, is closed on a task of its own, off the call's path);
//!   [`Output::DropStandby`] gives it up. With no standby its two `select!` branches are
//!   disabled by their conditions: nothing on a healthy call's per-frame path. At teardown a
//!   standby is closed after the agent.
//! * Time comes from `tokio::time`, so tests run on paused time.
//!
//! ```no_run
//! # async fn demo(
//! #     caller: impl bridge_core::caller::CallerEndpoint,
//! #     agent: impl bridge_core::agent::AgentEndpoint + 'static,
//! # ) {
//! use std::sync::Arc;
//! use bridge_core::driver::{run_call, CallServices, NoCallControl};
//! use bridge_core::engine::{CallConfig, CallEvent};
//! use bridge_core::tools::NoTools;
//! use tokio_util::sync::CancellationToken;
//!
//! let services = CallServices {
//!     tools: Arc::new(NoTools),
//!     control: Arc::new(NoCallControl),
//!     config: Arc::new(CallConfig::default()),
//!     shutdown: CancellationToken::new(),
//!     hang_up: CancellationToken::new(),
//! };
//! let mut log = |event: &CallEvent| tracing::info!(?event, "call event");
//! let connect = async move { Ok(agent) }; // normally: dial the agent here
//! let summary = run_call(caller, connect, services, &mut log).await;
//! tracing::info!(reason = ?summary.end_reason, "call over");
//! # }
//! ```

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::task::AtomicWaker;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;

use crate::agent::{AgentCommand, AgentEndpoint, AgentEvent};
use crate::caller::{CallerCommand, CallerEndpoint, CallerEvent, CallerInfo};
use crate::endpoint::{Endpoint, EndpointError};
use crate::engine::{Call, CallConfig, CallEvent, CallSummary, ErrorSource, Output};
use crate::tools::{CallAction, ToolExecutor, ToolOutput};

/// Receives the call's [`CallEvent`]s (logs, metrics, call records). Called inline on the
/// call's task: keep it cheap and never block.
pub trait CallObserver: Send {
    /// One event.
    fn on_event(&mut self, event: &CallEvent);
}

impl<F: FnMut(&CallEvent) + Send> CallObserver for F {
    fn on_event(&mut self, event: &CallEvent) {
        self(event)
    }
}

/// Collects every event (handy in tests).
impl CallObserver for Vec<CallEvent> {
    fn on_event(&mut self, event: &CallEvent) {
        self.push(event.clone());
    }
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

impl CallObserver for NoopObserver {
    fn on_event(&mut self, _event: &CallEvent) {}
}

/// Why call control failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("call control failed: {0}")]
pub struct ControlError(pub String);

/// Executes call control requested by tools (for Twilio: REST updates of the live call).
///
/// The driver runs it as a task of its own (bounded by [`CallConfig::control_timeout`]) when
/// the engine outputs [`Output::Action`] — after the agent's goodbye has been heard; audio and
/// barge-in keep flowing meanwhile. A hang-up ends the call whatever the result (the media
/// stream is closed once the hang-up has returned); a transfer's result goes back to the engine
/// ([`Call::action_finished`]): on success the call ends as
/// [`crate::engine::EndReason::Transferred`] (so the transfer must have been started, e.g. by
/// replacing the call's TwiML, before this returns), on failure the agent is told and the call
/// goes on.
#[async_trait]
pub trait CallControl: Send + Sync {
    /// Executes `action` for the call described by `call`.
    async fn execute(&self, call: &CallerInfo, action: &CallAction) -> Result<(), ControlError>;
}

/// A [`CallControl`] that cannot do anything: a hang-up still ends the call (the media stream
/// is closed), a transfer fails and is reported.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCallControl;

#[async_trait]
impl CallControl for NoCallControl {
    async fn execute(&self, _call: &CallerInfo, action: &CallAction) -> Result<(), ControlError> {
        match action {
            CallAction::Hangup => Ok(()),
            CallAction::Transfer { .. } => {
                Err(ControlError("no call control configured".to_owned()))
            }
        }
    }
}

/// What a call needs besides its two endpoints.
#[derive(Clone)]
pub struct CallServices {
    /// Runs the agent's tool calls.
    pub tools: Arc<dyn ToolExecutor>,
    /// Executes hang-ups and transfers.
    pub control: Arc<dyn CallControl>,
    /// The call's configuration: one per configuration, shared by its calls (a server builds
    /// it once per profile; only a call that needs something of its own clones it).
    pub config: Arc<CallConfig>,
    /// Cancelled when the server shuts down: the call ends cleanly
    /// ([`crate::engine::EndReason::Shutdown`]), or is handed over at its next pause when
    /// [`CallConfig::handover`] is set ([`crate::engine::Call::shutdown`]).
    pub shutdown: CancellationToken,
    /// Cancelled when the call is over elsewhere (Twilio's final status callback): the call
    /// ends at once, never handed over ([`crate::engine::Call::hang_up`]).
    pub hang_up: CancellationToken,
}

impl std::fmt::Debug for CallServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallServices")
            .field("config", &self.config)
            .field("shutdown", &self.shutdown)
            .field("hang_up", &self.hang_up)
            .finish_non_exhaustive()
    }
}

/// Opens a fresh agent connection for a reconnect ([`crate::engine::Output::ConnectAgent`]).
///
/// Report a refusal that retrying cannot fix (401/403/404, an invalid model) as
/// [`EndpointError::Protocol`]: it is never retried ([`EndpointError::is_transient`]). Any
/// `FnMut(u32) -> impl Future` closure is one.
pub trait Reconnect<A>: Send {
    /// Starts attempt `attempt` (1-based).
    fn connect(&mut self, attempt: u32) -> ConnectFuture<'static, A>;
}

/// A boxed connection future.
pub type ConnectFuture<'a, A> = Pin<Box<dyn Future<Output = Result<A, EndpointError>> + Send + 'a>>;

impl<A, F, Fut> Reconnect<A> for F
where
    F: FnMut(u32) -> Fut + Send,
    Fut: Future<Output = Result<A, EndpointError>> + Send + 'static,
{
    fn connect(&mut self, attempt: u32) -> ConnectFuture<'static, A> {
        Box::pin(self(attempt))
    }
}

/// No reconnects: a lost agent connection ends the call.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReconnect;

impl<A: Send + 'static> Reconnect<A> for NoReconnect {
    fn connect(&mut self, _attempt: u32) -> ConnectFuture<'static, A> {
        Box::pin(async {
            Err(EndpointError::Protocol(
                "reconnecting the agent is not configured".to_owned(),
            ))
        })
    }
}

/// How many commands a side's outbox holds while that side does not take them (its socket is
/// not writable): beyond this the call ends ([`Call::caller_failed`] / [`Call::agent_failed`]
/// with "not reading"). 512 commands are about 25 s of agent audio in 100 ms pieces with their
/// marks, far more than a healthy peer ever leaves queued, and a few hundred KiB at most.
pub const OUTBOX_LIMIT: usize = 512;

/// One side's writes, as the driver sees them: commands waiting to be sent, and whether what
/// was sent still needs a flush.
///
/// Writes never block the call task: [`Outbox::poll_write`] sends and flushes as far as the
/// endpoint accepts **now** and returns `Pending` otherwise (the endpoint wakes the task when
/// it can take more). Meanwhile both sides are still read and the other side is still written,
/// so a slow peer delays only its own commands. A side that stays blocked for
/// [`CallConfig::send_timeout`], or whose outbox reaches [`OUTBOX_LIMIT`], ends the call.
struct Outbox<T> {
    queue: VecDeque<T>,
    /// Commands were sent since the last completed flush.
    unflushed: bool,
    /// A write failed, or the side was given up: never write again.
    dead: bool,
    /// `Close` has been queued.
    closed: bool,
    /// `poll_recv` returned `None` or an error: stop reading.
    eof: bool,
    /// Since when the endpoint has refused to take more (`None`: it is keeping up).
    blocked_since: Option<Instant>,
}

/// A side's command, as far as the driver needs to know it.
trait Command {
    /// The command that ends the side: performed with [`Endpoint::close`], never sent.
    fn is_close(&self) -> bool;
}

impl Command for CallerCommand {
    fn is_close(&self) -> bool {
        *self == CallerCommand::Close
    }
}

impl Command for AgentCommand {
    fn is_close(&self) -> bool {
        *self == AgentCommand::Close
    }
}

impl<T: Command> Outbox<T> {
    fn new() -> Self {
        Outbox {
            queue: VecDeque::new(),
            unflushed: false,
            dead: false,
            closed: false,
            eof: false,
            blocked_since: None,
        }
    }

    /// Queues `command`; false when the outbox is full (the caller then gives the side up).
    fn push(&mut self, command: T) -> bool {
        if self.queue.len() >= OUTBOX_LIMIT {
            return false;
        }
        self.queue.push_back(command);
        true
    }

    /// Something to write now (a queued `Close` waits for the teardown).
    fn has_work(&self) -> bool {
        !self.dead && (self.unflushed || self.queue.front().is_some_and(|c| !c.is_close()))
    }

    /// Sends every queued command, then flushes, as far as the endpoint takes them without
    /// waiting. `Ready(Ok)`: everything up to a queued `Close` is on the wire.
    fn poll_write<E: Endpoint<Command = T> + ?Sized>(
        &mut self,
        endpoint: &mut E,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), EndpointError>> {
        while self.queue.front().is_some_and(|c| !c.is_close()) {
            match endpoint.poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return self.blocked(),
            }
            if let Some(command) = self.queue.pop_front() {
                endpoint.start_send(command)?;
                self.unflushed = true;
            }
        }
        if self.unflushed {
            match endpoint.poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return self.blocked(),
            }
        }
        self.blocked_since = None;
        Poll::Ready(Ok(()))
    }

    fn blocked(&mut self) -> Poll<Result<(), EndpointError>> {
        if self.blocked_since.is_none() {
            self.blocked_since = Some(Instant::now());
        }
        Poll::Pending
    }

    /// Writes everything, then performs the queued `Close` with [`Endpoint::close`] (a close
    /// handshake is never cut short by the driver's own polling), waiting at most `limit` in
    /// all (teardown only).
    async fn finish<E: Endpoint<Command = T> + ?Sized>(
        &mut self,
        endpoint: &mut E,
        limit: Duration,
    ) {
        if self.dead {
            return;
        }
        let write = async {
            std::future::poll_fn(|cx| self.poll_write(endpoint, cx)).await?;
            if self.closed {
                self.queue.clear();
                endpoint.close().await?;
            }
            Ok::<(), EndpointError>(())
        };
        let _ = timeout(limit, write).await;
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Runs one call to its end and returns its summary.
///
/// `caller` is the telephony leg, already accepted. `connect_agent` resolves to the agent leg
/// once it is connected (it is polled concurrently with the call, so caller audio is buffered
/// meanwhile); it is dropped unfinished if the call ends first. See the [module docs](self).
pub fn run_call<'o, C, A, F>(
    caller: C,
    connect_agent: F,
    services: CallServices,
    observer: &'o mut dyn CallObserver,
) -> impl Future<Output = CallSummary> + 'o
where
    C: CallerEndpoint + 'o,
    A: AgentEndpoint + Send + 'static,
    F: Future<Output = Result<A, EndpointError>> + Send + 'o,
{
    run_call_reconnecting(caller, connect_agent, NoReconnect, services, observer)
}

/// [`run_call`] with reconnects: when the engine loses the agent connection and reconnects
/// ([`CallConfig::reconnect`]), each attempt's connection comes from `reconnect`.
///
/// A plain function rather than an `async fn`: an `async fn` keeps its arguments in its
/// future beside the locals they are moved into (the caller endpoint, the services and their
/// configuration twice over), and this future lives as long as the call. The arguments
/// travel to `drive` in one short-lived box instead, so each value is stored once.
pub fn run_call_reconnecting<'o, C, A, F, R>(
    caller: C,
    connect_agent: F,
    reconnect: R,
    services: CallServices,
    observer: &'o mut dyn CallObserver,
) -> impl Future<Output = CallSummary> + 'o
where
    C: CallerEndpoint + 'o,
    A: AgentEndpoint + 'static,
    F: Future<Output = Result<A, EndpointError>> + Send + 'o,
    R: Reconnect<A> + 'o,
{
    drive(
        Box::new(Parts {
            caller,
            connect_agent,
            reconnect,
            services,
        }),
        observer,
    )
}

/// The arguments of [`run_call_reconnecting`], on their way into [`drive`].
struct Parts<C, F, R> {
    caller: C,
    connect_agent: F,
    reconnect: R,
    services: CallServices,
}

/// The call's loop (see [`run_call_reconnecting`]).
async fn drive<C, A, F, R>(
    parts: Box<Parts<C, F, R>>,
    observer: &mut dyn CallObserver,
) -> CallSummary
where
    C: CallerEndpoint,
    A: AgentEndpoint + 'static,
    F: Future<Output = Result<A, EndpointError>> + Send,
    R: Reconnect<A>,
{
    // Moved out in a block of its own: moving out of a `Box` frees its allocation only when
    // the box goes out of scope, which for the argument would be the end of the call. The
    // services are taken apart in the same pattern: a local moved out of field by field keeps
    // its room in the call's future.
    let Parts {
        mut caller,
        connect_agent,
        mut reconnect,
        services:
            CallServices {
                tools,
                control,
                config,
                shutdown,
                hang_up,
            },
    } = {
        let parts = parts;
        *parts
    };
    let send_timeout = config.send_timeout;
    let tool_timeout = config.tool_timeout;
    let control_timeout = config.control_timeout;
    let mut call = Call::new(config, caller.format(), now());

    // Dropped as soon as it has resolved (a connection future can be large: TLS and
    // WebSocket handshakes), not at the end of the call.
    let mut connect: Option<ConnectFuture<'_, A>> = Some(Box::pin(connect_agent));
    let mut agent: Option<A> = None;
    let mut caller_out: Outbox<CallerCommand> = Outbox::new();
    let mut agent_out: Outbox<AgentCommand> = Outbox::new();
    // Make-before-break recycling: a standby agent connection beside the agent, from
    // `Output::ConnectStandby` until the switch (`Output::SwitchToStandby`) or until it is
    // given up (`Output::DropStandby`). Read only to learn that it is ready or failed (the
    // engine ignores its other events); its select branches are disabled while there is none.
    let mut standby_connect: Option<ConnectFuture<'_, A>> = None;
    let mut standby: Option<A> = None;
    let mut standby_out: Outbox<AgentCommand> = Outbox::new();
    // One registration of the task's waker per `select!` poll, shared by every source below.
    let task = Arc::new(AtomicWaker::new());
    let mut tasks: JoinSet<(String, ToolOutput)> = JoinSet::new();
    let mut task_calls: HashMap<tokio::task::Id, String> = HashMap::new();
    // Call control (REST hang-up, transfer) in flight, off the call's path.
    let mut actions: JoinSet<(CallAction, Result<(), ControlError>)> = JoinSet::new();
    // Actions output during the current drain: started once what was queued before them has
    // been written (the goodbye's last mark is on the wire before the REST request leaves).
    let mut requested: Vec<CallAction> = Vec::new();
    // The end of the caller's stream, read while call control was in flight: held until its
    // result (Twilio ends the stream as soon as a transfer replaces the call's TwiML, maybe
    // before the REST request returns; the result says whether the call was transferred).
    // Boxed, like the summary below: rare, and a local held across the loop's `await`s takes
    // room in the call's future for the whole call.
    let mut held_end: Option<Box<Option<Result<CallerEvent, EndpointError>>>> = None;
    let mut shutdown_seen = false;
    // Created once, not per loop turn: a fresh `cancelled()` future registers (and on drop
    // unregisters) a waiter under the token's lock, a fresh `sleep_until` inserts into (and
    // removes from) the timer wheel — per frame, that was measurable.
    let shutdown_signal = shutdown.cancelled();
    tokio::pin!(shutdown_signal);
    let mut hang_up_seen = false;
    let hang_up_signal = hang_up.cancelled();
    tokio::pin!(hang_up_signal);
    let timer = sleep_until(Instant::now());
    tokio::pin!(timer);
    // The deadline the timer is armed for (`None`: disarmed, or it fired).
    let mut armed: Option<Instant> = None;
    // Armed while a side refuses writes: it ends the call after `send_timeout`.
    let stall = sleep_until(Instant::now());
    tokio::pin!(stall);
    let mut stall_armed: Option<Instant> = None;
    // The shutdown signal, polled only when the token wakes it (a poll takes its lock).
    let shutdown_wakeup = Wakeup::new(&task);
    let hang_up_wakeup = Wakeup::new(&task);
    // The timers, polled only when they fired or were re-armed (a poll of a `Sleep`
    // registers a waker with the timer wheel).
    let timer_wakeup = Wakeup::new(&task);
    let stall_wakeup = Wakeup::new(&task);
    // The side that just delivered an event (it may have more already buffered, with no new
    // wake-up coming), and how many events were read in a row without a flush.
    let mut more: Option<Which> = None;
    let mut batched = 0;

    let summary = loop {
        // Drain every output into the outboxes; writing can fail, which produces more outputs.
        let mut finished = None;
        loop {
            while let Some(output) = call.poll_output() {
                match output {
                    Output::Caller(cmd) => {
                        if caller_out.dead {
                            continue;
                        }
                        if cmd == CallerCommand::Close {
                            caller_out.closed = true;
                        }
                        if !caller_out.push(cmd) {
                            caller_out.dead = true;
                            call.caller_failed(not_reading("caller"), now());
                        }
                    }
                    Output::Agent(cmd) => {
                        if agent.is_none() || agent_out.dead {
                            continue;
                        }
                        if cmd == AgentCommand::Close {
                            agent_out.closed = true;
                        }
                        if !agent_out.push(cmd) {
                            agent_out.dead = true;
                            call.agent_lost(not_reading("agent"), true, now());
                        }
                    }
                    Output::RunTool(invocation) => {
                        let tools = Arc::clone(&tools);
                        let call_id = invocation.call_id.clone();
                        let handle = tasks.spawn(async move {
                            let call_id = invocation.call_id.clone();
                            let output = match timeout(tool_timeout, tools.call(*invocation)).await
                            {
                                Ok(output) => output,
                                Err(_) => ToolOutput::error(format!(
                                    "the tool did not answer within {} ms",
                                    tool_timeout.as_millis()
                                )),
                            };
                            (call_id, output)
                        });
                        task_calls.insert(handle.id(), call_id);
                    }
                    Output::CancelTools => {
                        tasks.abort_all();
                        task_calls.clear();
                    }
                    Output::AgentLost => {
                        // The connection is gone (or given up): drop it with whatever was
                        // queued for it; the next one starts with a fresh outbox. A session
                        // retired on purpose (recycling: `Close` queued) is closed properly on
                        // a task of its own, off the call's path.
                        let old = std::mem::replace(&mut agent_out, Outbox::new());
                        if let Some(endpoint) = agent.take()
                            && old.closed
                            && !old.dead
                        {
                            tokio::spawn(retire(endpoint, old, send_timeout));
                        }
                        connect = None;
                        if matches!(more, Some(Which::Agent)) {
                            more = None;
                        }
                    }
                    Output::ConnectAgent { attempt } => {
                        connect = Some(reconnect.connect(attempt));
                    }
                    Output::ConnectStandby { attempt } => {
                        standby_connect = Some(reconnect.connect(attempt));
                    }
                    Output::Standby(cmd) => {
                        if standby.is_none() || standby_out.dead {
                            continue;
                        }
                        if cmd == AgentCommand::Close {
                            standby_out.closed = true;
                        }
                        if !standby_out.push(cmd) {
                            standby_out.dead = true;
                            call.standby_lost(not_reading("standby agent"), now());
                        }
                    }
                    Output::DropStandby => {
                        // Closed off the call's path if a `Close` was queued, else dropped.
                        standby_connect = None;
                        let old = std::mem::replace(&mut standby_out, Outbox::new());
                        if let Some(endpoint) = standby.take()
                            && old.closed
                            && !old.dead
                        {
                            tokio::spawn(retire(endpoint, old, send_timeout));
                        }
                    }
                    Output::SwitchToStandby => {
                        // The standby (ready, with what was queued for it) becomes the agent;
                        // the old agent, `Close` queued, is closed off the call's path.
                        let old = std::mem::replace(
                            &mut agent_out,
                            std::mem::replace(&mut standby_out, Outbox::new()),
                        );
                        if let Some(endpoint) = std::mem::replace(&mut agent, standby.take())
                            && old.closed
                            && !old.dead
                        {
                            tokio::spawn(retire(endpoint, old, send_timeout));
                        }
                        if matches!(more, Some(Which::Agent)) {
                            more = None;
                        }
                    }
                    Output::Action(action) => requested.push(action),
                    Output::Event(event) => observer.on_event(&event),
                    Output::Finished(summary) => finished = Some(summary),
                }
            }
            // Everything else a side already sent goes in before anything is written (one
            // write for all of it: a burst of agent deltas, caller frames that queued up under
            // load). The outputs of each event are queued as it is handled, so nothing piles
            // up; nothing waits for data that has not arrived.
            if let Some(which) = more.take()
                && finished.is_none()
                && batched < READ_BATCH
            {
                let ready = match which {
                    Which::Caller if !caller_out.eof => {
                        match std::future::poll_fn(|cx| Poll::Ready(caller.poll_recv(cx))).await {
                            Poll::Ready(event) => {
                                caller_event(
                                    &mut call,
                                    &mut caller_out,
                                    &mut held_end,
                                    !actions.is_empty(),
                                    event,
                                );
                                true
                            }
                            Poll::Pending => false,
                        }
                    }
                    Which::Agent if !agent_out.eof => match agent.as_mut() {
                        Some(endpoint) => {
                            match std::future::poll_fn(|cx| Poll::Ready(endpoint.poll_recv(cx)))
                                .await
                            {
                                Poll::Ready(event) => {
                                    on_agent_event(&mut call, &mut agent_out, event);
                                    true
                                }
                                Poll::Pending => false,
                            }
                        }
                        None => false,
                    },
                    Which::Caller | Which::Agent => false,
                };
                if ready {
                    batched += 1;
                    more = Some(which);
                    continue;
                }
            }
            batched = 0;
            let (caller_err, agent_err) =
                write_now(&mut caller, agent.as_mut(), &mut caller_out, &mut agent_out).await;
            // The standby (only during a recycle): its failure touches nothing of the call.
            let mut standby_failed = false;
            if standby_out.has_work()
                && let Some(endpoint) = standby.as_mut()
                && let Err(e) = write_standby(endpoint, &mut standby_out).await
            {
                standby_out.dead = true;
                standby_failed = true;
                call.standby_lost(e.to_string(), now());
            }
            if caller_err.is_none() && agent_err.is_none() {
                if standby_failed {
                    continue;
                }
                break;
            }
            // A failed write ends the call: drain what the engine does about it.
            if let Some(e) = caller_err {
                call.caller_failed(e.to_string(), now());
            }
            if let Some(e) = agent_err {
                call.agent_lost(e.to_string(), e.is_transient(), now());
            }
        }
        // Call control starts now that what was queued before it is written.
        for action in requested.drain(..) {
            let control = Arc::clone(&control);
            let info = call.caller_info().cloned().unwrap_or_default();
            actions.spawn(async move {
                let result = match timeout(control_timeout, control.execute(&info, &action)).await {
                    Ok(result) => result,
                    Err(_) => Err(ControlError("timed out".to_owned())),
                };
                (action, result)
            });
        }
        if let Some(summary) = finished {
            break summary;
        }

        // Deadlines mostly move later (the caller-inactivity deadline moves with every
        // frame): the timer is only re-armed for an earlier deadline, or after it fired.
        // Firing early is harmless: nothing is due yet, and it is re-armed.
        let deadline = call.poll_timeout().map(Instant::from_std);
        if let Some(d) = deadline
            && armed.is_none_or(|a| d < a)
        {
            timer.as_mut().reset(d);
            timer_wakeup.set();
            armed = Some(d);
        }
        let blocked = [caller_out.blocked_since, agent_out.blocked_since]
            .into_iter()
            .flatten()
            .min()
            .map(|since| since + send_timeout);
        if blocked != stall_armed {
            if let Some(at) = blocked {
                stall.as_mut().reset(at);
                stall_wakeup.set();
            }
            stall_armed = blocked;
        }
        let agent_readable = agent.is_some() && !agent_out.eof;
        let caller_readable = !caller_out.eof;
        let standby_readable = standby.is_some() && !standby_out.eof;
        tokio::select! {
            biased;
            // Always first: registers the task's waker once for every source polled below
            // through its `Wakeup` (never ready itself).
            () = std::future::poll_fn(|cx| -> Poll<()> {
                task.register(cx.waker());
                Poll::Pending
            }) => {}
            () = std::future::poll_fn(|_| {
                shutdown_wakeup.poll(|cx| shutdown_signal.as_mut().poll(cx))
            }), if !shutdown_seen => {
                shutdown_seen = true;
                call.shutdown(now());
            }
            () = std::future::poll_fn(|_| {
                hang_up_wakeup.poll(|cx| hang_up_signal.as_mut().poll(cx))
            }), if !hang_up_seen => {
                hang_up_seen = true;
                call.hang_up(now());
            }
            connected = std::future::poll_fn(|cx| match connect.as_mut() {
                Some(connecting) => connecting.as_mut().poll(cx),
                None => Poll::Pending,
            }), if connect.is_some() => {
                connect = None;
                match connected {
                    Ok(endpoint) => {
                        let capabilities = endpoint.capabilities();
                        agent = Some(endpoint);
                        call.agent_connected(capabilities, now());
                    }
                    Err(e) if e.is_transient() => call.agent_connect_failed(e.to_string(), now()),
                    Err(e) => call.agent_connect_refused(e.to_string(), now()),
                }
            }
            progress = std::future::poll_fn(|cx| poll_side(
                &mut caller, &mut caller_out, caller_readable, cx,
            )), if caller_readable || caller_out.has_work() => match progress {
                Progress::Event(event) => {
                    caller_event(
                        &mut call, &mut caller_out, &mut held_end, !actions.is_empty(), event,
                    );
                    more = Some(Which::Caller);
                }
                Progress::Written => {}
                Progress::WriteFailed(e) => {
                    caller_out.dead = true;
                    call.caller_failed(e.to_string(), now());
                }
            },
            progress = std::future::poll_fn(|cx| match agent.as_mut() {
                Some(endpoint) => poll_side(
                    endpoint, &mut agent_out, agent_readable, cx,
                ),
                None => Poll::Pending,
            }), if agent_readable || (agent.is_some() && agent_out.has_work()) => match progress {
                Progress::Event(event) => {
                    on_agent_event(&mut call, &mut agent_out, event);
                    more = Some(Which::Agent);
                }
                Progress::Written => {}
                Progress::WriteFailed(e) => {
                    agent_out.dead = true;
                    call.agent_lost(e.to_string(), e.is_transient(), now());
                }
            },
            connected = std::future::poll_fn(|cx| match standby_connect.as_mut() {
                Some(connecting) => connecting.as_mut().poll(cx),
                None => Poll::Pending,
            }), if standby_connect.is_some() => {
                standby_connect = None;
                match connected {
                    Ok(endpoint) => {
                        let capabilities = endpoint.capabilities();
                        standby = Some(endpoint);
                        call.standby_connected(capabilities, now());
                    }
                    Err(e) => call.standby_connect_failed(e.to_string(), e.is_transient(), now()),
                }
            }
            progress = std::future::poll_fn(|cx| match standby.as_mut() {
                Some(endpoint) => poll_side(
                    endpoint, &mut standby_out, standby_readable, cx,
                ),
                None => Poll::Pending,
            }), if standby_readable || (standby.is_some() && standby_out.has_work()) => {
                match progress {
                    Progress::Event(Some(Ok(event))) => call.handle_standby(event, now()),
                    Progress::Event(Some(Err(e))) => {
                        standby_out.eof = true;
                        call.standby_lost(e.to_string(), now());
                    }
                    Progress::Event(None) => {
                        standby_out.eof = true;
                        call.standby_lost("standby agent connection closed", now());
                    }
                    Progress::Written => {}
                    Progress::WriteFailed(e) => {
                        standby_out.dead = true;
                        call.standby_lost(e.to_string(), now());
                    }
                }
            }
            Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => match joined {
                Ok((id, (call_id, output))) => {
                    task_calls.remove(&id);
                    call.tool_finished(&call_id, output, now());
                }
                Err(e) => {
                    if let Some(call_id) = task_calls.remove(&e.id())
                        && e.is_panic()
                    {
                        call.tool_finished(&call_id, ToolOutput::error("the tool failed"), now());
                    }
                }
            },
            Some(joined) = actions.join_next(), if !actions.is_empty() => {
                action_done(&mut call, observer, joined);
                if actions.is_empty()
                    && let Some(event) = held_end.take()
                {
                    on_caller_event(&mut call, &mut caller_out, *event);
                }
            }
            () = std::future::poll_fn(|_| timer_wakeup.poll(|cx| timer.as_mut().poll(cx))),
                if deadline.is_some() && armed.is_some() => {
                armed = None;
                let now = now();
                if call.poll_timeout().is_some_and(|d| d <= now) {
                    call.handle_timeout(now);
                }
            }
            () = std::future::poll_fn(|_| stall_wakeup.poll(|cx| stall.as_mut().poll(cx))),
                if stall_armed.is_some() => {
                stall_armed = None;
                let late = Instant::now() - send_timeout;
                if caller_out.blocked_since.is_some_and(|t| t <= late) {
                    caller_out.dead = true;
                    call.caller_failed(EndpointError::SendTimeout.to_string(), now());
                }
                if agent_out.blocked_since.is_some_and(|t| t <= late) {
                    agent_out.dead = true;
                    call.agent_lost(EndpointError::SendTimeout.to_string(), true, now());
                }
            }
        }
    };

    // Teardown: tools, then the call control still running (a hang-up is what ends the phone
    // call; each is bounded by `control_timeout`), then both sides (whatever the engine
    // already queued, then the closing handshake), the billed agent session first, each
    // bounded by `send_timeout`, then drop.
    tasks.abort_all();
    while let Some(joined) = actions.join_next().await {
        action_done(&mut call, observer, joined);
    }
    if let Some(endpoint) = agent.as_mut()
        && !agent_out.dead
    {
        if !agent_out.closed {
            agent_out.queue.push_back(AgentCommand::Close);
            agent_out.closed = true;
        }
        agent_out.finish(endpoint, send_timeout).await;
    }
    if let Some(endpoint) = standby.as_mut()
        && !standby_out.dead
    {
        if !standby_out.closed {
            standby_out.queue.push_back(AgentCommand::Close);
            standby_out.closed = true;
        }
        standby_out.finish(endpoint, send_timeout).await;
    }
    drop(standby);
    drop(standby_connect);
    if !caller_out.dead {
        if !caller_out.closed {
            caller_out.queue.push_back(CallerCommand::Close);
            caller_out.closed = true;
        }
        caller_out.finish(&mut caller, send_timeout).await;
    }
    drop(agent);
    drop(connect);
    *summary
}

/// A call action's result, back to the engine: a transfer's outcome decides whether the call
/// goes on; once the call has ended (a hang-up ends it at once) a failure is only reported.
fn action_done(
    call: &mut Call,
    observer: &mut dyn CallObserver,
    joined: Result<(CallAction, Result<(), ControlError>), tokio::task::JoinError>,
) {
    let (action, result) = match joined {
        Ok(done) => done,
        // A panicking `CallControl`: its action is lost; say so (the call goes on or ends
        // as it would after a failure).
        Err(e) => {
            observer.on_event(&CallEvent::Error {
                source: ErrorSource::Control,
                code: None,
                message: format!("call control task failed: {e}"),
                fatal: false,
            });
            call.action_finished(Err("call control failed".to_owned()), now());
            return;
        }
    };
    if call.is_finished() {
        if let Err(e) = result {
            observer.on_event(&CallEvent::Error {
                source: ErrorSource::Control,
                code: None,
                message: format!("{action:?}: {e}"),
                fatal: false,
            });
        }
    } else {
        // A transfer: the engine ends the call or tells the agent.
        call.action_finished(result.map_err(|e| e.0), now());
    }
}

/// Writes what was queued for a retired agent session, then closes it (the close handshake),
/// bounded by `limit`, then drops it.
async fn retire<A: AgentEndpoint>(
    mut endpoint: A,
    mut outbox: Outbox<AgentCommand>,
    limit: Duration,
) {
    outbox.finish(&mut endpoint, limit).await;
}

/// Why a side's outbox overflowed, for the end reason's detail.
fn not_reading(side: &str) -> String {
    format!(
        "the {side} side is not reading: {OUTBOX_LIMIT} commands queued for it; the call was \
         ended"
    )
}

/// What one side's poll produced.
enum Progress<E> {
    /// An event (or the end of its stream) was read.
    Event(Option<Result<E, EndpointError>>),
    /// A blocked side took everything queued for it.
    Written,
    /// Writing failed.
    WriteFailed(EndpointError),
}

/// Polls one side: its blocked writes first, then its reads.
fn poll_side<E: Endpoint>(
    endpoint: &mut E,
    outbox: &mut Outbox<E::Command>,
    readable: bool,
    cx: &mut Context<'_>,
) -> Poll<Progress<E::Event>>
where
    E::Command: Command,
{
    if outbox.has_work() {
        match outbox.poll_write(endpoint, cx) {
            Poll::Ready(Ok(())) => return Poll::Ready(Progress::Written),
            Poll::Ready(Err(e)) => return Poll::Ready(Progress::WriteFailed(e)),
            Poll::Pending => {}
        }
    }
    if readable && let Poll::Ready(event) = endpoint.poll_recv(cx) {
        return Poll::Ready(Progress::Event(event));
    }
    Poll::Pending
}

/// Writes what each side takes without waiting; returns the errors (the side is then dead).
async fn write_now<C: CallerEndpoint, A: AgentEndpoint>(
    caller: &mut C,
    mut agent: Option<&mut A>,
    caller_out: &mut Outbox<CallerCommand>,
    agent_out: &mut Outbox<AgentCommand>,
) -> (Option<EndpointError>, Option<EndpointError>) {
    std::future::poll_fn(|cx| {
        let mut errors = (None, None);
        if caller_out.has_work()
            && let Poll::Ready(Err(e)) = caller_out.poll_write(caller, cx)
        {
            caller_out.dead = true;
            errors.0 = Some(e);
        }
        if let Some(agent) = agent.as_deref_mut()
            && agent_out.has_work()
            && let Poll::Ready(Err(e)) = agent_out.poll_write(agent, cx)
        {
            agent_out.dead = true;
            errors.1 = Some(e);
        }
        Poll::Ready(errors)
    })
    .await
}

/// Writes what the standby connection takes without waiting (a failure: the standby is
/// dead).
async fn write_standby<A: AgentEndpoint>(
    endpoint: &mut A,
    out: &mut Outbox<AgentCommand>,
) -> Result<(), EndpointError> {
    std::future::poll_fn(|cx| match out.poll_write(endpoint, cx) {
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        _ => Poll::Ready(Ok(())),
    })
    .await
}

/// Most events read in a row from one side before the outputs are flushed.
const READ_BATCH: usize = 16;

/// One of the two sides.
#[derive(Debug, Clone, Copy)]
enum Which {
    Caller,
    Agent,
}

/// A caller event, or the end of the caller's stream held while call control is in flight
/// (`in_flight`): no more reads from the caller, the event is fed once the result is in.
fn caller_event(
    call: &mut Call,
    side: &mut Outbox<CallerCommand>,
    held_end: &mut Option<Box<Option<Result<CallerEvent, EndpointError>>>>,
    in_flight: bool,
    event: Option<Result<CallerEvent, EndpointError>>,
) {
    if in_flight && !matches!(event, Some(Ok(ref e)) if *e != CallerEvent::Hangup) {
        side.eof = true;
        *held_end = Some(Box::new(event));
    } else {
        on_caller_event(call, side, event);
    }
}

fn on_caller_event(
    call: &mut Call,
    side: &mut Outbox<CallerCommand>,
    event: Option<Result<CallerEvent, EndpointError>>,
) {
    match event {
        Some(Ok(event)) => call.handle_caller(event, now()),
        Some(Err(e)) => {
            side.eof = true;
            call.caller_failed(e.to_string(), now());
        }
        None => {
            side.eof = true;
            call.handle_caller(CallerEvent::Hangup, now());
        }
    }
}

fn on_agent_event(
    call: &mut Call,
    side: &mut Outbox<AgentCommand>,
    event: Option<Result<AgentEvent, EndpointError>>,
) {
    match event {
        Some(Ok(event)) => call.handle_agent(event, now()),
        Some(Err(e)) => {
            side.eof = true;
            call.agent_lost(e.to_string(), e.is_transient(), now());
        }
        None => {
            side.eof = true;
            call.handle_agent(
                AgentEvent::Closed {
                    reason: "agent connection closed".to_owned(),
                },
                now(),
            );
        }
    }
}

/// Wake-up tracking for one source of events that is not cheap to poll (the shutdown and
/// hang-up signals, whose polls take a lock; the timers, whose polls register with the timer
/// wheel).
///
/// The call task wakes up for either side's traffic many times a second, and `select!` polls
/// every branch each time. So each such source is polled with a waker of its own — a flag plus
/// the task's waker, the pattern of `FuturesUnordered` — and only after that waker fired.
/// (The sides' reads are polled directly: a wake-up through a flag costs more than a WebSocket
/// with nothing to read takes to say so.)
///
/// The task's waker lives in one [`AtomicWaker`] shared by every source of the call, and is
/// registered once per `select!` poll by its first branch, not once per source.
struct Wakeup {
    flag: Arc<WakeFlag>,
    /// Wakes `flag`; what is polled through this source registers it.
    waker: Waker,
}

struct WakeFlag {
    /// The source's waker fired (or it must be polled anyway): poll it.
    woken: AtomicBool,
    /// The call task, woken with the source (shared by all the call's sources).
    task: Arc<AtomicWaker>,
}

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Wakeup {
    fn new(task: &Arc<AtomicWaker>) -> Wakeup {
        let flag = Arc::new(WakeFlag {
            woken: AtomicBool::new(true),
            task: Arc::clone(task),
        });
        Wakeup {
            waker: Waker::from(Arc::clone(&flag)),
            flag,
        }
    }

    /// Poll the source at the next chance (a new endpoint behind it).
    fn set(&self) {
        self.flag.woken.store(true, Ordering::Release);
    }

    /// Polls the source with its own waker if that fired since the last poll (`Pending`
    /// otherwise); `Ready` leaves the flag set, since more may be buffered. The task's waker
    /// must have been registered in the shared [`AtomicWaker`] (the `select!`'s first branch
    /// does it).
    fn poll<T>(&self, poll: impl FnOnce(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
        if !(self.flag.woken.load(Ordering::Acquire)
            && self.flag.woken.swap(false, Ordering::AcqRel))
        {
            return Poll::Pending;
        }
        let ready = poll(&mut Context::from_waker(&self.waker));
        if ready.is_ready() {
            self.set();
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;
    use crate::agent::AgentCapabilities;
    use crate::format::{AudioFormat, Base64Audio};
    use crate::tools::NoTools;

    const CAPS: AgentCapabilities = AgentCapabilities {
        input_format: AudioFormat::Mulaw8k,
        output_format: AudioFormat::Mulaw8k,
        truncation: true,
        interrupts_itself: true,
        reports_speech: true,
        continuous_input: false,
        restore_at_start: false,
        final_close: false,
    };

    /// Events in through a channel; each flush is one batch out.
    struct Side<E, C> {
        events: mpsc::UnboundedReceiver<E>,
        writes: mpsc::UnboundedSender<Vec<C>>,
        queued: Vec<C>,
    }

    struct Peer<E, C> {
        events: mpsc::UnboundedSender<E>,
        writes: mpsc::UnboundedReceiver<Vec<C>>,
    }

    fn pair<E, C>() -> (Side<E, C>, Peer<E, C>) {
        let (etx, erx) = mpsc::unbounded_channel();
        let (wtx, wrx) = mpsc::unbounded_channel();
        (
            Side {
                events: erx,
                writes: wtx,
                queued: Vec::new(),
            },
            Peer {
                events: etx,
                writes: wrx,
            },
        )
    }

    impl<E: Send, C: Send> Side<E, C> {
        fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<E, EndpointError>>> {
            self.events.poll_recv(cx).map(|e| e.map(Ok))
        }

        fn flush_now(&mut self) -> Poll<Result<(), EndpointError>> {
            let batch = std::mem::take(&mut self.queued);
            Poll::Ready(
                self.writes
                    .send(batch)
                    .map_err(|_| EndpointError::Closed("peer gone".into())),
            )
        }
    }

    #[async_trait]
    impl<E: Send, C: Send> Endpoint for Side<E, C> {
        type Event = E;
        type Command = C;
        fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<E, EndpointError>>> {
            self.poll_next(cx)
        }
        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
            Poll::Ready(Ok(()))
        }
        fn start_send(&mut self, command: C) -> Result<(), EndpointError> {
            self.queued.push(command);
            Ok(())
        }
        fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
            self.flush_now()
        }
        async fn close(&mut self) -> Result<(), EndpointError> {
            Ok(())
        }
    }

    impl CallerEndpoint for Side<CallerEvent, CallerCommand> {
        fn format(&self) -> AudioFormat {
            AudioFormat::Mulaw8k
        }
    }

    impl AgentEndpoint for Side<AgentEvent, AgentCommand> {
        fn capabilities(&self) -> AgentCapabilities {
            CAPS
        }
    }

    fn services() -> CallServices {
        CallServices {
            tools: Arc::new(NoTools),
            control: Arc::new(NoCallControl),
            config: Arc::new(CallConfig {
                greeting: None,
                idle: None,
                caller_inactivity_timeout: None,
                ..CallConfig::default()
            }),
            shutdown: CancellationToken::new(),
            hang_up: CancellationToken::new(),
        }
    }

    fn frame() -> Base64Audio {
        Base64Audio::encode(&[0xFF; 160])
    }

    fn delta(n: u8) -> AgentEvent {
        AgentEvent::Audio {
            audio: Base64Audio::encode(&[n; 160]),
            response_id: Some("r1".into()),
            item_id: Some("i1".into()),
        }
    }

    type Callers = Peer<CallerEvent, CallerCommand>;
    type Agents = Peer<AgentEvent, AgentCommand>;

    /// A ready call with the driver running; returns both peers.
    async fn running() -> (Callers, Agents, tokio::task::JoinHandle<CallSummary>) {
        let (caller, mut cp) = pair::<CallerEvent, CallerCommand>();
        let (agent, mut ap) = pair::<AgentEvent, AgentCommand>();
        let task = tokio::spawn(async move {
            run_call(
                caller,
                async move { Ok(agent) },
                services(),
                &mut NoopObserver,
            )
            .await
        });
        cp.events
            .send(CallerEvent::Started(CallerInfo {
                call_id: "CA1".into(),
                stream_id: "MZ1".into(),
                ..CallerInfo::default()
            }))
            .ok();
        ap.events.send(AgentEvent::Ready).ok();
        ap.events
            .send(AgentEvent::ResponseStarted {
                response_id: "r1".into(),
            })
            .ok();
        // Settle: drain whatever the start produced.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        while cp.writes.try_recv().is_ok() {}
        while ap.writes.try_recv().is_ok() {}
        (cp, ap, task)
    }

    #[tokio::test(start_paused = true)]
    async fn events_that_arrive_together_leave_in_one_write() {
        let (mut cp, mut ap, task) = running().await;
        for n in 1..=3 {
            ap.events.send(delta(n)).ok();
        }
        let batch = cp.writes.recv().await.expect("a write to the caller");
        let audio = batch
            .iter()
            .filter(|c| matches!(c, CallerCommand::Audio(_)))
            .count();
        assert_eq!(audio, 3, "{batch:?}");
        assert_eq!(batch.len(), 6, "three pieces, each with its mark");

        for _ in 0..3 {
            cp.events.send(CallerEvent::Audio(frame())).ok();
        }
        let batch = ap.writes.recv().await.expect("a write to the agent");
        assert_eq!(batch.len(), 3, "{batch:?}");

        cp.events.send(CallerEvent::Hangup).ok();
        let summary = task.await.expect("driver");
        assert_eq!(
            summary.end_reason,
            Some(crate::engine::EndReason::CallerHungUp)
        );
    }
}
