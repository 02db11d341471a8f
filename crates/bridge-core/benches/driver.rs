//! Per-frame cost of the driver (`run_call`) around the engine: one caller frame relayed to the
//! agent, one agent chunk relayed to the caller (with the previous piece's mark echoed), over
//! in-memory endpoints (channels), on a current-thread runtime. What is measured is the
//! driver's loop: wake-ups, reads, outbox, writes, the engine's handling; the channels and
//! `block_on` around each iteration are the same for any driver.
//!
//! Run: `cargo bench -p bridge-core --bench driver`.
#![allow(missing_docs)]

use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bridge_core::agent::{AgentCapabilities, AgentCommand, AgentEndpoint, AgentEvent};
use bridge_core::caller::{CallerCommand, CallerEndpoint, CallerEvent, CallerInfo};
use bridge_core::driver::{CallServices, NoCallControl, NoopObserver, run_call};
use bridge_core::engine::CallConfig;
use bridge_core::format::{AudioFormat, Base64Audio};
use bridge_core::tools::NoTools;
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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
#[async_trait]
impl<E: Send, C: Send> bridge_core::caller::Endpoint for Side<E, C> {
    type Event = E;
    type Command = C;
    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<E, bridge_core::caller::EndpointError>>> {
        self.events.poll_recv(cx).map(|e| e.map(Ok))
    }
    fn poll_ready(
        &mut self,
        _cx: &mut Context<'_>,
    ) -> Poll<Result<(), bridge_core::caller::EndpointError>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(&mut self, command: C) -> Result<(), bridge_core::caller::EndpointError> {
        self.queued.push(command);
        Ok(())
    }
    fn poll_flush(
        &mut self,
        _cx: &mut Context<'_>,
    ) -> Poll<Result<(), bridge_core::caller::EndpointError>> {
        let _ = self.writes.send(std::mem::take(&mut self.queued));
        Poll::Ready(Ok(()))
    }
    async fn close(&mut self) -> Result<(), bridge_core::caller::EndpointError> {
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

type Events<E> = mpsc::UnboundedSender<E>;
type Writes<C> = mpsc::UnboundedReceiver<Vec<C>>;

fn side<E, C>() -> (Side<E, C>, Events<E>, Writes<C>) {
    let (etx, erx) = mpsc::unbounded_channel();
    let (wtx, wrx) = mpsc::unbounded_channel();
    (
        Side {
            events: erx,
            writes: wtx,
            queued: Vec::new(),
        },
        etx,
        wrx,
    )
}

struct Running {
    rt: tokio::runtime::Runtime,
    caller: Events<CallerEvent>,
    caller_writes: Writes<CallerCommand>,
    agent: Events<AgentEvent>,
    agent_writes: Writes<AgentCommand>,
}

/// A call with the stream started, the agent ready and a response running.
fn running() -> Running {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let (caller, caller_tx, mut caller_writes) = side::<CallerEvent, CallerCommand>();
    let (agent, agent_tx, mut agent_writes) = side::<AgentEvent, AgentCommand>();
    let services = CallServices {
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
    };
    rt.spawn(async move {
        run_call(
            caller,
            async move { Ok(agent) },
            services,
            &mut NoopObserver,
        )
        .await
    });
    caller_tx
        .send(CallerEvent::Started(CallerInfo {
            call_id: "CA00000000000000000000000000000001".into(),
            stream_id: "MZ00000000000000000000000000000001".into(),
            ..CallerInfo::default()
        }))
        .ok();
    agent_tx.send(AgentEvent::Ready).ok();
    agent_tx
        .send(AgentEvent::ResponseStarted {
            response_id: "resp_0000000000000000000001".into(),
        })
        .ok();
    rt.block_on(async {
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
    });
    while caller_writes.try_recv().is_ok() {}
    while agent_writes.try_recv().is_ok() {}
    Running {
        rt,
        caller: caller_tx,
        caller_writes,
        agent: agent_tx,
        agent_writes,
    }
}

fn bench(c: &mut Criterion) {
    let frame = Base64Audio::encode(&[0xFF; 160]);
    let mut call = running();
    c.bench_function("driver/caller_frame", |b| {
        b.iter(|| {
            call.caller.send(CallerEvent::Audio(frame.clone())).ok();
            let batch = call.rt.block_on(call.agent_writes.recv());
            assert_eq!(batch.map(|b| b.len()), Some(1));
        })
    });
    drop(call);

    let mut call = running();
    let mut echo = None;
    c.bench_function("driver/agent_chunk_20ms", |b| {
        b.iter(|| {
            if let Some(id) = echo.take() {
                call.caller.send(CallerEvent::MarkPlayed(id)).ok();
            }
            call.agent
                .send(AgentEvent::Audio {
                    audio: frame.clone(),
                    response_id: Some("resp_0000000000000000000001".into()),
                    item_id: Some("item_0000000000000000000001".into()),
                })
                .ok();
            let batch = call
                .rt
                .block_on(call.caller_writes.recv())
                .expect("a write");
            for command in batch {
                if let CallerCommand::Mark(id) = command {
                    echo = Some(id);
                }
            }
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
