//! One call, from the upgraded socket to the summary line.
//!
//! 1. Read Twilio's `start` (bounded by `agent.stream_start_timeout`), holding a permit of the
//!    pending-streams pool, never a call slot.
//! 2. Check that the stream token (verified at the upgrade) names this call, and the account;
//!    claim the call's slot (reserved by `/voice`, or a free one); refuse (close 1008)
//!    **before** any agent session is opened.
//! 3. Run bridge-core's driver with the Twilio caller endpoint and the agent's connection
//!    future (the prompt file is read and rendered at this point, for this call), so caller
//!    audio is buffered while the agent connects.
//! 4. Observe the call's events for metrics and logs; write one summary line at the end.
//!
//! Everything runs inside a `call` span carrying `call_sid` and `stream_sid`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge_core::agent::{AgentEndpoint, ContextItem};
use bridge_core::audio::tone::{self, Tone};
use bridge_core::caller::{CallerEvent, CallerInfo, EndpointError};
use bridge_core::driver::{CallObserver, CallServices, Reconnect, run_call_reconnecting};
use bridge_core::engine::{
    CallConfig, CallEvent, CallSummary, ContextLimits, ErrorSource, IdleConfig, ReconnectConfig,
};
use bridge_core::format::{AudioFormat, Base64Audio};
use bridge_core::tools::ToolExecutor;
use futures_util::future::Either;
use tracing::Instrument as _;

use crate::adapters::echo::EchoAgent;
use crate::adapters::live::LiveAgent;
use crate::adapters::realtime::{McpStats, RealtimeAgent};
use crate::adapters::twilio::TwilioCaller;
use crate::adapters::{Direction, RelayClock};
use crate::config::{AgentConfig, Backend, Config};
use crate::outbound::settings::AmdAction;
use crate::outbound::voicemail::{AgentVoicemail, Controlled, VoicemailRoute};
use crate::profiles::Profile;
use crate::record::{Percentiles, RecordContext, Recorder, now_ms};
use crate::server::{AppState, CallSlot};
use crate::status::OpenCallGuard;
use crate::store::Write;
use crate::tokens::StreamClaims;
use crate::tools::control::TwilioCallControl;
use crate::tools::{CallContext, CallTools};
use openai_realtime::client::{ReadinessIo, SocketWebSocket};
use tokio::sync::OwnedSemaphorePermit;

/// How long a call's task waits, after the call, for its recording to be finished.
const RECORDING_FINISH_TIMEOUT: Duration = Duration::from_secs(5);

/// Used when the prompt file cannot be read at call time (it was checked at startup).
const FALLBACK_PROMPT: &str = "You are a helpful, concise voice assistant on a phone call. \
    Keep answers short and speak naturally.";

/// Runs one call over an accepted Media Streams WebSocket.
///
/// The call's future lives as long as the call, so its size is memory per call: this is a
/// plain function (an `async fn` would keep its arguments beside the locals they move into),
/// the arguments reach [`run_in_span`] in one short-lived box, and the phases before and after
/// the driver are functions of their own (see [`run_in_span`]).
pub(crate) fn run<S>(
    state: Arc<AppState>,
    ws: SocketWebSocket<S>,
    claims: Option<StreamClaims>,
    pending: OwnedSemaphorePermit,
) -> impl Future<Output = ()> + Send
where
    S: ReadinessIo + 'static,
{
    let span = tracing::info_span!(
        "call",
        call_sid = tracing::field::Empty,
        stream_sid = tracing::field::Empty
    );
    let start = Box::new(CallStart {
        state,
        ws,
        claims,
        pending,
        span: span.clone(),
    });
    run_in_span(start).instrument(span)
}

/// The arguments of [`run`], on their way into [`run_in_span`].
struct CallStart<S> {
    state: Arc<AppState>,
    ws: SocketWebSocket<S>,
    claims: Option<StreamClaims>,
    pending: OwnedSemaphorePermit,
    span: tracing::Span,
}

/// Runs the call: its start ([`accept`]), its set-up ([`set_up`]), bridge-core's driver, and
/// its end ([`finish`]).
///
/// The phases around the driver are functions of their own: a local held across more than
/// one `await` keeps a slot of this future in every state, so their locals (the endpoint
/// waiting for `start`, the caller's details, the summary) would take room beside the
/// driver's state for the whole call; as awaitees they share the driver's space instead.
async fn run_in_span<S>(start: Box<CallStart<S>>)
where
    S: ReadinessIo + 'static,
{
    let Some(Accepted {
        state,
        slot: _slot,
        stream,
    }) = accept(start).await
    else {
        return;
    };
    let _active = ActiveCall::new();
    let Ready {
        caller,
        voicemail_rx,
        connect,
        reconnect,
        services,
        open,
        mut observer,
        after,
    } = set_up(&state, stream).await;
    let summary = drive(
        caller,
        voicemail_rx,
        connect,
        reconnect,
        services,
        &mut observer,
    )
    .await;
    finish(&state, &open, after, summary, observer.record.take()).await;
}

/// Bridge-core's driver for the call: its caller side also takes the messages of `/twilio/amd`
/// when the call has `voicemail_rx` (an `agent_voicemail` call).
fn drive<'o, S, F, R>(
    caller: TwilioCaller<S>,
    voicemail_rx: Option<tokio::sync::mpsc::Receiver<CallerEvent>>,
    connect: F,
    reconnect: R,
    services: CallServices,
    observer: &'o mut Observer,
) -> impl Future<Output = CallSummary> + 'o
where
    S: ReadinessIo + 'static,
    F: Future<Output = Result<Box<dyn AgentEndpoint>, EndpointError>> + Send + 'o,
    R: Reconnect<Box<dyn AgentEndpoint>> + 'o,
{
    match voicemail_rx {
        Some(rx) => Either::Left(run_call_reconnecting(
            Controlled::new(caller, rx),
            connect,
            reconnect,
            services,
            observer,
        )),
        None => Either::Right(run_call_reconnecting(
            caller, connect, reconnect, services, observer,
        )),
    }
}

/// A stream whose start was read and accepted: its call may run.
struct Accepted<S> {
    state: Arc<AppState>,
    /// The call's slot, held until the call's task ends.
    slot: CallSlot,
    stream: Stream<S>,
}

/// The caller side of an accepted stream.
struct Stream<S> {
    caller: TwilioCaller<S>,
    info: CallerInfo,
    clock: Arc<RelayClock>,
}

/// Reads the stream's `start` (holding the pending-streams permit until then) and checks
/// that its call may run: the stream token names it, the account is ours, and a slot is
/// free or reserved for it. `None`: the stream was refused (closed 1008, logged, counted).
async fn accept<S>(start: Box<CallStart<S>>) -> Option<Accepted<S>>
where
    S: ReadinessIo + 'static,
{
    let CallStart {
        state,
        ws,
        claims,
        pending,
        span,
    } = *start;
    let config = &state.config;
    let clock = Arc::new(if state.store.is_some() {
        RelayClock::with_call_relay()
    } else {
        RelayClock::new()
    });
    let mut caller = TwilioCaller::new(ws, Arc::clone(&clock));

    let info = match caller
        .wait_for_start(config.agent.stream_start_timeout)
        .await
    {
        Ok(info) => info,
        Err(e) => {
            tracing::warn!(error = %e, "media stream did not start");
            crate::telemetry::rejected("no_start");
            caller.refuse("no start message").await;
            return None;
        }
    };
    drop(pending);
    span.record("call_sid", info.call_id.as_str());
    span.record("stream_sid", info.stream_id.as_str());

    if let Some(claims) = &claims
        && let Err(e) = claims.check_start(&info.call_id, info.account_id.as_deref())
    {
        tracing::warn!(error = %e, "refusing media stream: the stream token names another call");
        crate::telemetry::rejected("token");
        caller.refuse("invalid stream token").await;
        return None;
    }
    if let Some(expected) = &config.twilio.account_sid
        && info.account_id.as_deref() != Some(expected.as_str())
    {
        tracing::warn!("refusing media stream: the call belongs to another Twilio account");
        crate::telemetry::rejected("account");
        caller.refuse("wrong account").await;
        return None;
    }
    // The slot `/voice` reserved for this call, or a free one.
    let Some(slot) = state.calls.claim(&info.call_id, Instant::now()) else {
        tracing::warn!(
            max = config.server.max_concurrent_calls,
            "refusing media stream: at capacity"
        );
        crate::telemetry::rejected("busy");
        caller.refuse("at capacity").await;
        return None;
    };
    Some(Accepted {
        state,
        slot,
        stream: Stream {
            caller,
            info,
            clock,
        },
    })
}

/// A call set up to run: what the driver takes, and what the call's task keeps until the
/// call ended.
struct Ready<'a, S, F, R> {
    caller: TwilioCaller<S>,
    /// The messages `/twilio/amd` sends an `agent_voicemail` call's caller side.
    voicemail_rx: Option<tokio::sync::mpsc::Receiver<CallerEvent>>,
    /// The first connection of the agent.
    connect: F,
    reconnect: R,
    services: CallServices,
    /// The call's entry among the open calls (ended by Twilio's final status callback).
    open: OpenCallGuard<'a>,
    observer: Observer,
    after: CallEnd,
}

/// Sets up an accepted stream's call: its profile, the conversation of a handed-over call it
/// resumes, its tools, engine configuration, agent connection, observer and recording.
async fn set_up<'a, S>(
    state: &'a Arc<AppState>,
    stream: Stream<S>,
) -> Ready<
    'a,
    S,
    impl Future<Output = Result<Box<dyn AgentEndpoint>, EndpointError>> + Send + 'static,
    impl Reconnect<Box<dyn AgentEndpoint>> + 'static,
>
where
    S: ReadinessIo + 'static,
{
    let Stream {
        mut caller,
        info,
        clock,
    } = stream;
    let config = &state.config;
    // The per-number profile `/voice` chose, named in the stream's parameters.
    let profile = Arc::clone(state.profiles.named(info.parameter("profile")));
    let backend = profile.agent.backend;
    tracing::info!(
        backend = backend.as_str(),
        profile = %profile.name,
        "call started"
    );
    let greeting = backend == Backend::Realtime && profile.agent.greeting.is_some();
    let context = Arc::new(CallContext::new(
        &info,
        &profile.name,
        greeting,
        backend == Backend::Realtime,
    ));
    let greeting_watch = greeting.then(|| Arc::clone(&context.greeting_over));
    let tools: Arc<dyn ToolExecutor> = match &state.tools {
        Some(tools) => Arc::clone(tools),
        None => Arc::new(CallTools {
            set: Arc::clone(&profile.tools),
            services: Arc::clone(&state.tool_services),
            call: Arc::clone(&context),
        }),
    };
    let mcp_stats = Arc::clone(&context.mcp);
    // A stream resuming a call another instance handed over: seeded with its conversation.
    let resumed = info
        .parameter(crate::handover::HANDOVER_PARAMETER)
        .and_then(|n| n.parse::<u32>().ok());
    let (handovers, restore) = resume(state, &info.call_id, resumed).await;
    // Realtime and GPT-Live calls can be handed over (a GPT-Live session gets the
    // conversation as its `session.start` `input`); the echo agent has none.
    let handover = (config.shutdown.handover
        && config.fallback.enabled
        && state.store.is_some()
        && backend != Backend::Echo)
        .then_some(config.shutdown.handover_wait);
    // Ended at once by Twilio's final status callback for this call, the console, or the end
    // of the shutdown's grace period; ended by the server's shutdown (handed over at the next
    // pause when the server stops listening, when the call can be).
    let hang_up = state.calls.end_all.child_token();
    let end = if handover.is_some() {
        state.calls.handover_all.child_token()
    } else {
        hang_up.clone()
    };
    // An outbound call whose profile has the agent leave voicemails: `/twilio/amd` reaches it
    // through a bounded channel into its caller side (no cost for any other call).
    let voicemail = Arc::clone(&context.voicemail);
    let (voicemail_route, voicemail_rx) = if info.parameter("direction") == Some("outbound")
        && profile.amd.on_machine == AmdAction::AgentVoicemail
        && backend != Backend::Echo
    {
        let variables = crate::prompt::call_variables(&info)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let (route, rx) =
            VoicemailRoute::new(variables, backend == Backend::Live, Arc::clone(&voicemail));
        (Some(route), Some(rx))
    } else {
        (None, None)
    };
    let agent_voicemail = voicemail_route.is_some();
    let open = state
        .open_calls
        .open(&info.call_id, hang_up.clone(), voicemail_route);
    let live = crate::console::enabled(state).then(|| {
        state.console.live.open(crate::console::live::NewCall {
            context: Arc::clone(&context),
            profile: Arc::clone(&profile),
            backend: backend.as_str(),
            end: hang_up.clone(),
            mask_numbers: config.privacy.mask_numbers,
        })
    });
    // The engine's configuration: one per profile, shared by its calls (`handover` and the
    // tools' timeouts are fixed for the process); a resumed call gets a copy of its own.
    let shared = profile.call_config(|| {
        let mut shared = call_config(config, &profile.agent);
        shared.handover = handover;
        if let Some(longest) = profile.tools.longest_timeout() {
            // The webhook's own timeout answers first, with a clearer error.
            shared.tool_timeout = shared.tool_timeout.max(longest + Duration::from_secs(2));
        }
        shared
    });
    let config_of_call = if resumed.is_some() || restore.is_some() {
        let mut own = CallConfig::clone(&shared);
        if resumed.is_some() {
            own.greeting = None;
        }
        if let Some(items) = restore {
            own.restore = items;
        }
        Arc::new(own)
    } else {
        shared
    };
    let services = CallServices {
        tools: Arc::clone(&tools),
        control: match &state.control {
            Some(control) => Arc::clone(control),
            None => Arc::new(TwilioCallControl {
                services: Arc::clone(&state.tool_services),
                call: Arc::clone(&context),
            }),
        },
        config: config_of_call,
        shutdown: end,
        hang_up,
    };
    let record = state.store.as_ref().map(|_| {
        let (model, voice) = match backend {
            Backend::Realtime => (
                Some(config.openai.model.clone()),
                Some(profile.agent.voice.clone()),
            ),
            Backend::Live => (
                Some(config.live.model.clone()),
                Some(config.live.voice.clone()),
            ),
            Backend::Echo => (None, None),
        };
        Recorder::new(
            &info,
            RecordContext {
                direction: info.parameter("direction").unwrap_or("inbound").to_owned(),
                profile: profile.name.clone(),
                backend: backend.as_str().to_owned(),
                model,
                voice,
                mask_numbers: config.privacy.mask_numbers,
            },
            now_ms(),
        )
    });
    let live_billing = Arc::new(crate::adapters::live::LiveBilling::default());
    let live_late = Arc::new(crate::adapters::live::LateLines::default());
    let setup = AgentSetup {
        live_billing: Arc::clone(&live_billing),
        live_late: Arc::clone(&live_late),
        call_deadline: tokio::time::Instant::now() + profile.agent.max_call_duration,
        profile,
        tools,
        context,
    };
    // One copy shared by the call's connections (the reconnect closure lives as long as the
    // call) and the stream's end record.
    let agent_info = Arc::new(info.clone());
    // Boxed here: the connection future is ~11 KB (TLS and WebSocket handshakes) and would
    // otherwise be stored in the call's future for the whole call; the driver drops the box
    // once the agent is connected.
    let connect = Box::pin(connect_agent(
        Arc::clone(state),
        Arc::clone(&agent_info),
        Arc::clone(&clock),
        setup.clone(),
        false,
    ));
    // A reconnect opens the session like the first connect (same prompt, tools and
    // settings); the engine replays the conversation (Realtime: once it is ready; GPT-Live:
    // into `session.start`).
    let reconnect = {
        let (state, info, clock) = (
            Arc::clone(state),
            Arc::clone(&agent_info),
            Arc::clone(&clock),
        );
        move |attempt: u32| {
            tracing::info!(attempt, "reconnecting the agent");
            connect_agent(
                Arc::clone(&state),
                Arc::clone(&info),
                Arc::clone(&clock),
                setup.clone(),
                true,
            )
        }
    };
    let end_save = crate::handover::EndSave::default();
    let observer = Observer {
        backend: backend.as_str(),
        record,
        live,
        voicemail: agent_voicemail.then(|| VoicemailWatch {
            state: Arc::clone(&voicemail),
            services: Arc::clone(&state.tool_services),
            call_sid: info.call_id.clone(),
        }),
        end: StreamEndSaver {
            state: Arc::clone(state),
            info: Arc::clone(&agent_info),
            handovers,
            context: None,
            save: end_save.clone(),
        },
    };
    let (recording_tap, recording) = if config.recording.enabled {
        crate::recording::start(&config.recording, &info.call_id, Instant::now())
            .map_or((None, None), |r| (Some(r.tap), Some(r.done)))
    } else {
        (None, None)
    };
    if let Some(over) = greeting_watch {
        caller.watch_greeting(over);
    }
    caller.save_before_close(end_save.clone());
    if let Some(tap) = recording_tap {
        caller.record_to(tap);
    }
    Ready {
        caller,
        voicemail_rx,
        connect,
        reconnect,
        services,
        open,
        observer,
        after: CallEnd {
            call_sid: info.call_id,
            voicemail: agent_voicemail.then_some(voicemail),
            recording,
            end_save,
            live_billing,
            live_late,
            mcp_stats,
            clock,
            handovers,
            resumed: resumed.is_some(),
        },
    }
}

/// The handovers before this stream and, when it resumes a call another instance handed over
/// (`resumed`: the handovers its parameter counts), the call's conversation.
async fn resume(
    state: &AppState,
    call_sid: &str,
    resumed: Option<u32>,
) -> (u32, Option<Vec<ContextItem>>) {
    let Some(n) = resumed else {
        return (0, None);
    };
    match crate::handover::load(state, call_sid).await {
        Some((items, saved)) => {
            let handovers = saved.max(n);
            metrics::counter!(crate::handover::HANDOVERS, "side" => "in").increment(1);
            tracing::info!(
                items = items.len(),
                handovers,
                "resuming a handed-over call"
            );
            (handovers, Some(items))
        }
        None => {
            tracing::warn!("resuming a handed-over call without its conversation");
            (n, None)
        }
    }
}

/// What the call's task needs once the driver returned, besides the call's summary.
struct CallEnd {
    call_sid: String,
    /// The agent-voicemail state (`agent_voicemail` calls only).
    voicemail: Option<Arc<AgentVoicemail>>,
    /// The task writing the call's recording (when recordings are on).
    recording: Option<tokio::task::JoinHandle<Option<crate::recording::RecordingDone>>>,
    end_save: crate::handover::EndSave,
    live_billing: Arc<crate::adapters::live::LiveBilling>,
    live_late: Arc<crate::adapters::live::LateLines>,
    mcp_stats: Arc<McpStats>,
    clock: Arc<RelayClock>,
    /// Handovers before this stream.
    handovers: u32,
    /// This stream resumed a handed-over call.
    resumed: bool,
}

/// Ends a call the driver ended with `summary`: the voicemail's `<Say>` fall-back, the
/// recording's file, the save of why the stream ended, the summary line, and the record
/// (`recorder`: when records are on).
async fn finish(
    state: &AppState,
    open: &OpenCallGuard<'_>,
    end: CallEnd,
    mut summary: CallSummary,
    recorder: Option<Recorder>,
) {
    // GPT-Live's final usage arrives with `session.closed`, after our `session.close` at
    // teardown: after the summary was made. The sessions' total replaces the last snapshot.
    if let Some(total) = end.live_billing.settled() {
        summary.usage.billed_seconds = Some(total.max(summary.usage.billed_seconds.unwrap_or(0.0)));
    }
    if let Some(voicemail) = &end.voicemail {
        // A message asked for and not left (the agent failed, the call ended first): `<Say>`.
        voicemail
            .fall_back(&state.tool_services, &end.call_sid)
            .await;
    }
    // The endpoint (and with it the recording's tap) is gone: the recording task finishes
    // the file.
    let recording_path = recording_path(end.recording).await;
    // Saved before the stream closed; a caller who hung up has no stream to close.
    end.end_save.wait().await;
    log_summary(&summary, &end.mcp_stats);
    let Some(recorder) = recorder else {
        return;
    };
    let clock = &end.clock;
    let relay = |d| Percentiles {
        p50_ms: clock.call_relay().and_then(|r| r.quantile_ms(d, 0.5)),
        p99_ms: clock.call_relay().and_then(|r| r.quantile_ms(d, 0.99)),
    };
    let record_end = RecordEnd {
        completed_by_twilio: open.completed_by_twilio(),
        late_lines: end.live_late.take(),
        relay: [
            relay(Direction::CallerToAgent),
            relay(Direction::AgentToCaller),
        ],
        recording_path,
        handovers: end.handovers,
        resumed: end.resumed,
    };
    save_record(
        state,
        Box::new(recorder),
        &summary,
        &end.call_sid,
        record_end,
    )
    .await;
}

/// The path of the call's recording once its task finished the file (waiting at most
/// [`RECORDING_FINISH_TIMEOUT`]); `None` without a recording or when it failed.
async fn recording_path(
    recording: Option<tokio::task::JoinHandle<Option<crate::recording::RecordingDone>>>,
) -> Option<String> {
    match tokio::time::timeout(RECORDING_FINISH_TIMEOUT, recording?).await {
        Ok(Ok(Some(done))) => Some(done.path.display().to_string()),
        Ok(Ok(None)) => None,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "recording task failed");
            None
        }
        Err(_) => {
            tracing::warn!("the recording is still being written; its path is not in the record");
            None
        }
    }
}

/// What the end of a call adds to its record.
struct RecordEnd {
    /// Twilio's final status callback reported the call completed.
    completed_by_twilio: bool,
    /// GPT-Live lines completed at a session's teardown (words after our `session.close`,
    /// lines still being assembled): after the engine stopped reading.
    late_lines: Vec<crate::adapters::live::LateLine>,
    relay: [Percentiles; 2],
    recording_path: Option<String>,
    /// Handovers before this part of the call.
    handovers: u32,
    /// This part resumed a handed-over call: the earlier parts' record is merged into it.
    resumed: bool,
}

/// Finishes the call's record and queues it for the store (one record per call: a resumed
/// part is merged with the earlier parts' record).
async fn save_record(
    state: &AppState,
    mut recorder: Box<Recorder>,
    summary: &CallSummary,
    call_sid: &str,
    end: RecordEnd,
) {
    let Some(store) = &state.store else { return };
    if end.completed_by_twilio {
        recorder.completed_by_twilio();
    }
    for line in end.late_lines {
        recorder.late_line(line.speaker, line.text, line.at_ms);
    }
    let mut record = Box::new(recorder.finish(summary, end.relay, &state.config.pricing, now_ms()));
    record.recording_path = end.recording_path;
    let handed_over = summary.end_reason == Some(bridge_core::engine::EndReason::HandedOver);
    record.handovers = end.handovers + u32::from(handed_over);
    if end.resumed {
        match store.db() {
            Some(db) => match db.record(call_sid).await {
                Ok(Some(earlier)) => record.continue_from(earlier),
                Ok(None) => tracing::warn!("the record of the call's earlier part is missing"),
                Err(e) => {
                    tracing::error!(error = %e, "could not read the earlier part's record")
                }
            },
            None => {
                tracing::warn!("the call store is not ready: the earlier part is not merged")
            }
        }
    }
    store.submit(Write::Record(record));
}

/// The engine configuration of one call answered with `agent` (the settings of the call's
/// profile, including its back end).
pub(crate) fn call_config(config: &Config, agent: &AgentConfig) -> CallConfig {
    let defaults = CallConfig::default();
    let backend = agent.backend;
    let (greeting, idle) = match backend {
        Backend::Realtime => (
            agent.greeting.clone(),
            agent.idle_timeout.map(|timeout| IdleConfig {
                timeout,
                reprompt: agent.idle_reprompt.clone(),
            }),
        ),
        // The echo agent's "greeting" is its tone (any instructions will do); it has nothing
        // to say when the caller is idle.
        // GPT-Live says its greeting line as is; it decides itself what to do when the caller
        // is quiet (and its output never pauses, so the engine's idle timer could not tell).
        Backend::Live => (config.live.greeting.clone(), None),
        Backend::Echo => (config.echo.greeting_tone.then(|| "tone".to_owned()), None),
    };
    let (max_duration, goodbye_timeout, goodbye_quiet) = match backend {
        // The adapter ends the call gracefully at agent.max_call_secs (wrap-up line); this is
        // the backstop. No response boundaries: the goodbye ends when its speech went quiet.
        Backend::Live => (
            agent.max_call_duration + config.live.wrap_up_grace + Duration::from_secs(5),
            config.live.goodbye_timeout,
            config.live.goodbye_quiet,
        ),
        _ => (agent.max_call_duration, defaults.goodbye_timeout, None),
    };
    let connect_budget =
        config.openai.connect_timeout * config.openai.connect_attempts + Duration::from_secs(5);
    // Realtime and GPT-Live sessions are reconnected (GPT-Live: the conversation goes into the
    // fresh session's `session.start`); the echo agent never drops. GPT-Live recycles by
    // `expires_at` (the adapter reports the pause), not by age.
    let r = &config.reconnect;
    let reconnect = (backend != Backend::Echo && r.enabled).then(|| ReconnectConfig {
        max_attempts: r.attempts,
        max_reconnects: r.max_per_call,
        max_gap: r.max_gap,
        backoff: r.backoff,
        max_backoff: r.max_backoff,
        hold_audio: r.hold_tone.then(hold_tone),
        resume_instructions: r.resume_instructions.clone(),
        recycle_after: r.recycle_after.filter(|_| backend == Backend::Realtime),
        recycle_max_gap: r.recycle_max_gap,
    });
    CallConfig {
        reconnect,
        context: ContextLimits {
            max_items: r.context_max_items,
            max_chars: r.context_max_chars,
        },
        greeting,
        idle,
        dtmf: agent.dtmf,
        mark_interval: agent.mark_interval,
        apology: agent.apology.clone(),
        min_barge_in_speech: agent.min_barge_in,
        goodbye_barge_in: agent.goodbye_barge_in,
        // Realtime only: GPT-Live streams without response boundaries, echo cannot hang.
        agent_response_timeout: agent
            .response_timeout
            .filter(|_| backend == Backend::Realtime),
        max_duration: Some(max_duration),
        goodbye_timeout,
        goodbye_quiet,
        caller_inactivity_timeout: Some(agent.media_inactivity_timeout),
        agent_connect_timeout: defaults.agent_connect_timeout.max(connect_budget),
        ..defaults
    }
}

/// The hold tone of a reconnect gap: one second of μ-law (a soft 440 Hz beep of 250 ms at
/// −24 dBFS, then silence), repeated while the gap lasts.
///
/// Built once per process and shared by every call (a clone is a reference count): encoded it
/// is 10.7 KB, which each call used to build and keep for its whole life, a third of the
/// memory budget of a call.
pub(crate) fn hold_tone() -> Base64Audio {
    static HOLD_TONE: std::sync::LazyLock<Base64Audio> = std::sync::LazyLock::new(|| {
        let mut clip = Vec::with_capacity(8000);
        Tone::with_dbfs(440.0, -24.0, 8000).ulaw_into(2000, &mut clip);
        clip.extend_from_slice(&tone::silence_bytes(AudioFormat::Mulaw8k, 750));
        Base64Audio::encode(&clip)
    });
    HOLD_TONE.clone()
}

/// What the agent session of a call is opened with.
#[derive(Clone)]
struct AgentSetup {
    /// GPT-Live: the call's billed seconds across its sessions.
    live_billing: Arc<crate::adapters::live::LiveBilling>,
    live_late: Arc<crate::adapters::live::LateLines>,
    /// When the call reaches `agent.max_call_secs` (GPT-Live's wrap-up line ends it then).
    call_deadline: tokio::time::Instant,
    profile: Arc<Profile>,
    tools: Arc<dyn ToolExecutor>,
    context: Arc<CallContext>,
}

/// Opens the agent session for one call (polled by the driver while the call runs).
async fn connect_agent(
    state: Arc<AppState>,
    info: Arc<CallerInfo>,
    clock: Arc<RelayClock>,
    setup: AgentSetup,
    replaces: bool,
) -> Result<Box<dyn AgentEndpoint>, EndpointError> {
    let config = &state.config;
    let agent = &setup.profile.agent;
    let started = Instant::now();
    let result: Result<Box<dyn AgentEndpoint>, EndpointError> = match agent.backend {
        Backend::Realtime => {
            // A session pre-warmed by `/voice` on this instance, if any (see crate::prewarm).
            let prewarmed = match state.prewarms.claim(&info.call_id).await {
                Some(Ok(agent)) => {
                    tracing::debug!("using the agent session pre-warmed at /voice");
                    Some(agent.with_clock(Arc::clone(&clock)))
                }
                Some(Err(e)) => {
                    tracing::info!(error = %e, "the pre-warmed agent session failed; connecting now");
                    None
                }
                None => None,
            };
            let connected = match prewarmed {
                Some(agent) => Ok(agent),
                None => {
                    connect_realtime(
                        &state,
                        &setup.profile,
                        &setup.tools.definitions(),
                        &info,
                        clock,
                    )
                    .await
                }
            };
            connected.map(|realtime| {
                let realtime = realtime.with_side_channel(Arc::clone(&setup.context.side));
                let realtime = if setup.profile.mcp_servers.is_empty() {
                    realtime
                } else {
                    realtime.with_mcp(crate::adapters::realtime::McpPolicy::new(
                        &setup.profile.mcp_servers,
                        Arc::clone(&setup.context.side),
                        Arc::clone(&setup.context.mcp),
                    ))
                };
                Box::new(realtime) as Box<dyn AgentEndpoint>
            })
        }
        Backend::Live => {
            let instructions = instructions_for_call(agent, &info).await;
            let Some(endpoint) = &state.openai else {
                return Err(EndpointError::Protocol(
                    "the OpenAI endpoint is not configured".into(),
                ));
            };
            let live = &config.live;
            // `check_startup` allowed MCP servers only with `live.mcp_servers` on.
            let mcp_tools = if live.mcp_servers {
                setup.profile.mcp_tools()
            } else {
                Vec::new()
            };
            let mut session = crate::adapters::live::session_config(
                live,
                instructions,
                &setup.tools.definitions(),
                &mcp_tools,
            )
            .map_err(|e| EndpointError::Protocol(format!("GPT-Live session configuration: {e}")))?;
            if live.safety_identifier
                && let Some(from) = info.parameter("from").filter(|f| !f.is_empty())
            {
                session.safety_identifier = Some(state.token_key.pseudonym(from));
            }
            let reconnects = config.reconnect.enabled;
            let plan = crate::adapters::live::LivePlan {
                session,
                replaces,
                reconnects,
                recycle: reconnects && !live.recycle_before.is_zero(),
                // The graceful wrap-up also ends calls at the configured maximum duration.
                call_deadline: setup.call_deadline,
                billing: Arc::clone(&setup.live_billing),
                late_lines: Arc::clone(&setup.live_late),
                mcp: (!mcp_tools.is_empty()).then(|| Arc::clone(&setup.context.mcp)),
            };
            LiveAgent::connect(endpoint, Arc::new(live.clone()), plan, clock)
                .await
                .map(|agent| Box::new(agent) as Box<dyn AgentEndpoint>)
        }
        Backend::Echo => Ok(Box::new(EchoAgent::new(&config.echo))),
    };
    match &result {
        Ok(_) => tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "agent connected"
        ),
        Err(e) => {
            crate::telemetry::error("agent_connect");
            tracing::warn!(error = %e, "could not connect the agent");
        }
    }
    result
}

/// Connects an OpenAI Realtime session for the call described by `info` (at stream start, or
/// pre-warmed at `/voice` with the parameters it writes into the stream) and configures it
/// with the profile's settings, the rendered prompt and `definitions`.
pub(crate) async fn connect_realtime(
    state: &AppState,
    profile: &Profile,
    definitions: &[bridge_core::tools::ToolDefinition],
    info: &CallerInfo,
    clock: Arc<RelayClock>,
) -> Result<RealtimeAgent, EndpointError> {
    let config = &state.config;
    let instructions = instructions_for_call(&profile.agent, info).await;
    let Some(endpoint) = &state.openai else {
        return Err(EndpointError::Protocol(
            "the OpenAI endpoint is not configured".into(),
        ));
    };
    let session = crate::adapters::realtime::session_config(
        &config.openai,
        &profile.agent,
        instructions,
        definitions,
        &profile.mcp_tools(),
    )
    .map_err(|e| EndpointError::Protocol(format!("session configuration: {e}")))?;
    RealtimeAgent::connect(endpoint, &config.openai, &session, clock).await
}

/// The prompt file rendered for this call (a generic prompt if it cannot be read).
async fn instructions_for_call(agent: &AgentConfig, info: &CallerInfo) -> String {
    match crate::prompt::load_for_call(&agent.prompt_path, info).await {
        Ok(prompt) => prompt,
        Err(e) => {
            tracing::error!(
                path = %agent.prompt_path.display(),
                error = %e,
                "cannot read the prompt file; using a generic prompt for this call"
            );
            crate::telemetry::error("prompt_file");
            FALLBACK_PROMPT.to_owned()
        }
    }
}

/// Keeps the active-calls gauge right however the call task ends.
struct ActiveCall;

impl ActiveCall {
    fn new() -> Self {
        metrics::gauge!(crate::telemetry::ACTIVE_CALLS).increment(1.0);
        ActiveCall
    }
}

impl Drop for ActiveCall {
    fn drop(&mut self) {
        metrics::gauge!(crate::telemetry::ACTIVE_CALLS).decrement(1.0);
    }
}

/// Turns call events into metrics and log lines, into the call's record when records are on,
/// and into its live view when the console is on. Never logs audio; transcripts only at `debug`.
struct Observer {
    backend: &'static str,
    record: Option<Recorder>,
    /// The call's entry among the console's live calls (while the console is on).
    live: Option<crate::console::live::LiveEntry>,
    /// The agent-voicemail state (`agent_voicemail` calls only).
    voicemail: Option<VoicemailWatch>,
    /// Saves why the stream ended before it is closed (see [`crate::handover`]).
    end: StreamEndSaver,
}

/// What the observer of an `agent_voicemail` call needs: the state, and REST for the fallback.
struct VoicemailWatch {
    state: Arc<AgentVoicemail>,
    services: Arc<crate::tools::ToolServices>,
    call_sid: String,
}

impl VoicemailWatch {
    fn on_event(&self, event: &CallEvent) {
        match event {
            CallEvent::LeaveMessage { refused: None } => {
                tracing::info!("the agent is leaving the voicemail message");
                self.state.accepted();
            }
            CallEvent::LeaveMessage {
                refused: Some(reason),
            } => {
                tracing::warn!(reason = %reason, "the agent cannot leave the voicemail message: <Say> instead");
                let (state, services, call_sid) = (
                    Arc::clone(&self.state),
                    Arc::clone(&self.services),
                    self.call_sid.clone(),
                );
                tokio::spawn(async move { state.fall_back(&services, &call_sid).await });
            }
            CallEvent::Action {
                action: bridge_core::tools::CallAction::Hangup,
                timed_out: false,
            } => self.state.heard(),
            _ => {}
        }
    }
}

/// What the observer needs to save why the call's stream ended.
struct StreamEndSaver {
    state: Arc<AppState>,
    /// The stream's `start` (its call and parameters), shared with the agent's connections.
    info: Arc<CallerInfo>,
    /// Handovers before this stream.
    handovers: u32,
    /// The conversation, when the engine handed the call over.
    context: Option<Vec<bridge_core::agent::ContextItem>>,
    save: crate::handover::EndSave,
}

impl StreamEndSaver {
    fn ended(&mut self, summary: &CallSummary) {
        let outcome = crate::handover::outcome_of(summary.end_reason);
        let handed_over = outcome == crate::store::StreamOutcome::HandedOver;
        let end = crate::store::StreamEnd {
            call_sid: self.info.call_id.clone(),
            outcome,
            context: self
                .context
                .take()
                .filter(|_| handed_over)
                .map(|c| crate::handover::context_to_json(&c)),
            parameters: handed_over
                .then(|| crate::handover::parameters_to_json(&self.info.parameters)),
            handovers: self.handovers + u32::from(handed_over),
        };
        // The agent is gone for good and REST is configured: the fallback is played through
        // REST before the stream closes (Twilio then skips the redirect); saved as a normal end
        // once Twilio took it, so that a redirect, were it run anyway, hangs up without
        // speaking again (and waits while the update is unanswered: `crate::handover`).
        let by_rest = outcome == crate::store::StreamOutcome::Failed
            && crate::handover::agent_gone(summary.end_reason)
            && self.state.config.fallback.enabled
            && self.state.tool_services.rest.is_some();
        let state = Arc::clone(&self.state);
        self.save.start(async move {
            if by_rest {
                crate::handover::fallback_by_rest(state, end).await;
            } else {
                crate::handover::save(state, end).await;
            }
        });
    }
}

impl CallObserver for Observer {
    fn on_event(&mut self, event: &CallEvent) {
        if let Some(voicemail) = &self.voicemail {
            voicemail.on_event(event);
        }
        if let Some(record) = &mut self.record {
            record.on_event(event, now_ms());
        }
        if let Some(live) = &self.live {
            live.on_event(event);
        }
        match event {
            CallEvent::Started(_) | CallEvent::Usage(_) | CallEvent::LeaveMessage { .. } => {}
            CallEvent::Ended(summary) => self.end.ended(summary),
            CallEvent::HandedOver { context, at_pause } => {
                metrics::counter!(crate::handover::HANDOVERS, "side" => "out").increment(1);
                tracing::info!(
                    items = context.len(),
                    at_pause,
                    "call handed over: its conversation is saved for the next instance"
                );
                self.end.context = Some(context.clone());
            }
            CallEvent::AgentReady { connect_latency } => {
                metrics::histogram!(crate::telemetry::AGENT_CONNECT_SECONDS, "backend" => self.backend)
                    .record(connect_latency.as_secs_f64());
                tracing::info!(
                    connect_ms = connect_latency.as_millis() as u64,
                    "agent ready"
                );
            }
            CallEvent::Transcript { speaker, text, .. } => {
                tracing::debug!(speaker = speaker.as_str(), text = %text, "transcript");
            }
            CallEvent::ToolStarted { call_id, name, .. } => {
                tracing::info!(tool = %name, call_id = %call_id, "tool call started");
            }
            CallEvent::ToolDiscarded { call_id, name } => {
                tracing::info!(tool = %name, call_id = %call_id, "tool call discarded (its response did not complete)");
            }
            CallEvent::ToolFinished {
                call_id,
                name,
                duration,
                action,
                ..
            } => {
                tracing::info!(
                    tool = %name,
                    call_id = %call_id,
                    duration_ms = duration.as_millis() as u64,
                    action = ?action,
                    "tool call finished"
                );
            }
            CallEvent::BargeIn(barge_in) => {
                metrics::counter!(crate::telemetry::BARGE_INS).increment(1);
                tracing::debug!(
                    at_ms = barge_in.at.as_millis() as u64,
                    truncated_items = barge_in.truncations.len(),
                    cleared_marks = barge_in.cleared_marks,
                    "barge-in"
                );
            }
            CallEvent::FirstAudio { trigger, latency } => {
                let trigger = crate::record::trigger_name(*trigger);
                metrics::histogram!(crate::telemetry::FIRST_AUDIO_SECONDS, "trigger" => trigger)
                    .record(latency.as_secs_f64());
                tracing::debug!(
                    trigger,
                    latency_ms = latency.as_millis() as u64,
                    "first agent audio"
                );
            }
            CallEvent::Reprompted => tracing::info!("caller idle: reprompting"),
            CallEvent::AgentReconnecting { attempt, reason } => {
                tracing::warn!(attempt, reason = %reason, "agent connection lost: reconnecting");
            }
            CallEvent::AgentReconnected {
                attempts,
                gap,
                restored,
            } => {
                metrics::counter!(crate::telemetry::AGENT_RECONNECTS, "outcome" => "reconnected")
                    .increment(1);
                tracing::info!(
                    attempts,
                    gap_ms = gap.as_millis() as u64,
                    restored,
                    "agent reconnected; conversation replayed"
                );
            }
            CallEvent::AgentRecycled { gap, restored } => {
                metrics::counter!(crate::telemetry::AGENT_RECONNECTS, "outcome" => "recycled")
                    .increment(1);
                tracing::info!(
                    gap_ms = gap.as_millis() as u64,
                    restored,
                    "agent session recycled; conversation replayed"
                );
            }
            CallEvent::AgentReconnectFailed { attempts, reason } => {
                metrics::counter!(crate::telemetry::AGENT_RECONNECTS, "outcome" => "failed")
                    .increment(1);
                tracing::warn!(attempts, reason = %reason, "could not reconnect the agent");
            }
            CallEvent::Action { action, timed_out } => {
                tracing::info!(action = ?action, timed_out, "executing call action");
            }
            CallEvent::Error {
                source,
                code,
                message,
                fatal,
            } => {
                let kind = error_label(*source);
                crate::telemetry::error(kind);
                if *fatal {
                    tracing::warn!(source = kind, code = ?code, message = %message, "call error");
                } else {
                    tracing::info!(source = kind, code = ?code, message = %message, "call error (recovered)");
                }
            }
        }
    }
}

fn error_label(source: ErrorSource) -> &'static str {
    match source {
        ErrorSource::Agent => "agent",
        ErrorSource::Caller => "caller",
        ErrorSource::Audio => "audio",
        ErrorSource::Tool => "tool",
        ErrorSource::Control => "control",
    }
}

/// Counts the call and writes its one summary line.
fn log_summary(summary: &CallSummary, mcp: &McpStats) {
    let reason = summary.end_reason.map_or("unknown", |r| r.as_str());
    metrics::counter!(crate::telemetry::CALLS_TOTAL, "end_reason" => reason).increment(1);
    tracing::info!(
        duration_ms = summary.duration.as_millis() as u64,
        end_reason = reason,
        end_detail = summary.end_detail.as_deref().unwrap_or(""),
        barge_ins = summary.barge_ins,
        transcript_turns = summary.transcript_turns,
        tool_calls = summary.tool_calls,
        mcp_calls = McpStats::get(&mcp.calls_completed),
        mcp_calls_failed = McpStats::get(&mcp.calls_failed),
        mcp_approvals = McpStats::get(&mcp.approved),
        mcp_denials = McpStats::get(&mcp.denied),
        input_tokens = summary.usage.input_tokens,
        output_tokens = summary.usage.output_tokens,
        input_audio_tokens = summary.usage.input_audio_tokens,
        output_audio_tokens = summary.usage.output_audio_tokens,
        billed_seconds = summary.usage.billed_seconds,
        caller_audio_ms = summary.caller_audio_ms,
        agent_audio_ms = summary.agent_audio_ms,
        late_audio_dropped_ms = summary.late_audio_dropped_ms,
        playout_round_trip_ms = summary
            .playout_round_trip
            .map(|rtt| rtt.as_secs_f64() * 1e3),
        "call ended"
    );
}
