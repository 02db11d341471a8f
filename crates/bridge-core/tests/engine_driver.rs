//! The async driver over in-memory endpoints (channels), on tokio's paused clock: no test
//! waits on the wall clock.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use async_trait::async_trait;
use bridge_core::agent::{
    AgentCapabilities, AgentCommand, AgentEndpoint, AgentEvent, ResponseStatus, ToolCallRequest,
};
use bridge_core::caller::{
    CallerCommand, CallerEndpoint, CallerEvent, CallerInfo, Endpoint, EndpointError, MarkId,
};
use bridge_core::driver::{
    CallControl, CallServices, ControlError, NoCallControl, Reconnect, run_call,
    run_call_reconnecting,
};
use bridge_core::engine::{CallConfig, CallEvent, CallSummary, EndReason};
use bridge_core::format::{AudioFormat, Base64Audio};
use bridge_core::tools::{
    CallAction, NoTools, ToolDefinition, ToolExecutor, ToolInvocation, ToolOutput,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep};
use tokio_util::sync::{CancellationToken, PollSender};

const REALTIME: AgentCapabilities = AgentCapabilities {
    input_format: AudioFormat::Mulaw8k,
    output_format: AudioFormat::Mulaw8k,
    truncation: true,
    interrupts_itself: true,
    reports_speech: true,
    continuous_input: false,
    restore_at_start: false,
    final_close: false,
};

// ------------------------------------------------------------------------------------------
// Mock endpoints: events in through a channel, each flush out as one batch ("one write").
// ------------------------------------------------------------------------------------------

struct MockCaller {
    events: mpsc::Receiver<Result<CallerEvent, EndpointError>>,
    writes: PollSender<Vec<CallerCommand>>,
    queued: Vec<CallerCommand>,
}

struct CallerPeer {
    events: mpsc::Sender<Result<CallerEvent, EndpointError>>,
    writes: mpsc::Receiver<Vec<CallerCommand>>,
}

fn caller_pair(write_capacity: usize) -> (MockCaller, CallerPeer) {
    let (etx, erx) = mpsc::channel(256);
    let (wtx, wrx) = mpsc::channel(write_capacity);
    (
        MockCaller {
            events: erx,
            writes: PollSender::new(wtx),
            queued: Vec::new(),
        },
        CallerPeer {
            events: etx,
            writes: wrx,
        },
    )
}

/// One flush is one message on `writes`, sent once the channel has room (the peer reads).
fn poll_write_batch<C: Send>(
    writes: &mut PollSender<Vec<C>>,
    queued: &mut Vec<C>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), EndpointError>> {
    let gone = |_| EndpointError::Closed("peer gone".into());
    ready!(writes.poll_reserve(cx)).map_err(gone)?;
    writes.send_item(std::mem::take(queued)).map_err(gone)?;
    Poll::Ready(Ok(()))
}

#[async_trait]
impl Endpoint for MockCaller {
    type Event = CallerEvent;
    type Command = CallerCommand;

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<CallerEvent, EndpointError>>> {
        self.events.poll_recv(cx)
    }

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(&mut self, command: CallerCommand) -> Result<(), EndpointError> {
        self.queued.push(command);
        Ok(())
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
        poll_write_batch(&mut self.writes, &mut self.queued, cx)
    }

    /// The close shows up on the peer's side as one write of `Close`.
    async fn close(&mut self) -> Result<(), EndpointError> {
        self.queued.push(CallerCommand::Close);
        std::future::poll_fn(|cx| poll_write_batch(&mut self.writes, &mut self.queued, cx)).await
    }
}

impl CallerEndpoint for MockCaller {
    fn format(&self) -> AudioFormat {
        AudioFormat::Mulaw8k
    }
}

struct MockAgent {
    events: mpsc::Receiver<Result<AgentEvent, EndpointError>>,
    writes: PollSender<Vec<AgentCommand>>,
    queued: Vec<AgentCommand>,
    caps: AgentCapabilities,
}

struct AgentPeer {
    events: mpsc::Sender<Result<AgentEvent, EndpointError>>,
    writes: mpsc::Receiver<Vec<AgentCommand>>,
}

fn agent_pair(caps: AgentCapabilities) -> (MockAgent, AgentPeer) {
    let (etx, erx) = mpsc::channel(256);
    let (wtx, wrx) = mpsc::channel(256);
    (
        MockAgent {
            events: erx,
            writes: PollSender::new(wtx),
            queued: Vec::new(),
            caps,
        },
        AgentPeer {
            events: etx,
            writes: wrx,
        },
    )
}

#[async_trait]
impl Endpoint for MockAgent {
    type Event = AgentEvent;
    type Command = AgentCommand;

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<AgentEvent, EndpointError>>> {
        self.events.poll_recv(cx)
    }

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(&mut self, command: AgentCommand) -> Result<(), EndpointError> {
        self.queued.push(command);
        Ok(())
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
        poll_write_batch(&mut self.writes, &mut self.queued, cx)
    }

    /// The close shows up on the peer's side as one write of `Close`.
    async fn close(&mut self) -> Result<(), EndpointError> {
        self.queued.push(AgentCommand::Close);
        std::future::poll_fn(|cx| poll_write_batch(&mut self.writes, &mut self.queued, cx)).await
    }
}

impl AgentEndpoint for MockAgent {
    fn capabilities(&self) -> AgentCapabilities {
        self.caps
    }
}

impl CallerPeer {
    async fn send(&self, event: CallerEvent) {
        self.events.send(Ok(event)).await.expect("driver alive");
    }

    async fn next(&mut self) -> Vec<CallerCommand> {
        self.writes.recv().await.expect("a caller write")
    }
}

impl AgentPeer {
    async fn send(&self, event: AgentEvent) {
        self.events.send(Ok(event)).await.expect("driver alive");
    }

    async fn next(&mut self) -> Vec<AgentCommand> {
        self.writes.recv().await.expect("an agent write")
    }
}

fn ulaw(tag: u8, bytes: usize) -> Base64Audio {
    Base64Audio::encode(&vec![tag; bytes])
}

fn started() -> CallerEvent {
    CallerEvent::Started(CallerInfo {
        call_id: "CA1".into(),
        stream_id: "MZ1".into(),
        ..CallerInfo::default()
    })
}

fn agent_audio(response: &str, tag: u8, bytes: usize) -> AgentEvent {
    AgentEvent::Audio {
        audio: ulaw(tag, bytes),
        response_id: Some(response.into()),
        item_id: Some(format!("{response}-item")),
    }
}

fn config() -> CallConfig {
    CallConfig {
        idle: None,
        caller_inactivity_timeout: None,
        // These tests count 20 ms pieces, one mark each.
        mark_interval: std::time::Duration::from_millis(20),
        ..CallConfig::default()
    }
}

fn services(config: CallConfig) -> CallServices {
    CallServices {
        tools: Arc::new(NoTools),
        control: Arc::new(NoCallControl),
        config: Arc::new(config),
        shutdown: CancellationToken::new(),
        hang_up: CancellationToken::new(),
    }
}

type Running = tokio::task::JoinHandle<(CallSummary, Vec<CallEvent>)>;

fn spawn_call<F>(caller: MockCaller, connect: F, services: CallServices) -> Running
where
    F: Future<Output = Result<MockAgent, EndpointError>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut events: Vec<CallEvent> = Vec::new();
        let summary = run_call(caller, connect, services, &mut events).await;
        (summary, events)
    })
}

/// [`spawn_call`] with reconnects: the call starts with `first`, later agents come from
/// `reconnect`.
fn spawn_reconnecting_call<R>(
    caller: MockCaller,
    first: MockAgent,
    reconnect: R,
    config: CallConfig,
) -> Running
where
    R: Reconnect<MockAgent> + 'static,
{
    tokio::spawn(async move {
        let mut events: Vec<CallEvent> = Vec::new();
        let summary = run_call_reconnecting(
            caller,
            async move { Ok(first) },
            reconnect,
            services(config),
            &mut events,
        )
        .await;
        (summary, events)
    })
}

fn audio_of(batch: &[AgentCommand]) -> Vec<u8> {
    batch
        .iter()
        .filter_map(|c| match c {
            AgentCommand::Audio(a) => Some(a.decode().expect("base64")[0]),
            _ => None,
        })
        .collect()
}

// ------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn full_call_relays_both_ways_and_writes_media_with_its_mark() {
    let (caller, mut cp) = caller_pair(64);
    let (agent, mut ap) = agent_pair(REALTIME);
    let call = spawn_call(caller, async move { Ok(agent) }, services(config()));

    cp.send(started()).await;
    ap.send(AgentEvent::Ready).await;
    cp.send(CallerEvent::Audio(ulaw(1, 160))).await;
    assert_eq!(audio_of(&ap.next().await), [1]);

    ap.send(AgentEvent::ResponseStarted {
        response_id: "r1".into(),
    })
    .await;
    ap.send(agent_audio("r1", 2, 320)).await;
    // Both pieces and their marks leave in one write.
    let batch = cp.next().await;
    assert_eq!(batch.len(), 4, "{batch:?}");
    assert!(matches!(&batch[0], CallerCommand::Audio(a) if a.decoded_len() == 162));
    assert_eq!(batch[1], CallerCommand::Mark(MarkId(1)));
    assert!(matches!(&batch[2], CallerCommand::Audio(a) if a.decoded_len() == 158));
    assert_eq!(batch[3], CallerCommand::Mark(MarkId(2)));

    cp.send(CallerEvent::MarkPlayed(MarkId(1))).await;
    cp.send(CallerEvent::MarkPlayed(MarkId(2))).await;
    ap.send(AgentEvent::ResponseDone {
        response_id: "r1".into(),
        status: ResponseStatus::Completed,
        usage: None,
    })
    .await;
    cp.send(CallerEvent::Hangup).await;
    assert_eq!(ap.next().await, [AgentCommand::Close]);

    let (summary, events) = call.await.expect("call task");
    assert_eq!(summary.end_reason, Some(EndReason::CallerHungUp));
    assert_eq!(summary.caller_audio_ms, 20);
    assert_eq!(summary.agent_audio_ms, 40);
    assert!(matches!(events.first(), Some(CallEvent::Started(_))));
    assert!(matches!(events.last(), Some(CallEvent::Ended(s)) if s == &summary));
    // The driver closes the caller side too.
    assert_eq!(cp.next().await, [CallerCommand::Close]);
}

#[tokio::test(start_paused = true)]
async fn barge_in_through_the_driver() {
    let (caller, mut cp) = caller_pair(64);
    let (agent, mut ap) = agent_pair(REALTIME);
    let call = spawn_call(caller, async move { Ok(agent) }, services(config()));

    cp.send(started()).await;
    ap.send(AgentEvent::Ready).await;
    ap.send(AgentEvent::ResponseStarted {
        response_id: "r1".into(),
    })
    .await;
    ap.send(agent_audio("r1", 1, 800)).await;
    assert_eq!(cp.next().await.len(), 10);
    cp.send(CallerEvent::MarkPlayed(MarkId(2))).await;
    // Let the echo be processed before the agent's event.
    sleep(Duration::from_millis(1)).await;
    ap.send(AgentEvent::SpeechStarted).await;
    assert_eq!(cp.next().await, [CallerCommand::Clear]);
    // 2 pieces of 162 bytes heard: 40.5 ms → 40.
    assert_eq!(
        ap.next().await,
        [AgentCommand::Truncate {
            item_id: "r1-item".into(),
            audio_end_ms: 40
        }]
    );
    // Late audio of r1 is dropped; stale echoes are ignored; the next response plays.
    ap.send(agent_audio("r1", 2, 160)).await;
    for m in 3..=5 {
        cp.send(CallerEvent::MarkPlayed(MarkId(m))).await;
    }
    ap.send(AgentEvent::ResponseStarted {
        response_id: "r2".into(),
    })
    .await;
    ap.send(agent_audio("r2", 3, 160)).await;
    let batch = cp.next().await;
    assert!(matches!(&batch[0], CallerCommand::Audio(a) if a.decode().unwrap()[0] == 3));
    assert_eq!(batch[1], CallerCommand::Mark(MarkId(6)));

    drop(cp.events);
    let (summary, _) = call.await.expect("call task");
    assert_eq!(summary.barge_ins, 1);
    assert_eq!(summary.stale_mark_echoes, 3);
    assert_eq!(summary.late_audio_dropped_ms, 20);
}

#[tokio::test(start_paused = true)]
async fn slow_agent_connect_buffers_caller_audio_and_flushes_it_in_order() {
    let (caller, cp) = caller_pair(64);
    let (agent, mut ap) = agent_pair(REALTIME);
    // The agent will be ready as soon as it is connected.
    ap.send(AgentEvent::Ready).await;
    let start = Instant::now();
    let connect = async move {
        sleep(Duration::from_millis(1500)).await;
        Ok(agent)
    };
    let call = spawn_call(caller, connect, services(config()));

    cp.send(started()).await;
    for tag in 1..=5u8 {
        cp.send(CallerEvent::Audio(ulaw(tag, 160))).await;
        sleep(Duration::from_millis(20)).await;
    }
    let batch = ap.next().await;
    assert_eq!(audio_of(&batch), [1, 2, 3, 4, 5]);
    assert_eq!(start.elapsed(), Duration::from_millis(1500));
    cp.send(CallerEvent::Audio(ulaw(6, 160))).await;
    assert_eq!(audio_of(&ap.next().await), [6]);

    drop(cp.events);
    let (summary, events) = call.await.expect("call task");
    assert_eq!(summary.caller_audio_ms, 120);
    assert!(events.contains(&CallEvent::AgentReady {
        connect_latency: Duration::from_millis(1500)
    }));
}

/// Tools for the tests: `fast` answers at once, `slow` never does (within the timeout),
/// `end_call` hangs up.
struct TestTools;

#[async_trait]
impl ToolExecutor for TestTools {
    fn definitions(&self) -> Vec<ToolDefinition> {
        Vec::new()
    }

    async fn call(&self, invocation: ToolInvocation) -> ToolOutput {
        match invocation.name.as_str() {
            "slow" => {
                sleep(Duration::from_secs(3600)).await;
                ToolOutput::json(&serde_json::json!({"late": true}))
            }
            "end_call" => ToolOutput {
                output: "{\"ok\":true}".into(),
                action: Some(CallAction::Hangup),
            },
            "transfer" => ToolOutput {
                output: "{\"ok\":true}".into(),
                action: Some(CallAction::Transfer {
                    to: "+15550100".into(),
                }),
            },
            _ => ToolOutput::json(&serde_json::json!({"for": invocation.phone_call_id})),
        }
    }
}

fn tool_call(call_id: &str, name: &str) -> AgentEvent {
    AgentEvent::ToolCall(ToolCallRequest {
        call_id: call_id.into(),
        name: name.into(),
        arguments: "{}".into(),
        response_id: None,
    })
}

#[tokio::test(start_paused = true)]
async fn slow_tool_times_out_without_stalling_audio() {
    let (caller, mut cp) = caller_pair(64);
    let (agent, mut ap) = agent_pair(REALTIME);
    let mut svc = services(CallConfig {
        tool_timeout: Duration::from_secs(5),
        ..config()
    });
    svc.tools = Arc::new(TestTools);
    let start = Instant::now();
    let call = spawn_call(caller, async move { Ok(agent) }, svc);

    cp.send(started()).await;
    ap.send(AgentEvent::Ready).await;
    ap.send(tool_call("c-slow", "slow")).await;
    ap.send(tool_call("c-fast", "fast")).await;
    // Audio keeps flowing both ways while the slow tool runs.
    ap.send(AgentEvent::ResponseStarted {
        response_id: "r1".into(),
    })
    .await;
    ap.send(agent_audio("r1", 1, 160)).await;
    assert_eq!(cp.next().await.len(), 2);
    cp.send(CallerEvent::Audio(ulaw(9, 160))).await;
    // The fast result arrives first, on its own.
    let mut agent_writes = Vec::new();
    while agent_writes.len() < 2 {
        agent_writes.extend(ap.next().await);
    }
    assert!(agent_writes.contains(&AgentCommand::ToolResult {
        call_id: "c-fast".into(),
        output: "{\"for\":\"CA1\"}".into()
    }));
    assert!(
        agent_writes
            .iter()
            .any(|c| matches!(c, AgentCommand::Audio(_)))
    );
    assert!(start.elapsed() < Duration::from_secs(1));
    ap.send(AgentEvent::ResponseDone {
        response_id: "r1".into(),
        status: ResponseStatus::Completed,
        usage: None,
    })
    .await;

    // After the timeout the slow call is answered with an error, then one response follows.
    let batch = ap.next().await;
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(
        batch,
        [
            AgentCommand::ToolResult {
                call_id: "c-slow".into(),
                output: "{\"error\":\"the tool did not answer within 5000 ms\"}".into()
            },
            AgentCommand::CreateResponse { instructions: None },
        ]
    );
    drop(cp.events);
    let (summary, _) = call.await.expect("call task");
    assert_eq!(summary.tool_calls, 2);
}

#[tokio::test(start_paused = true)]
async fn caller_hangup_during_a_tool_call_aborts_it() {
    let (caller, cp) = caller_pair(64);
    let (agent, mut ap) = agent_pair(REALTIME);
    let mut svc = services(config());
    svc.tools = Arc::new(TestTools);
    let start = Instant::now();
    let call = spawn_call(caller, async move { Ok(agent) }, svc);
    cp.send(started()).await;
    ap.send(AgentEvent::Ready).await;
    ap.send(tool_call("c1", "slow")).await;
    sleep(Duration::from_millis(100)).await;
    cp.send(CallerEvent::Hangup).await;
    assert_eq!(ap.next().await, [AgentCommand::Close]);
    let (summary, events) = call.await.expect("call task");
    assert_eq!(summary.end_reason, Some(EndReason::CallerHungUp));
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, CallEvent::ToolFinished { .. }))
    );
}

#[derive(Default)]
struct RecordingControl(Mutex<Vec<(String, CallAction)>>);

#[async_trait]
impl CallControl for RecordingControl {
    async fn execute(&self, call: &CallerInfo, action: &CallAction) -> Result<(), ControlError> {
        self.0
            .lock()
            .expect("not poisoned")
            .push((call.call_id.clone(), action.clone()));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn hangup_tool_executes_call_control_after_the_goodbye() {
    let (caller, mut cp) = caller_pair(64);
    let (agent, mut ap) = agent_pair(REALTIME);
    let control = Arc::new(RecordingControl::default());
    let mut svc = services(config());
    svc.tools = Arc::new(TestTools);
    svc.control = control.clone();
    let call = spawn_call(caller, async move { Ok(agent) }, svc);
    cp.send(started()).await;
    ap.send(AgentEvent::Ready).await;
    ap.send(tool_call("c1", "end_call")).await;
    assert_eq!(
        ap.next().await,
        [
            AgentCommand::ToolResult {
                call_id: "c1".into(),
                output: "{\"ok\":true}".into()
            },
            AgentCommand::CreateResponse { instructions: None }
        ]
    );
    ap.send(AgentEvent::ResponseStarted {
        response_id: "bye".into(),
    })
    .await;
    ap.send(agent_audio("bye", 1, 160)).await;
    ap.send(AgentEvent::ResponseDone {
        response_id: "bye".into(),
        status: ResponseStatus::Completed,
        usage: None,
    })
    .await;
    assert_eq!(cp.next().await.len(), 2);
    sleep(Duration::from_millis(300)).await;
    assert!(
        control.0.lock().expect("not poisoned").is_empty(),
        "goodbye not heard yet"
    );
    cp.send(CallerEvent::MarkPlayed(MarkId(1))).await;
    assert_eq!(cp.next().await, [CallerCommand::Close]);
    assert_eq!(ap.next().await, [AgentCommand::Close]);
    let (summary, _) = call.await.expect("call task");
    assert_eq!(summary.end_reason, Some(EndReason::HungUpByAgent));
    assert_eq!(
        *control.0.lock().expect("not poisoned"),
        [("CA1".to_string(), CallAction::Hangup)]
    );
}

#[tokio::test(start_paused = true)]
async fn agent_closing_closes_the_caller() {
    let (caller, mut cp) = caller_pair(64);
    let (agent, ap) = agent_pair(REALTIME);
    let call = spawn_call(caller, async move { Ok(agent) }, services(config()));
    cp.send(started()).await;
    ap.send(AgentEvent::Ready).await;
    drop(ap.events);
    assert_eq!(cp.next().await, [CallerCommand::Close]);
    let (summary, _) = call.await.expect("call task");
    assert_eq!(summary.end_reason, Some(EndReason::AgentClosed));
}

#[tokio::test(start_paused = true)]
async fn agent_transport_error_ends_the_call_and_closes_both() {
    let (caller, mut cp) = caller_pair(64);
    let (agent, mut ap) = agent_pair(REALTIME);
    let call = spawn_call(caller, async move { Ok(agent) }, services(config()));
    cp.send(started()).await;
    ap.send(AgentEvent::Ready).await;
    ap.events
        .send(Err(EndpointError::Transport("reset".into())))
        .await
        .expect("driver alive");
    assert_eq!(cp.next().await, [CallerCommand::Close]);
    assert_eq!(ap.next().await, [AgentCommand::Close]);
    let (summary, _) = call.await.expect("call task");
    assert_eq!(summary.end_reason, Some(EndReason::AgentFailed));
    assert_eq!(
        summary.end_detail.as_deref(),
        Some("transport error: reset")
    );
}

#[tokio::test(start_paused = true)]
async fn agent_connect_failure_closes_the_caller() {
    let (caller, mut cp) = caller_pair(64);
    let connect = async {
        sleep(Duration::from_millis(200)).await;
        Err::<MockAgent, _>(EndpointError::Protocol("HTTP 401".into()))
    };
    let call = spawn_call(caller, connect, services(config()));
    cp.send(started()).await;
    assert_eq!(cp.next().await, [CallerCommand::Close]);
    let (summary, _) = call.await.expect("call task");
    assert_eq!(summary.end_reason, Some(EndReason::AgentConnectFailed));
}

#[tokio::test(start_paused = true)]
async fn pending_connection_is_dropped_when_the_call_ends() {
    let (caller, cp) = caller_pair(64);
    let (guard_tx, guard_rx) = tokio::sync::oneshot::channel::<()>();
    let connect = async move {
        let _guard = guard_tx;
        std::future::pending::<()>().await;
        Err::<MockAgent, _>(EndpointError::Closed("unreachable".into()))
    };
    let call = spawn_call(caller, connect, services(config()));
    cp.send(started()).await;
    cp.send(CallerEvent::Hangup).await;
    let (summary, _) = call.await.expect("call task");
    assert_eq!(summary.end_reason, Some(EndReason::CallerHungUp));
    // The connection attempt was dropped with the call.
    assert!(guard_rx.await.is_err());
}

#[tokio::test(start_paused = true)]
async fn agent_connect_timeout_through_the_driver() {
    let (caller, mut cp) = caller_pair(64);
    let start = Instant::now();
    let call = spawn_call(
        caller,
        std::future::pending::<Result<MockAgent, EndpointError>>(),
        services(config()),
    );
    cp.send(started()).await;
    assert_eq!(cp.next().await, [CallerCommand::Close]);
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    let (summary, _) = call.await.expect("call task");
    assert_eq!(summary.end_reason, Some(EndReason::AgentConnectTimeout));
}

#[tokio::test(start_paused = true)]
async fn cancellation_token_ends_the_call_cleanly() {
    let (caller, mut cp) = caller_pair(64);
    let (agent, mut ap) = agent_pair(REALTIME);
    let svc = services(config());
    let token = svc.shutdown.clone();
    let call = spawn_call(caller, async move { Ok(agent) }, svc);
    cp.send(started()).await;
    ap.send(AgentEvent::Ready).await;
    sleep(Duration::from_secs(30)).await;
    token.cancel();
    assert_eq!(cp.next().await, [CallerCommand::Close]);
    assert_eq!(ap.next().await, [AgentCommand::Close]);
    let (summary, events) = call.await.expect("call task");
    assert_eq!(summary.end_reason, Some(EndReason::Shutdown));
    assert_eq!(summary.duration, Duration::from_secs(30));
    assert!(matches!(events.last(), Some(CallEvent::Ended(_))));
}

#[tokio::test(start_paused = true)]
async fn stuck_caller_ends_the_call_and_the_agent_is_closed() {
    // The caller side accepts one write and then stops reading.
    let (caller, cp) = caller_pair(1);
    let (agent, mut ap) = agent_pair(REALTIME);
    let start = Instant::now();
    let call = spawn_call(caller, async move { Ok(agent) }, services(config()));
    cp.send(started()).await;
    ap.send(AgentEvent::Ready).await;
    ap.send(AgentEvent::ResponseStarted {
        response_id: "r1".into(),
    })
    .await;
    ap.send(agent_audio("r1", 1, 160)).await;
    // Let the driver write the first chunk before the second arrives (chunks that arrive
    // together leave in one write, which the stuck caller would still accept).
    tokio::task::yield_now().await;
    ap.send(agent_audio("r1", 2, 160)).await;
    assert_eq!(ap.next().await, [AgentCommand::Close]);
    let (summary, _) = call.await.expect("call task");
    assert_eq!(summary.end_reason, Some(EndReason::CallerError));
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    drop(cp);
}

#[tokio::test(start_paused = true)]
async fn failed_transfer_is_fed_back_to_the_engine_and_the_call_goes_on() {
    let (caller, cp) = caller_pair(64);
    let (agent, mut ap) = agent_pair(REALTIME);
    let mut svc = services(config());
    svc.tools = Arc::new(TestTools);
    // `NoCallControl` cannot transfer.
    let call = spawn_call(caller, async move { Ok(agent) }, svc);
    cp.send(started()).await;
    ap.send(AgentEvent::Ready).await;
    ap.send(tool_call("c1", "transfer")).await;
    assert_eq!(
        ap.next().await.len(),
        2,
        "tool result and the goodbye's request"
    );
    ap.send(AgentEvent::ResponseStarted {
        response_id: "t".into(),
    })
    .await;
    ap.send(AgentEvent::ResponseDone {
        response_id: "t".into(),
        status: ResponseStatus::Completed,
        usage: None,
    })
    .await;
    // The transfer failed: the model is told and asked to go on; the call is not closed.
    assert_eq!(
        ap.next().await,
        [
            AgentCommand::AddContext {
                text: "The transfer to +15550100 failed (no call control configured). The call \
                       is still connected: tell the caller and continue helping them."
                    .into()
            },
            AgentCommand::CreateResponse { instructions: None },
        ]
    );
    cp.send(CallerEvent::Audio(ulaw(3, 160))).await;
    assert_eq!(audio_of(&ap.next().await), [3]);
    cp.send(CallerEvent::Hangup).await;
    let (summary, events) = call.await.expect("call task");
    assert_eq!(summary.end_reason, Some(EndReason::CallerHungUp));
    assert!(events.iter().any(|e| matches!(
        e,
        CallEvent::Error {
            source: bridge_core::engine::ErrorSource::Control,
            fatal: false,
            ..
        }
    )));
}

#[tokio::test(start_paused = true)]
async fn stalled_caller_reader_blocks_neither_caller_audio_nor_barge_in() {
    // Twilio stops reading our writes after the first one (its socket buffer is full).
    let (caller, cp) = caller_pair(1);
    let (agent, mut ap) = agent_pair(REALTIME);
    let start = Instant::now();
    let call = spawn_call(caller, async move { Ok(agent) }, services(config()));
    cp.send(started()).await;
    ap.send(AgentEvent::Ready).await;
    ap.send(AgentEvent::ResponseStarted {
        response_id: "r1".into(),
    })
    .await;
    ap.send(agent_audio("r1", 1, 160)).await;
    tokio::task::yield_now().await;
    // Seconds of agent audio arrive; none of it can be written to the caller.
    for n in 2..=20 {
        ap.send(agent_audio("r1", n, 160)).await;
    }
    sleep(Duration::from_secs(1)).await;
    // The caller's audio still reaches the agent, frame by frame.
    for n in 0..3 {
        cp.send(CallerEvent::Audio(ulaw(0x40 + n, 160))).await;
        assert_eq!(audio_of(&ap.next().await), [0x40 + n]);
    }
    // And a barge-in still reaches the agent at once: the truncation of what was heard.
    ap.send(AgentEvent::SpeechStarted).await;
    assert_eq!(
        ap.next().await,
        [AgentCommand::Truncate {
            item_id: "r1-item".into(),
            audio_end_ms: 0,
        }]
    );
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    // The caller side stays blocked: after `send_timeout` the call ends, the agent is closed.
    assert_eq!(ap.next().await, [AgentCommand::Close]);
    let (summary, _) = call.await.expect("call task");
    assert_eq!(summary.end_reason, Some(EndReason::CallerError));
    assert_eq!(summary.end_detail.as_deref(), Some("send timed out"));
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    drop(cp);
}

#[tokio::test(start_paused = true)]
async fn a_full_outbox_ends_the_call_with_a_clear_reason() {
    let (agent, ap) = agent_pair(REALTIME);
    let (etx, erx) = mpsc::channel(1);
    // The stream started, then the caller side stopped taking anything.
    etx.send(Ok(started())).await.expect("open");
    struct Started {
        events: mpsc::Receiver<Result<CallerEvent, EndpointError>>,
    }
    #[async_trait]
    impl Endpoint for Started {
        type Event = CallerEvent;
        type Command = CallerCommand;
        fn poll_recv(
            &mut self,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<CallerEvent, EndpointError>>> {
            self.events.poll_recv(cx)
        }
        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
            Poll::Pending
        }
        fn start_send(&mut self, _command: CallerCommand) -> Result<(), EndpointError> {
            unreachable!("never ready")
        }
        fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
            Poll::Pending
        }
        async fn close(&mut self) -> Result<(), EndpointError> {
            std::future::pending().await
        }
    }
    impl CallerEndpoint for Started {
        fn format(&self) -> AudioFormat {
            AudioFormat::Mulaw8k
        }
    }
    let call = tokio::spawn(async move {
        run_call(
            Started { events: erx },
            async move { Ok(agent) },
            services(config()),
            &mut bridge_core::driver::NoopObserver,
        )
        .await
    });
    ap.send(AgentEvent::Ready).await;
    ap.send(AgentEvent::ResponseStarted {
        response_id: "r1".into(),
    })
    .await;
    // 300 chunks = 600 commands (audio + mark): more than the outbox holds.
    for n in 0..300u16 {
        if ap
            .events
            .send(Ok(agent_audio("r1", n as u8, 160)))
            .await
            .is_err()
        {
            break;
        }
    }
    let summary = call.await.expect("call task");
    assert_eq!(summary.end_reason, Some(EndReason::CallerError));
    assert_eq!(
        summary.end_detail.as_deref(),
        Some("the caller side is not reading: 512 commands queued for it; the call was ended")
    );
    drop(etx);
}

/// A lost agent through the driver: the endpoint is dropped, the `Reconnect` connector is
/// asked for attempt 1, the fresh endpoint gets the replayed conversation and the resume
/// request, the caller hears the hold audio meanwhile, and caller audio flows to the new
/// agent.
#[tokio::test(start_paused = true)]
async fn a_lost_agent_is_replaced_through_the_reconnect_connector() {
    use bridge_core::agent::{ContextItem, Speaker};
    use bridge_core::engine::ReconnectConfig;

    let (caller, mut cp) = caller_pair(64);
    let (first, mut ap1) = agent_pair(REALTIME);
    let (second, mut ap2) = agent_pair(REALTIME);
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let spare = Arc::new(Mutex::new(Some(second)));
    let reconnect = {
        let attempts = Arc::clone(&attempts);
        move |attempt: u32| {
            attempts.lock().unwrap().push(attempt);
            let next = spare.lock().unwrap().take();
            async move { next.ok_or_else(|| EndpointError::Transport("no more agents".into())) }
        }
    };
    let config = CallConfig {
        greeting: None,
        reconnect: Some(ReconnectConfig {
            hold_audio: Some(ulaw(0x7f, 160)),
            resume_instructions: Some("resume".into()),
            ..ReconnectConfig::default()
        }),
        ..config()
    };
    let call = spawn_reconnecting_call(caller, first, reconnect, config);
    cp.send(started()).await;
    ap1.send(AgentEvent::Ready).await;
    ap1.send(AgentEvent::Transcript {
        speaker: Speaker::Caller,
        text: "Hi there".into(),
        is_final: true,
        timing: None,
        item_id: Some("u1".into()),
    })
    .await;
    ap1.events
        .send(Err(EndpointError::Transport("reset".into())))
        .await
        .expect("driver alive");
    // The hold audio with its mark.
    let hold = cp.next().await;
    assert!(
        matches!(&hold[..], [CallerCommand::Audio(a), CallerCommand::Mark(_)]
        if a.decode().unwrap() == vec![0x7f; 160]),
        "{hold:?}"
    );
    ap2.send(AgentEvent::Ready).await;
    assert_eq!(
        ap2.next().await,
        [
            AgentCommand::Restore(ContextItem::Message {
                speaker: Speaker::Caller,
                text: "Hi there".into()
            }),
            AgentCommand::CreateResponse {
                instructions: Some("resume".into())
            },
        ]
    );
    cp.send(CallerEvent::Audio(ulaw(0x42, 160))).await;
    assert_eq!(audio_of(&ap2.next().await), [0x42]);
    assert_eq!(*attempts.lock().unwrap(), [1]);
    // Nothing more went to the lost agent.
    assert!(ap1.writes.try_recv().is_err());
    cp.send(CallerEvent::Hangup).await;
    let (summary, events) = call.await.expect("call task");
    assert_eq!(summary.end_reason, Some(EndReason::CallerHungUp));
    assert_eq!(summary.reconnects, 1);
    assert!(events.iter().any(|e| matches!(
        e,
        CallEvent::AgentReconnected {
            attempts: 1,
            restored: 1,
            ..
        }
    )));
}

/// A REST call control that never answers (Twilio's API hanging), counting its calls.
#[derive(Default)]
struct NeverAnswers(tokio::sync::Notify);

#[async_trait]
impl CallControl for NeverAnswers {
    async fn execute(&self, _call: &CallerInfo, _action: &CallAction) -> Result<(), ControlError> {
        self.0.notify_one();
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn call_control_in_flight_blocks_neither_audio_nor_barge_in() {
    let (caller, mut cp) = caller_pair(64);
    let (agent, mut ap) = agent_pair(REALTIME);
    let control = Arc::new(NeverAnswers::default());
    let mut svc = services(config());
    svc.tools = Arc::new(TestTools);
    svc.control = control.clone();
    let control_timeout = svc.config.control_timeout;
    let start = Instant::now();
    let call = spawn_call(caller, async move { Ok(agent) }, svc);
    cp.send(started()).await;
    ap.send(AgentEvent::Ready).await;
    ap.send(tool_call("c1", "transfer")).await;
    assert_eq!(
        ap.next().await.len(),
        2,
        "tool result and the goodbye's request"
    );
    ap.send(AgentEvent::ResponseStarted {
        response_id: "t".into(),
    })
    .await;
    ap.send(AgentEvent::ResponseDone {
        response_id: "t".into(),
        status: ResponseStatus::Completed,
        usage: None,
    })
    .await;
    // The transfer's REST request is on its way, and gets no answer.
    control.0.notified().await;

    // Caller audio still reaches the agent.
    cp.send(CallerEvent::Audio(ulaw(3, 160))).await;
    assert_eq!(audio_of(&ap.next().await), [3]);
    // Agent audio still reaches the caller, and a barge-in still clears it at once.
    ap.send(AgentEvent::ResponseStarted {
        response_id: "r2".into(),
    })
    .await;
    ap.send(agent_audio("r2", 4, 160)).await;
    let batch = cp.next().await;
    assert_eq!(batch.len(), 2, "the piece and its mark: {batch:?}");
    ap.send(AgentEvent::SpeechStarted).await;
    assert_eq!(cp.next().await, [CallerCommand::Clear]);
    assert_eq!(
        ap.next().await,
        [AgentCommand::Truncate {
            item_id: "r2-item".into(),
            audio_end_ms: 0,
        }]
    );
    ap.send(AgentEvent::ResponseDone {
        response_id: "r2".into(),
        status: ResponseStatus::Cancelled,
        usage: None,
    })
    .await;
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "nothing waited for the REST call"
    );

    // `control_timeout` later the failure goes back to the engine: the model is told (its
    // answer is requested once the caller, who is still speaking, stops).
    assert_eq!(
        ap.next().await,
        [AgentCommand::AddContext {
            text: "The transfer to +15550100 failed (timed out). The call is still connected: \
                   tell the caller and continue helping them."
                .into()
        }]
    );
    assert_eq!(start.elapsed(), control_timeout);
    cp.send(CallerEvent::Hangup).await;
    let (summary, events) = call.await.expect("call task");
    assert_eq!(summary.end_reason, Some(EndReason::CallerHungUp));
    assert!(events.iter().any(|e| matches!(
        e,
        CallEvent::Error {
            source: bridge_core::engine::ErrorSource::Control,
            message,
            fatal: false,
            ..
        } if message.contains("timed out")
    )));
}

/// A REST call control that answers `Ok` when the test says so.
#[derive(Default)]
struct AnswersLater {
    called: tokio::sync::Notify,
    answer: tokio::sync::Notify,
}

#[async_trait]
impl CallControl for AnswersLater {
    async fn execute(&self, _call: &CallerInfo, _action: &CallAction) -> Result<(), ControlError> {
        self.called.notify_one();
        self.answer.notified().await;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn the_stream_ending_while_a_transfer_is_in_flight_waits_for_its_result() {
    let (caller, cp) = caller_pair(64);
    let (agent, mut ap) = agent_pair(REALTIME);
    let control = Arc::new(AnswersLater::default());
    let mut svc = services(config());
    svc.tools = Arc::new(TestTools);
    svc.control = control.clone();
    let call = spawn_call(caller, async move { Ok(agent) }, svc);
    cp.send(started()).await;
    ap.send(AgentEvent::Ready).await;
    ap.send(tool_call("c1", "transfer")).await;
    assert_eq!(ap.next().await.len(), 2);
    ap.send(AgentEvent::ResponseStarted {
        response_id: "t".into(),
    })
    .await;
    ap.send(AgentEvent::ResponseDone {
        response_id: "t".into(),
        status: ResponseStatus::Completed,
        usage: None,
    })
    .await;
    control.called.notified().await;
    // Twilio stops the stream as the new TwiML takes over, before the REST answer.
    cp.send(CallerEvent::Hangup).await;
    control.answer.notify_one();
    assert_eq!(ap.next().await, [AgentCommand::Close]);
    let (summary, _) = call.await.expect("call task");
    assert_eq!(summary.end_reason, Some(EndReason::Transferred));
}

/// Make-before-break recycling through the driver: when the session is due, a standby is
/// opened through the `Reconnect` connector while the first agent keeps getting every caller
/// frame; the standby's own audio before the switch never reaches the caller; once it is
/// ready (at a pause) the first agent is closed, the standby gets the replayed conversation
/// and then every following caller frame. Each frame went to exactly one agent, in order.
#[tokio::test(start_paused = true)]
async fn recycling_switches_to_a_standby_opened_through_the_reconnect_connector() {
    use bridge_core::agent::{ContextItem, Speaker};
    use bridge_core::engine::ReconnectConfig;

    let (caller, mut cp) = caller_pair(64);
    let (first, mut ap1) = agent_pair(REALTIME);
    let (second, mut ap2) = agent_pair(REALTIME);
    let (attempt_tx, mut attempts) = mpsc::unbounded_channel();
    let spare = Arc::new(Mutex::new(Some(second)));
    let reconnect = move |attempt: u32| {
        attempt_tx.send(attempt).ok();
        let next = spare.lock().unwrap().take();
        async move { next.ok_or_else(|| EndpointError::Transport("no more agents".into())) }
    };
    let config = CallConfig {
        greeting: None,
        reconnect: Some(ReconnectConfig {
            hold_audio: Some(ulaw(0x7f, 160)),
            recycle_after: Some(Duration::from_secs(60)),
            ..ReconnectConfig::default()
        }),
        ..config()
    };
    let call = spawn_reconnecting_call(caller, first, reconnect, config);
    cp.send(started()).await;
    ap1.send(AgentEvent::Ready).await;
    ap1.send(AgentEvent::Transcript {
        speaker: Speaker::Caller,
        text: "Hi there".into(),
        is_final: true,
        timing: None,
        item_id: Some("u1".into()),
    })
    .await;
    // The caller is speaking when the session becomes due: no pause.
    ap1.send(AgentEvent::SpeechStarted).await;
    cp.send(CallerEvent::Audio(ulaw(0x01, 160))).await;
    assert_eq!(audio_of(&ap1.next().await), [0x01]);
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(attempts.recv().await, Some(1), "a standby requested");
    // The standby talks before the switch: not the call's.
    ap2.send(agent_audio("x1", 0x55, 160)).await;
    ap2.send(AgentEvent::Ready).await;
    cp.send(CallerEvent::Audio(ulaw(0x02, 160))).await;
    assert_eq!(audio_of(&ap1.next().await), [0x02], "still the first agent");
    // The caller stops and the first agent answers: the pause comes after that answer.
    ap1.send(AgentEvent::SpeechStopped).await;
    ap1.send(AgentEvent::ResponseStarted {
        response_id: "r1".into(),
    })
    .await;
    cp.send(CallerEvent::Audio(ulaw(0x03, 160))).await;
    assert_eq!(audio_of(&ap1.next().await), [0x03]);
    ap1.send(AgentEvent::ResponseDone {
        response_id: "r1".into(),
        status: ResponseStatus::Completed,
        usage: None,
    })
    .await;
    // The switch: the first agent is closed, the standby gets the conversation.
    assert_eq!(ap1.next().await, [AgentCommand::Close]);
    assert_eq!(
        ap2.next().await,
        [AgentCommand::Restore(ContextItem::Message {
            speaker: Speaker::Caller,
            text: "Hi there".into()
        })]
    );
    cp.send(CallerEvent::Audio(ulaw(0x04, 160))).await;
    assert_eq!(audio_of(&ap2.next().await), [0x04]);
    // The new agent's answer reaches the caller; nothing of the standby's stray audio did.
    ap2.send(agent_audio("n1", 0x22, 160)).await;
    let heard = cp.next().await;
    assert!(
        matches!(&heard[..], [CallerCommand::Audio(a), CallerCommand::Mark(_)]
        if a.decode().unwrap() == vec![0x22; 160]),
        "{heard:?}"
    );
    cp.send(CallerEvent::Hangup).await;
    let (summary, events) = call.await.expect("call task");
    assert_eq!(summary.end_reason, Some(EndReason::CallerHungUp));
    assert_eq!((summary.recycles, summary.reconnects), (1, 0));
    assert!(events.iter().any(|e| matches!(
        e,
        CallEvent::AgentRecycled {
            gap: Duration::ZERO,
            restored: 1,
        }
    )));
    assert_eq!(ap2.next().await, [AgentCommand::Close], "closed at the end");
    assert!(ap1.writes.try_recv().is_err(), "nothing more to the first");
    assert!(attempts.try_recv().is_err(), "one standby");
}

/// A standby that starts with the conversation (`restore_at_start`) gets it before the
/// driver reads it at all; a standby that fails to connect is not a call failure: the next
/// one is opened after the backoff; the call ending closes the standby.
#[tokio::test(start_paused = true)]
async fn a_standby_gets_its_history_first_and_a_failed_one_is_retried() {
    use bridge_core::agent::{ContextItem, Speaker};
    use bridge_core::engine::ReconnectConfig;

    const LIVE: AgentCapabilities = AgentCapabilities {
        truncation: false,
        reports_speech: false,
        continuous_input: true,
        restore_at_start: true,
        final_close: true,
        ..REALTIME
    };
    let (caller, cp) = caller_pair(64);
    let (first, mut ap1) = agent_pair(LIVE);
    let (second, mut ap2) = agent_pair(LIVE);
    let (attempt_tx, mut attempts) = mpsc::unbounded_channel();
    let spare = Arc::new(Mutex::new(Some(second)));
    let reconnect = move |attempt: u32| {
        attempt_tx.send(attempt).ok();
        // The first standby attempt fails, the second gets the spare agent.
        let next = (attempt > 1)
            .then(|| spare.lock().unwrap().take())
            .flatten();
        async move { next.ok_or_else(|| EndpointError::Transport("HTTP 503".into())) }
    };
    let config = CallConfig {
        greeting: None,
        reconnect: Some(ReconnectConfig::default()),
        ..config()
    };
    let call = spawn_reconnecting_call(caller, first, reconnect, config);
    cp.send(started()).await;
    ap1.send(AgentEvent::Ready).await;
    ap1.send(AgentEvent::Transcript {
        speaker: Speaker::Caller,
        text: "Hello?".into(),
        is_final: true,
        timing: None,
        item_id: None,
    })
    .await;
    ap1.send(AgentEvent::RecycleNow).await;
    assert_eq!(attempts.recv().await, Some(1));
    // The failure costs the call nothing: caller audio still reaches the first agent.
    cp.send(CallerEvent::Audio(ulaw(0x01, 160))).await;
    assert_eq!(audio_of(&ap1.next().await), [0x01]);
    assert_eq!(attempts.recv().await, Some(2), "retried after the backoff");
    assert_eq!(
        ap2.next().await,
        [AgentCommand::Restore(ContextItem::Message {
            speaker: Speaker::Caller,
            text: "Hello?".into()
        })],
        "the history goes first"
    );
    ap2.send(AgentEvent::Ready).await;
    cp.send(CallerEvent::Audio(ulaw(0x02, 160))).await;
    assert_eq!(audio_of(&ap1.next().await), [0x02], "no pause reported yet");
    cp.send(CallerEvent::Hangup).await;
    let (summary, _) = call.await.expect("call task");
    assert_eq!(summary.end_reason, Some(EndReason::CallerHungUp));
    assert_eq!(summary.recycles, 0);
    assert_eq!(summary.recycle_standby_failures, 1);
    assert_eq!(ap1.next().await, [AgentCommand::Close]);
    assert_eq!(
        ap2.next().await,
        [AgentCommand::Close],
        "the standby is closed too"
    );
}
