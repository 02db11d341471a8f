//! `cargo xtask mock-agent`: the test kit's mock OpenAI Realtime server, standalone.
//!
//! Point a locally running server at it (`OPENAI_BASE_URL=http://127.0.0.1:PORT/v1`, any API
//! key) to try calls without an OpenAI account: the mock greets, answers every caller turn its
//! energy VAD detects with a scripted reply, and honours barge-in and truncation like the
//! service. Its audio is a 440 Hz tone whose every 20 ms frame carries a stamp, so what a caller
//! hears is identifiable. Each session's events are logged compactly: consecutive events of one
//! side share a line, and the streaming events (audio appends, audio and transcript deltas) are
//! only counted, in a line printed before the next other event (or every few seconds).
//!
//! `--live` runs the mock GPT-Live server instead (for `agent.backend = "live"`): it says the
//! greeting it is sent, answers each caller turn, and stops when the caller talks over it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use testkit::live::{LiveTurn, MockLive};
use testkit::openai::{MockRealtime, ResponseScript, Script, SessionHandle};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Arguments of `cargo xtask mock-agent`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub(crate) struct Args {
    /// Port to listen on (127.0.0.1); default: any free port.
    #[arg(long, value_name = "N")]
    pub(crate) port: Option<u16>,
    /// Run the mock GPT-Live server instead (for `agent.backend = "live"`).
    #[arg(long)]
    pub(crate) live: bool,
}

/// The greeting's transcript and length.
pub(crate) const GREETING: (&str, u32) = (
    "Hello! You are talking to the phone-agent mock agent. How can I help?",
    2500,
);
/// The reply to every caller turn.
pub(crate) const REPLY: (&str, u32) = (
    "Thanks, I heard you. This is a scripted reply from the mock agent.",
    2000,
);

/// The standalone mock's script: a greeting, then the same reply to every caller turn.
pub(crate) fn script() -> Script {
    Script::new()
        .then(ResponseScript::say(GREETING.0, GREETING.1))
        .fallback(ResponseScript::say(REPLY.0, REPLY.1))
}

/// How often the event log looks for new events.
const LOG_INTERVAL: Duration = Duration::from_millis(100);
/// Counted streaming events are printed at least this often.
const STREAM_FLUSH: Duration = Duration::from_secs(3);

/// Runs `cargo xtask mock-agent` until Ctrl-C.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if args.live {
        return run_live(args.port).await;
    }
    let mock = MockRealtime::builder()
        .script(script())
        .start()
        .await
        .context("starting the mock OpenAI Realtime server")?;
    let addr = match args.port {
        None => mock.addr(),
        Some(port) => {
            // The mock binds an ephemeral port; forward the requested one to it.
            let listener = TcpListener::bind(("127.0.0.1", port))
                .await
                .with_context(|| format!("binding 127.0.0.1:{port}"))?;
            let addr = listener.local_addr()?;
            tokio::spawn(forward(listener, mock.addr()));
            addr
        }
    };
    println!("Mock OpenAI Realtime agent listening on {addr}. Run the server with:");
    println!();
    println!("    OPENAI_BASE_URL=http://{addr}/v1");
    println!("    OPENAI_API_KEY=anything");
    println!();
    println!(
        "It greets ({} ms: {:?}) and answers each caller turn ({} ms: {:?}) with an identifiable 440 Hz tone.",
        GREETING.1, GREETING.0, REPLY.1, REPLY.0
    );
    println!(
        "Events: `client` = sent by the server under test, `mock` = sent by the mock. Ctrl-C to stop."
    );
    println!();
    let logger = tokio::spawn(log_sessions(mock.clone()));
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    logger.abort();
    mock.shutdown();
    println!("\nmock-agent: stopped");
    Ok(())
}

/// Scripted GPT-Live replies (the script is finite; this many caller turns are answered).
const LIVE_TURNS: usize = 100;

/// `--live`: the mock GPT-Live server, with a compact log of each session.
async fn run_live(port: Option<u16>) -> anyhow::Result<()> {
    let mock = MockLive::builder()
        .script((0..LIVE_TURNS).map(|_| LiveTurn::say(REPLY.0, REPLY.1)))
        .start()
        .await
        .context("starting the mock GPT-Live server")?;
    let addr = match port {
        None => mock.addr(),
        Some(port) => {
            let listener = TcpListener::bind(("127.0.0.1", port))
                .await
                .with_context(|| format!("binding 127.0.0.1:{port}"))?;
            let addr = listener.local_addr()?;
            tokio::spawn(forward(listener, mock.addr()));
            addr
        }
    };
    println!("Mock GPT-Live server listening on {addr}. Run the server with:");
    println!();
    println!("    OPENAI_BASE_URL=http://{addr}/v1");
    println!("    OPENAI_API_KEY=anything");
    println!("    PHONE_AGENT_AGENT__BACKEND=live");
    println!();
    println!(
        "It says the greeting it is sent and answers each caller turn ({} ms: {:?}) with an identifiable 440 Hz tone; caller speech over it stops it.",
        REPLY.1, REPLY.0
    );
    println!("Ctrl-C to stop.");
    println!();
    let logger = tokio::spawn(log_live_sessions(mock.clone()));
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    logger.abort();
    mock.shutdown();
    println!("\nmock-agent: stopped");
    Ok(())
}

/// Prints each GPT-Live session's non-audio events as they happen.
async fn log_live_sessions(mock: MockLive) {
    let mut seen: Vec<(usize, usize)> = Vec::new();
    let mut tick = tokio::time::interval(LOG_INTERVAL);
    loop {
        tick.tick().await;
        for (i, session) in mock.sessions().iter().enumerate() {
            if seen.len() <= i {
                seen.push((0, 0));
            }
            let (client_seen, server_seen) = seen[i];
            let client = session.client_events();
            let server = session.server_events();
            let n = session.number();
            for e in client.iter().skip(client_seen) {
                println!("session {n} client {}", e.event_type);
            }
            for e in server
                .iter()
                .skip(server_seen)
                .filter(|e| e.event_type != "session.output_audio.delta")
            {
                println!("session {n} mock   {}", e.event_type);
            }
            seen[i] = (client.len(), server.len());
        }
    }
}

/// Forwards every connection on `listener` to `target`.
async fn forward(listener: TcpListener, target: SocketAddr) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(target).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        });
    }
}

/// Logs every session's new events, forever.
async fn log_sessions(mock: MockRealtime) {
    let mut watched = 0;
    let mut tick = tokio::time::interval(LOG_INTERVAL);
    loop {
        tick.tick().await;
        let sessions = mock.sessions();
        for session in sessions.into_iter().skip(watched) {
            watched += 1;
            tokio::spawn(log_session(session));
        }
    }
}

/// One event for the log: when, from whom, which type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Logged {
    pub(crate) at: Instant,
    pub(crate) from_client: bool,
    pub(crate) event_type: String,
}

/// Whether an event type is part of an audio or text stream (counted, not listed).
pub(crate) fn is_streaming(event_type: &str) -> bool {
    event_type == "input_audio_buffer.append" || event_type.ends_with(".delta")
}

fn side(from_client: bool) -> &'static str {
    if from_client { "client" } else { "mock" }
}

fn line(session: usize, opened: Instant, at: Instant, label: &str, text: &str) -> String {
    format!(
        "[s{session}] {:>8}  {label:<6}  {text}",
        format!(
            "+{} ms",
            crate::report::ms(at.saturating_duration_since(opened))
        ),
    )
}

/// `type ×n` for every counted type, in first-seen order.
fn counted(counts: &[(&str, usize)]) -> String {
    let mut text = String::new();
    for (k, (t, n)) in counts.iter().enumerate() {
        if k > 0 {
            text.push_str(", ");
        }
        text.push_str(t);
        if *n > 1 {
            let _ = write!(text, " ×{n}");
        }
    }
    text
}

/// Groups consecutive events of one direction into lines; within a line, types keep the order
/// they first appeared in and repeated types are counted (`conversation.item.added ×2`).
pub(crate) fn compact(events: &[Logged], opened: Instant, session: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let first = &events[i];
        let mut counts: Vec<(&str, usize)> = Vec::new();
        let mut j = i;
        while j < events.len() && events[j].from_client == first.from_client {
            let t = events[j].event_type.as_str();
            match counts.iter_mut().find(|(k, _)| *k == t) {
                Some((_, n)) => *n += 1,
                None => counts.push((t, 1)),
            }
            j += 1;
        }
        let text = counted(&counts);
        lines.push(line(
            session,
            opened,
            first.at,
            side(first.from_client),
            &text,
        ));
        i = j;
    }
    lines
}

/// The event log of one session: turns batches of new events into lines.
#[derive(Debug)]
pub(crate) struct EventLog {
    session: usize,
    opened: Instant,
    /// Streaming events not printed yet: `(from_client, type, count)` in first-seen order.
    pending: Vec<(bool, String, usize)>,
    pending_since: Option<Instant>,
}

impl EventLog {
    /// A log for session number `session`, opened at `opened`.
    pub(crate) fn new(session: usize, opened: Instant) -> Self {
        EventLog {
            session,
            opened,
            pending: Vec::new(),
            pending_since: None,
        }
    }

    fn flush_pending(&mut self, out: &mut Vec<String>) {
        let Some(since) = self.pending_since.take() else {
            return;
        };
        let mut parts = Vec::new();
        for from_client in [true, false] {
            let counts: Vec<(&str, usize)> = self
                .pending
                .iter()
                .filter(|(c, _, _)| *c == from_client)
                .map(|(_, t, n)| (t.as_str(), *n))
                .collect();
            if !counts.is_empty() {
                parts.push(format!("{} {}", side(from_client), counted(&counts)));
            }
        }
        self.pending.clear();
        out.push(line(
            self.session,
            self.opened,
            since,
            "stream",
            &parts.join(" · "),
        ));
    }

    /// Lines for `events` (in time order), seen at `now`; `closing` flushes everything.
    pub(crate) fn feed(&mut self, events: &[Logged], now: Instant, closing: bool) -> Vec<String> {
        let mut out = Vec::new();
        let mut group: Vec<Logged> = Vec::new();
        for e in events {
            if is_streaming(&e.event_type) {
                self.pending_since.get_or_insert(e.at);
                match self
                    .pending
                    .iter_mut()
                    .find(|(c, t, _)| *c == e.from_client && *t == e.event_type)
                {
                    Some((_, _, n)) => *n += 1,
                    None => self.pending.push((e.from_client, e.event_type.clone(), 1)),
                }
            } else {
                if self.pending_since.is_some() {
                    out.extend(compact(&group, self.opened, self.session));
                    group.clear();
                    self.flush_pending(&mut out);
                }
                group.push(e.clone());
            }
        }
        out.extend(compact(&group, self.opened, self.session));
        if closing
            || self
                .pending_since
                .is_some_and(|since| now.saturating_duration_since(since) >= STREAM_FLUSH)
        {
            self.flush_pending(&mut out);
        }
        out
    }
}

async fn log_session(session: SessionHandle) {
    let n = session.number();
    let opened = session.opened_at();
    println!(
        "[s{n}] session {} opened (model {})",
        session.id(),
        session.model()
    );
    let (mut client_seen, mut server_seen, mut violations_seen) = (0, 0, 0);
    let mut log = EventLog::new(n, opened);
    let mut tick = tokio::time::interval(LOG_INTERVAL);
    loop {
        tick.tick().await;
        let client = session.client_events();
        let server = session.server_events();
        let mut new: Vec<Logged> = client[client_seen.min(client.len())..]
            .iter()
            .map(|e| Logged {
                at: e.at,
                from_client: true,
                event_type: e.event_type().to_string(),
            })
            .chain(
                server[server_seen.min(server.len())..]
                    .iter()
                    .map(|e| Logged {
                        at: e.at,
                        from_client: false,
                        event_type: e.event_type.clone(),
                    }),
            )
            .collect();
        client_seen = client.len();
        server_seen = server.len();
        new.sort_by_key(|e| e.at);
        let closed = session.closed();
        for line in log.feed(&new, Instant::now(), closed.is_some()) {
            println!("{line}");
        }
        let violations = session.violations();
        for v in violations.iter().skip(violations_seen) {
            println!("[s{n}] VIOLATION {:?}: {}", v.kind, v.detail);
        }
        violations_seen = violations.len();
        if let Some(closed) = closed {
            println!(
                "[s{n}] session closed at +{} ms: {:?}",
                crate::report::ms(closed.at.saturating_duration_since(opened)),
                closed.by
            );
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_events_are_counted_between_other_events() {
        let t0 = Instant::now();
        let ev = |ms: u64, from_client: bool, t: &str| Logged {
            at: t0 + Duration::from_millis(ms),
            from_client,
            event_type: t.into(),
        };
        let mut log = EventLog::new(2, t0);
        let first = log.feed(
            &[
                ev(2, true, "response.create"),
                ev(3, false, "response.created"),
                ev(3, false, "response.output_audio.delta"),
                ev(4, true, "input_audio_buffer.append"),
                ev(5, false, "response.output_audio.delta"),
                ev(6, false, "response.output_audio_transcript.delta"),
            ],
            t0 + Duration::from_millis(100),
            false,
        );
        assert_eq!(
            first,
            vec![
                "[s2]    +2 ms  client  response.create",
                "[s2]    +3 ms  mock    response.created",
            ]
        );
        let second = log.feed(
            &[
                ev(120, true, "input_audio_buffer.append"),
                ev(150, false, "response.done"),
            ],
            t0 + Duration::from_millis(200),
            false,
        );
        assert_eq!(
            second,
            vec![
                "[s2]    +3 ms  stream  client input_audio_buffer.append ×2 · mock response.output_audio.delta ×2, response.output_audio_transcript.delta",
                "[s2]  +150 ms  mock    response.done",
            ]
        );
        // Appends alone are printed every few seconds, and when the session closes.
        assert!(
            log.feed(
                &[ev(300, true, "input_audio_buffer.append")],
                t0 + Duration::from_millis(400),
                false
            )
            .is_empty()
        );
        assert_eq!(
            log.feed(&[], t0 + Duration::from_millis(300) + STREAM_FLUSH, false),
            vec!["[s2]  +300 ms  stream  client input_audio_buffer.append"]
        );
        log.feed(&[ev(4000, true, "input_audio_buffer.append")], t0, false);
        assert_eq!(log.feed(&[], t0, true).len(), 1);
    }

    #[test]
    fn compact_groups_directions_and_counts_types() {
        let t0 = Instant::now();
        let ev = |ms: u64, from_client: bool, t: &str| Logged {
            at: t0 + Duration::from_millis(ms),
            from_client,
            event_type: t.into(),
        };
        let events = vec![
            ev(3, true, "session.update"),
            ev(4, true, "response.create"),
            ev(5, false, "session.updated"),
            ev(6, false, "response.created"),
            ev(7, false, "response.output_audio.delta"),
            ev(7, false, "response.output_audio_transcript.delta"),
            ev(8, false, "response.output_audio.delta"),
            ev(1250, true, "input_audio_buffer.append"),
            ev(1270, true, "input_audio_buffer.append"),
        ];
        assert_eq!(
            compact(&events, t0, 1),
            vec![
                "[s1]    +3 ms  client  session.update, response.create",
                "[s1]    +5 ms  mock    session.updated, response.created, response.output_audio.delta ×2, response.output_audio_transcript.delta",
                "[s1] +1250 ms  client  input_audio_buffer.append ×2",
            ]
        );
        assert!(compact(&[], t0, 1).is_empty());
    }

    #[tokio::test]
    async fn the_port_forwarder_reaches_the_mock() {
        let mock = MockRealtime::builder().script(script()).start().await;
        let mock = mock.expect("the mock starts on 127.0.0.1:0");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("bound address");
        tokio::spawn(forward(listener, mock.addr()));
        // The mock answers a request for an unknown path through the forwarder.
        let r = testkit::http::get(&format!("http://{addr}/nope"))
            .await
            .expect("an HTTP answer through the forwarder");
        assert_eq!(r.status, 404);
        assert_eq!(mock.refused_upgrades().len(), 1);
    }
}
