//! What follows a media stream, decided from why it ended, and call handover at shutdown.
//!
//! The `/voice` TwiML continues after `</Connect>` with a signed
//! `<Redirect method="POST">PUBLIC/voice/next</Redirect>`, which Twilio runs when the stream
//! ends while the call is still up (never after the caller hung up, nor after a REST update
//! replaced the call's TwiML). Before the instance running a stream closes it, it saves why
//! the stream ended in the call store (table `call_streams`, migration 0005; awaited by the
//! Twilio endpoint's close, bounded by [`SAVE_TIMEOUT`]), so whichever instance Twilio reaches
//! next knows. `POST /voice/next` answers:
//!
//! | saved outcome | answer |
//! |---|---|
//! | `handed_over`, with the conversation | `<Connect><Stream>` for the same call (a fresh stream token; the saved parameters plus `handover`), then the same redirect |
//! | `handed_over`, nothing to resume with | a spoken goodbye (`shutdown.goodbye`), `<Hangup/>` |
//! | `normal` (the agent hung up, an idle caller, the maximum duration) | `<Hangup/>` |
//! | `failed` (the agent failed or could not connect, the server ended the call), or a call nobody saved (an instance crashed) | the `[fallback]`: `<Say>`, then `<Hangup/>` or `<Dial>` |
//! | `fallback_pending` (the fallback went to Twilio's REST API, no answer yet) | `<Pause length="1"/>` and the same redirect: asked again until the answer is in (then as above: `normal` if Twilio took it, `failed` if it refused it or never answered), at most [`pending_bound`] |
//!
//! Serving a resume marks the row `failed` (the conversation stays): if the new stream never
//! starts, the next redirect plays the fallback instead of resuming in a loop; the resumed
//! stream saves its own outcome when it ends. Without a call store the outcome is kept in the
//! instance's memory ([`crate::fallback::CallEnds`]) and there is no handover.
//!
//! **The fallback through REST is never played twice.** When the agent is gone for good and
//! Twilio REST is configured, the fallback TwiML replaces the call's TwiML through REST before
//! the stream closes; Twilio then never runs the redirect. The race: an update that reached
//! Twilio but whose answer is late — if the stream were closed and the redirect answered with
//! the fallback, Twilio applying the update afterwards would play it a second time. So
//! `fallback_pending` is saved **before** the REST request is sent; the stream is closed after
//! the answer or after [`REST_FALLBACK_TIMEOUT`], whichever is first; the request is never
//! abandoned (it finishes in the background, bounded by the REST client's own timeouts, and
//! saves `normal` or `failed`); meanwhile `/voice/next` answers a one-second pause and asks
//! again. A REST call that truly failed (an error answer, no connection, no answer within the
//! client's `twilio.rest_timeout_ms`) saves `failed`, and the next redirect plays the fallback:
//! the caller hears it once either way. What remains: Twilio applying an update more than
//! `rest_timeout_ms` after receiving it without answering (the client has then given up and
//! the redirect has played the fallback). Without a call store the same states are kept in
//! the instance's memory ([`crate::fallback::CallEnds`]), which serves a redirect that reaches
//! this instance.
//!
//! **Handover** (`shutdown.handover`, a store and a Realtime or GPT-Live call): when the
//! draining instance stops listening, the engine ends each call's stream at a natural pause (bounded by `shutdown.handover_wait_ms`) and emits the
//! conversation ([`bridge_core::engine::CallEvent::HandedOver`]); the call's observer saves it
//! with the stream's parameters; the resumed stream (its `handover` parameter set) loads it,
//! and the new agent session is seeded with it ([`bridge_core::engine::CallConfig::restore`]:
//! Realtime: `conversation.item.create` items; GPT-Live: `session.start` `input`; no
//! greeting). Handing over starts when the instance stops listening, after
//! `server.shutdown_notice_secs`, not at SIGTERM: the redirect goes through the load balancer,
//! which must have taken the draining instance out first (its `/ready` answers 503 from
//! SIGTERM on); a redirect reaching the draining instance during the notice period would
//! resume the call there, only to hand it over again. Twilio's final status callback ends a
//! call at once, never handed over. `/voice/next` is also served at its old
//! path `/voice/fallback`, which calls answered by an earlier version redirect to.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bridge_core::agent::{ContextItem, Speaker};
use bridge_core::engine::EndReason;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};
use twilio_media::twiml;

use crate::routes::{self, Body};
use crate::server::AppState;
use crate::store::{StreamEnd, StreamOutcome};

/// The route Twilio is redirected to after every stream.
pub(crate) const NEXT_PATH: &str = "/voice/next";
/// The stream parameter that marks a resumed stream (its value: the handovers so far).
pub(crate) const HANDOVER_PARAMETER: &str = "handover";
/// How long closing a stream waits for its outcome to be saved.
pub(crate) const SAVE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the stream stays open waiting for the fallback's REST update to answer (below
/// [`SAVE_TIMEOUT`]); after that the update goes on in the background and the redirect waits
/// for it (`fallback_pending`).
pub(crate) const REST_FALLBACK_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause `/voice/next` answers while the fallback's REST update is unanswered.
const PENDING_PAUSE_SECS: u32 = 1;

/// Counter: calls handed over between instances, by `side` (`out`: this instance ended the
/// stream with the conversation saved; `in`: this instance resumed one).
pub const HANDOVERS: &str = "phone_agent_handovers_total";

/// The outcome of a stream that ended for `reason`.
pub(crate) fn outcome_of(reason: Option<EndReason>) -> StreamOutcome {
    match reason {
        Some(EndReason::HandedOver) => StreamOutcome::HandedOver,
        r if crate::fallback::is_normal(r) => StreamOutcome::Normal,
        _ => StreamOutcome::Failed,
    }
}

/// The save of why a call's stream ended, started by the call's observer when the engine
/// ends the call and awaited by the Twilio endpoint before it closes the stream.
#[derive(Debug, Clone, Default)]
pub struct EndSave(Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>);

impl EndSave {
    /// Starts saving.
    pub(crate) fn start(&self, save: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(save);
        let old = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(handle);
        if let Some(old) = old {
            old.abort();
        }
    }

    /// Waits for the save, if one was started (at most [`SAVE_TIMEOUT`]).
    pub(crate) async fn wait(self) {
        let handle = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(handle) = handle
            && tokio::time::timeout(SAVE_TIMEOUT, handle).await.is_err()
        {
            tracing::warn!("saving why the stream ended took too long: closing it anyway");
        }
    }
}

/// Saves why `call_sid`'s stream ended: in the store when there is one (awaited, bounded by
/// the caller), else in this instance's memory.
pub(crate) async fn save(state: Arc<AppState>, end: StreamEnd) {
    if let Some(store) = &state.store {
        match store.db() {
            Some(db) => {
                if let Err(e) = db.save_stream_end(&end).await {
                    tracing::error!(error = %e, "could not save why the stream ended");
                    crate::telemetry::error("stream_end_save");
                }
            }
            None => {
                tracing::error!("the call store is not ready: why the stream ended is not saved");
                crate::telemetry::error("stream_end_save");
            }
        }
        return;
    }
    state
        .call_ends
        .record(&end.call_sid, end.outcome, Instant::now());
}

/// Whether a call that ended for `reason` lost its agent for good (the agent refused, failed
/// or could not be reconnected): the fallback is then played through REST when configured.
pub(crate) fn agent_gone(reason: Option<EndReason>) -> bool {
    matches!(
        reason,
        Some(
            EndReason::AgentFailed | EndReason::AgentConnectFailed | EndReason::AgentConnectTimeout
        )
    )
}

/// How long a `fallback_pending` is waited for: every attempt of the REST client with its
/// backoff, and a margin. An older one (its instance died before the answer) reads as `failed`.
pub(crate) fn pending_bound(state: &AppState) -> Duration {
    let t = &state.config.twilio;
    t.rest_timeout * t.rest_attempts + Duration::from_secs(5)
}

/// Plays the `[fallback]` on the live call through Twilio's REST API (the call's TwiML is
/// replaced by it, so the redirect after the stream does not run), before the stream is
/// closed, and saves the stream's outcome (`end`, whose outcome is `failed`): `normal` when
/// Twilio took it (or the call is already gone), `failed` when the update failed (the
/// redirect plays the fallback), `fallback_pending` while it is unanswered after
/// [`REST_FALLBACK_TIMEOUT`] (see the module docs).
pub(crate) async fn fallback_by_rest(state: Arc<AppState>, end: StreamEnd) {
    let Some(rest) = state.tool_services.rest.clone() else {
        return save(state, end).await;
    };
    let xml = crate::fallback::fallback_twiml(&state.config.fallback).to_xml();
    let update = match twilio_media::rest::UpdateCall::twiml(xml) {
        Ok(update) => update,
        Err(e) => {
            tracing::warn!(error = %e, "the fallback TwiML cannot go through REST");
            return save(state, end).await;
        }
    };
    // Saved first: a redirect that comes before the answer waits for it.
    save(
        Arc::clone(&state),
        StreamEnd {
            outcome: StreamOutcome::FallbackPending,
            ..end.clone()
        },
    )
    .await;
    let call_sid = end.call_sid.clone();
    let mut request = tokio::spawn(async move {
        match rest.update_call(&call_sid, &update).await {
            Ok(crate::twilio_rest::UpdateOutcome::Updated) => {
                tracing::warn!(
                    call_sid,
                    "the agent is gone: playing the fallback through REST"
                );
                crate::telemetry::error("fallback_played");
                StreamOutcome::Normal
            }
            Ok(crate::twilio_rest::UpdateOutcome::AlreadyGone(_)) => {
                tracing::info!(
                    call_sid,
                    "the agent is gone and so is the call: no fallback"
                );
                StreamOutcome::Normal
            }
            Err(e) => {
                tracing::warn!(call_sid, error = %e, "the fallback through REST failed: the redirect plays it");
                StreamOutcome::Failed
            }
        }
    });
    match tokio::time::timeout(REST_FALLBACK_TIMEOUT, &mut request).await {
        Ok(outcome) => {
            let outcome = outcome.unwrap_or(StreamOutcome::Failed);
            save(state, StreamEnd { outcome, ..end }).await;
        }
        Err(_) => {
            tracing::warn!(
                call_sid = end.call_sid.as_str(),
                "the fallback through REST is not answered yet: closing the stream; the \
                 redirect waits for the answer"
            );
            // Finished in the background (bounded by the REST client's timeouts): its answer
            // decides what the waiting redirect does.
            tokio::spawn(async move {
                let outcome = request.await.unwrap_or(StreamOutcome::Failed);
                save(state, StreamEnd { outcome, ..end }).await;
            });
        }
    }
}

/// The conversation as stored (JSON array).
pub(crate) fn context_to_json(items: &[ContextItem]) -> String {
    let items: Vec<Value> = items
        .iter()
        .map(|item| match item {
            ContextItem::Message { speaker, text } => json!({
                "type": "message",
                "speaker": speaker.as_str(),
                "text": text,
            }),
            ContextItem::ToolCall {
                call_id,
                name,
                arguments,
            } => json!({"type": "tool_call", "call_id": call_id, "name": name, "arguments": arguments}),
            ContextItem::ToolOutput { call_id, output } => {
                json!({"type": "tool_output", "call_id": call_id, "output": output})
            }
            ContextItem::Note { text } => json!({"type": "note", "text": text}),
        })
        .collect();
    Value::Array(items).to_string()
}

/// The conversation read back; `None` when it is not what [`context_to_json`] writes.
pub(crate) fn context_from_json(text: &str) -> Option<Vec<ContextItem>> {
    let items: Vec<Value> = serde_json::from_str(text).ok()?;
    items
        .iter()
        .map(|v| {
            let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
            Some(match v.get("type")?.as_str()? {
                "message" => ContextItem::Message {
                    speaker: match v.get("speaker")?.as_str()? {
                        "caller" => Speaker::Caller,
                        "agent" => Speaker::Agent,
                        _ => return None,
                    },
                    text: s("text")?,
                },
                "tool_call" => ContextItem::ToolCall {
                    call_id: s("call_id")?,
                    name: s("name")?,
                    arguments: s("arguments")?,
                },
                "tool_output" => ContextItem::ToolOutput {
                    call_id: s("call_id")?,
                    output: s("output")?,
                },
                "note" => ContextItem::Note { text: s("text")? },
                _ => return None,
            })
        })
        .collect()
}

/// The stream's parameters as stored (JSON array of pairs), without the handover marker.
pub(crate) fn parameters_to_json(parameters: &[(String, String)]) -> String {
    let pairs: Vec<[&str; 2]> = parameters
        .iter()
        .filter(|(k, _)| k != HANDOVER_PARAMETER)
        .map(|(k, v)| [k.as_str(), v.as_str()])
        .collect();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".to_owned())
}

fn parameters_from_json(text: &str) -> Option<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = serde_json::from_str(text).ok()?;
    Some(pairs)
}

/// A resumed stream's conversation and the handovers so far: what the call store saved for
/// `call_sid` (`None` when nothing usable is saved, or there is no store).
pub(crate) async fn load(state: &AppState, call_sid: &str) -> Option<(Vec<ContextItem>, u32)> {
    let db = state.store.as_ref()?.db()?;
    match tokio::time::timeout(SAVE_TIMEOUT, db.stream_end(call_sid)).await {
        Ok(Ok(Some(end))) => {
            let items = context_from_json(end.context.as_deref()?)?;
            Some((items, end.handovers))
        }
        Ok(Ok(None)) => None,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "could not read the handed-over conversation");
            None
        }
        Err(_) => {
            tracing::error!("reading the handed-over conversation timed out");
            None
        }
    }
}

/// What a call nobody can resume hears.
fn goodbye(state: &AppState) -> twiml::Response {
    let mut response = twiml::Response::new();
    if let Some(line) = &state.config.shutdown.goodbye {
        response = response.say(line.as_str());
    }
    response.hangup()
}

/// `POST /voice/next` (and its old path `/voice/fallback`): what follows a stream.
pub(crate) async fn handle(state: &AppState, req: Request<Incoming>, path: &str) -> Response<Body> {
    let (parts, params) = match crate::voice::read_signed(state, req, path).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let call_sid = param("CallSid").unwrap_or("");
    if call_sid.len() > 64 || !call_sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return routes::text(StatusCode::BAD_REQUEST, "malformed CallSid\n");
    }
    let saved = match &state.store {
        Some(store) => match store.db() {
            Some(db) => match db.stream_end_at(call_sid).await {
                Ok(Some((mut end, saved_at_ms))) => {
                    let age = u64::try_from(crate::record::now_ms() - saved_at_ms).unwrap_or(0);
                    if end.outcome == StreamOutcome::FallbackPending
                        && Duration::from_millis(age) > pending_bound(state)
                    {
                        // Its instance died before the answer came: play it.
                        end.outcome = StreamOutcome::Failed;
                    }
                    Some(end)
                }
                Ok(None) => None,
                Err(e) => {
                    tracing::error!(call_sid, error = %e, "could not read why the stream ended");
                    None
                }
            },
            None => None,
        },
        None => state.call_ends.outcome(call_sid).map(|(mut outcome, at)| {
            if outcome == StreamOutcome::FallbackPending && at.elapsed() > pending_bound(state) {
                outcome = StreamOutcome::Failed;
            }
            StreamEnd {
                call_sid: call_sid.to_owned(),
                outcome,
                context: None,
                parameters: None,
                handovers: 0,
            }
        }),
    };
    match saved {
        Some(end) if end.outcome == StreamOutcome::HandedOver => {
            resume(state, &parts.headers, param("AccountSid"), end).await
        }
        Some(end) if end.outcome == StreamOutcome::Normal => {
            tracing::info!(call_sid, "stream ended normally: hanging up");
            routes::twiml(twiml::Response::new().hangup().to_xml())
        }
        Some(end) if end.outcome == StreamOutcome::FallbackPending => {
            match crate::voice::after_stream(state, &parts.headers) {
                Some(again) => {
                    tracing::info!(
                        call_sid,
                        "the fallback through REST is not answered yet: waiting"
                    );
                    routes::twiml(
                        twiml::Response::new()
                            .pause(twiml::Pause::seconds(PENDING_PAUSE_SECS))
                            .redirect(again)
                            .to_xml(),
                    )
                }
                None => {
                    routes::twiml(crate::fallback::fallback_twiml(&state.config.fallback).to_xml())
                }
            }
        }
        saved => {
            tracing::warn!(
                call_sid,
                known = saved.is_some(),
                "the call's stream ended abnormally: playing the fallback"
            );
            crate::telemetry::error("fallback_played");
            routes::twiml(crate::fallback::fallback_twiml(&state.config.fallback).to_xml())
        }
    }
}

/// The TwiML resuming a handed-over call: a new stream, seeded from the store.
async fn resume(
    state: &AppState,
    headers: &http::HeaderMap,
    account_sid: Option<&str>,
    mut end: StreamEnd,
) -> Response<Body> {
    let call_sid = end.call_sid.clone();
    let context = end.context.as_deref().and_then(context_from_json);
    let parameters = end.parameters.as_deref().and_then(parameters_from_json);
    let (Some(context), Some(mut parameters)) = (context, parameters) else {
        tracing::warn!(
            call_sid,
            "handed over with nothing to resume: saying goodbye"
        );
        return routes::twiml(goodbye(state).to_xml());
    };
    let Some(stream_url) = crate::voice::stream_url(state, headers, &call_sid, account_sid) else {
        return routes::text(
            StatusCode::BAD_REQUEST,
            "no Host header; set PUBLIC_URL to the address Twilio uses\n",
        );
    };
    // Claimed: a stream that never starts must not be resumed again and again.
    end.outcome = StreamOutcome::Failed;
    if let Some(db) = state.store.as_ref().and_then(|s| s.db())
        && let Err(e) = db.save_stream_end(&end).await
    {
        tracing::error!(call_sid, error = %e, "could not claim the handed-over call");
    }
    parameters.push((HANDOVER_PARAMETER.to_owned(), end.handovers.to_string()));
    let mut stream = twiml::Stream::new(stream_url);
    for (name, value) in &parameters {
        stream = stream.parameter(name.as_str(), value.as_str());
    }
    tracing::info!(
        call_sid,
        items = context.len(),
        handovers = end.handovers,
        "resuming a handed-over call with a new stream"
    );
    let mut response = twiml::Response::new().connect(stream);
    if let Some(redirect) = crate::voice::after_stream(state, headers) {
        response = response.redirect(redirect);
    }
    routes::twiml(response.to_xml())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conversation_round_trips_through_its_json() {
        let items = vec![
            ContextItem::Message {
                speaker: Speaker::Caller,
                text: "When \"are\" you open?".into(),
            },
            ContextItem::ToolCall {
                call_id: "c1".into(),
                name: "hours".into(),
                arguments: "{}".into(),
            },
            ContextItem::ToolOutput {
                call_id: "c1".into(),
                output: "{\"open\":\"9-5\"}".into(),
            },
            ContextItem::Message {
                speaker: Speaker::Agent,
                text: "Nine to five.".into(),
            },
            ContextItem::Note {
                text: "The caller pressed 1.".into(),
            },
        ];
        assert_eq!(context_from_json(&context_to_json(&items)), Some(items));
        assert_eq!(context_from_json("[{\"type\":\"other\"}]"), None);
        assert_eq!(context_from_json("not json"), None);
    }

    #[test]
    fn outcomes_follow_the_end_reason() {
        assert_eq!(
            outcome_of(Some(EndReason::HandedOver)),
            StreamOutcome::HandedOver
        );
        assert_eq!(
            outcome_of(Some(EndReason::HungUpByAgent)),
            StreamOutcome::Normal
        );
        assert_eq!(outcome_of(Some(EndReason::Shutdown)), StreamOutcome::Failed);
        assert_eq!(outcome_of(None), StreamOutcome::Failed);
    }

    #[test]
    fn parameters_drop_the_handover_marker() {
        let params = vec![
            ("call_sid".to_owned(), "CA1".to_owned()),
            (HANDOVER_PARAMETER.to_owned(), "1".to_owned()),
        ];
        assert_eq!(parameters_to_json(&params), r#"[["call_sid","CA1"]]"#);
        assert_eq!(
            parameters_from_json(r#"[["call_sid","CA1"]]"#),
            Some(vec![("call_sid".to_owned(), "CA1".to_owned())])
        );
    }
}
