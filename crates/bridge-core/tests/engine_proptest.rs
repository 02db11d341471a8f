//! Property test of playout tracking and barge-in over random interleavings of agent audio
//! (random sizes, several responses and items), caller-side playout (mark echoes in order),
//! barge-ins and late echoes of cleared marks.
//!
//! The test plays both peers: a Realtime-like agent, and a Twilio-like caller side that queues
//! what it is sent, plays it in order, echoes marks as it reaches them, and on `clear` drops its
//! queue and (later) echoes the marks it held. It keeps its own books of what each item sent and
//! what was acknowledged, independently of the engine, and checks:
//!
//! * a clear happens exactly when audio is queued or streaming;
//! * every truncation lies between the played position acknowledged at the clear and the end
//!   of the piece playing then (floor ms; interpolation may place it inside that piece, never
//!   beyond it), and never exceeds the audio sent; exactly the unfinished items are truncated;
//! * no audio of a discarded response reaches the caller after its clear;
//! * echoes of cleared marks have no effect (no output, and later truncations stay exact);
//! * `CancelResponse` only for an active, not yet discarded response of an agent that does not
//!   cancel itself.

mod engine_support;

use std::collections::{BTreeMap, HashSet, VecDeque};

use bridge_core::agent::{AgentCapabilities, AgentCommand, ResponseStatus};
use bridge_core::caller::CallerCommand;
use bridge_core::engine::{CallEvent, Output};
use engine_support::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Act {
    StartResponse,
    Audio(usize),
    NextItem,
    FinishResponse,
    Play(usize),
    Speech,
    StaleEcho,
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        2 => Just(Act::StartResponse),
        6 => (1usize..=2400).prop_map(Act::Audio),
        1 => Just(Act::NextItem),
        2 => Just(Act::FinishResponse),
        5 => (1usize..=8).prop_map(Act::Play),
        2 => Just(Act::Speech),
        2 => Just(Act::StaleEcho),
    ]
}

#[derive(Debug)]
struct Resp {
    id: String,
    item: String,
    items: u32,
    discarded: bool,
    sent_audio: bool,
}

#[derive(Debug, Default)]
struct ItemBooks {
    sent: u64,
    acked: u64,
    done: bool,
    response: String,
}

#[derive(Debug)]
enum Queued {
    Audio,
    Mark { id: u64, item: String, end: u64 },
}

#[derive(Debug, Default)]
struct Model {
    responses: u32,
    cur: Option<Resp>,
    queue: VecDeque<Queued>,
    stale: VecDeque<u64>,
    items: BTreeMap<String, ItemBooks>,
    discarded: HashSet<String>,
}

impl Model {
    fn queued_marks(&self) -> usize {
        self.queue
            .iter()
            .filter(|q| matches!(q, Queued::Mark { .. }))
            .count()
    }

    fn prune(&mut self) {
        self.items.retain(|_, b| !(b.done && b.acked >= b.sent));
    }
}

fn run(acts: Vec<Act>, caps: AgentCapabilities) -> Result<(), TestCaseError> {
    let mut s = Scenario::ready(quiet_config(), caps);
    let mut m = Model::default();
    let mut t = 0u64;
    let mut stale_echoes = 0u32;

    for a in acts {
        t += 1;
        match a {
            Act::StartResponse => {
                if m.cur.is_some() {
                    continue;
                }
                m.responses += 1;
                let id = format!("r{}", m.responses);
                let out = s.outputs(t, response_started(&id));
                prop_assert!(out.is_empty(), "{out:?}");
                m.cur = Some(Resp {
                    item: format!("{id}.0"),
                    id,
                    items: 0,
                    discarded: false,
                    sent_audio: false,
                });
            }
            Act::Audio(bytes) => {
                let Some(cur) = &mut m.cur else { continue };
                let out = s.outputs(t, agent_audio(&cur.id, &cur.item, 7, bytes));
                if cur.discarded {
                    prop_assert!(
                        out.is_empty(),
                        "audio of a discarded response reached the caller: {out:?}"
                    );
                    continue;
                }
                cur.sent_audio = true;
                let books = m
                    .items
                    .entry(cur.item.clone())
                    .or_insert_with(|| ItemBooks {
                        response: cur.id.clone(),
                        ..ItemBooks::default()
                    });
                let mut forwarded = 0;
                let mut expect_mark = false;
                for o in out {
                    match o {
                        Output::Caller(CallerCommand::Audio(p)) => {
                            prop_assert!(!expect_mark, "two pieces without a mark between");
                            let n = p.decoded_len() as u64;
                            prop_assert!(n <= 162, "piece of {n} bytes exceeds the mark interval");
                            books.sent += n;
                            forwarded += n;
                            m.queue.push_back(Queued::Audio);
                            expect_mark = true;
                        }
                        Output::Caller(CallerCommand::Mark(id)) => {
                            prop_assert!(expect_mark, "mark without audio before it");
                            expect_mark = false;
                            m.queue.push_back(Queued::Mark {
                                id: id.0,
                                item: cur.item.clone(),
                                end: books.sent,
                            });
                        }
                        Output::Event(e) if matches!(*e, CallEvent::FirstAudio { .. }) => {}
                        other => prop_assert!(false, "unexpected output for audio: {other:?}"),
                    }
                }
                prop_assert!(!expect_mark, "last piece without its mark");
                prop_assert_eq!(forwarded, bytes as u64);
            }
            Act::NextItem => {
                let Some(cur) = &mut m.cur else { continue };
                let out = s.outputs(t, audio_done(&cur.id, &cur.item));
                prop_assert!(out.is_empty(), "{out:?}");
                if let Some(b) = m.items.get_mut(&cur.item) {
                    b.done = true;
                }
                cur.items += 1;
                cur.item = format!("{}.{}", cur.id, cur.items);
            }
            Act::FinishResponse => {
                let Some(cur) = m.cur.take() else { continue };
                let out = s.outputs(t, audio_done(&cur.id, &cur.item));
                prop_assert!(out.is_empty(), "{out:?}");
                let status = if cur.discarded {
                    ResponseStatus::Cancelled
                } else {
                    ResponseStatus::Completed
                };
                let out = s.outputs(t, response_done(&cur.id, status));
                prop_assert!(out.is_empty(), "{out:?}");
                for b in m.items.values_mut() {
                    if b.response == cur.id {
                        b.done = true;
                    }
                }
                m.discarded.remove(&cur.id);
            }
            Act::Play(n) => {
                for _ in 0..n {
                    match m.queue.pop_front() {
                        None => break,
                        Some(Queued::Audio) => {}
                        Some(Queued::Mark { id, item, end }) => {
                            if let Some(b) = m.items.get_mut(&item) {
                                b.acked = b.acked.max(end);
                            }
                            let out = s.outputs(t, echo(id));
                            prop_assert!(out.is_empty(), "{out:?}");
                        }
                    }
                }
            }
            Act::StaleEcho => {
                let Some(id) = m.stale.pop_front() else {
                    continue;
                };
                let out = s.outputs(t, echo(id));
                prop_assert!(out.is_empty(), "stale echo had an effect: {out:?}");
                stale_echoes += 1;
                prop_assert_eq!(s.call.summary(s.now).stale_mark_echoes, stale_echoes);
            }
            Act::Speech => {
                m.prune();
                let queued = m.queued_marks();
                let live = m.cur.as_ref().filter(|c| !c.discarded);
                let playing = queued > 0 || live.is_some_and(|c| c.sent_audio);
                let expect_cancel = (!caps.interrupts_itself)
                    .then(|| live.map(|c| c.id.clone()))
                    .flatten();
                let out = s.outputs(t, speech_started());

                let mut cleared = false;
                let mut cancelled = None;
                let mut truncated = BTreeMap::new();
                let mut event = None;
                for o in out {
                    match o {
                        Output::Caller(CallerCommand::Clear) => cleared = true,
                        Output::Agent(AgentCommand::CancelResponse { response_id }) => {
                            cancelled = response_id
                        }
                        Output::Agent(AgentCommand::Truncate {
                            item_id,
                            audio_end_ms,
                        }) => {
                            truncated.insert(item_id, audio_end_ms);
                        }
                        Output::Event(e) if matches!(*e, CallEvent::BargeIn(_)) => {
                            if let CallEvent::BargeIn(b) = *e {
                                event = Some(b);
                            }
                        }
                        other => prop_assert!(false, "unexpected output for speech: {other:?}"),
                    }
                }
                prop_assert_eq!(cleared, playing);
                prop_assert_eq!(&cancelled, &expect_cancel);
                if let Some(id) = &expect_cancel {
                    m.discarded.insert(id.clone());
                    if let Some(c) = &mut m.cur {
                        c.discarded = true;
                    }
                }
                if !playing {
                    prop_assert!(truncated.is_empty() && event.is_none());
                    continue;
                }
                let event = event.expect("a barge-in event");
                prop_assert_eq!(event.cleared_marks, queued);

                // Exactly the unfinished items, each at or after the acknowledged position and
                // no later than the end of the piece playing (the first one queued).
                let playing_piece = m.queue.iter().find_map(|q| match q {
                    Queued::Mark { item, end, .. } => Some((item.clone(), *end)),
                    Queued::Audio => None,
                });
                let items: Vec<&String> = truncated.keys().collect();
                let expected_items: Vec<&String> = m.items.keys().collect();
                prop_assert_eq!(items, expected_items);
                for (id, b) in &m.items {
                    let low = b.sent.min(b.acked) / 8;
                    let high = match &playing_piece {
                        Some((item, end)) if item == id => b.sent.min(*end) / 8,
                        _ => low,
                    };
                    let at = truncated[id];
                    prop_assert!(
                        (low..=high).contains(&at),
                        "{id} truncated at {at} ms, outside [{low}, {high}]"
                    );
                }
                for (id, ms) in &truncated {
                    prop_assert!(
                        ms * 8 <= m.items[id].sent,
                        "truncated {id} beyond what was sent"
                    );
                }

                // The caller side drops its queue and will echo the held marks later.
                for q in m.queue.drain(..) {
                    if let Queued::Mark { id, .. } = q {
                        m.stale.push_back(id);
                    }
                }
                for b in std::mem::take(&mut m.items).into_values() {
                    m.discarded.insert(b.response);
                }
                if let Some(c) = &mut m.cur {
                    c.discarded = true;
                    c.sent_audio = false;
                }
                prop_assert_eq!(s.call.pending_marks(), 0);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn barge_in_is_exact_under_random_interleavings(
        acts in prop::collection::vec(act(), 1..250),
        interrupts_itself in any::<bool>(),
    ) {
        run(acts, AgentCapabilities { interrupts_itself, ..REALTIME })?;
    }
}
