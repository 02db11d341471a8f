//! The caller endpoint over a Twilio Media Streams WebSocket.
//!
//! Inbound frames are parsed with [`twilio_media::stream::parse`]; a `media` payload is forwarded
//! **without copying**: it is a [`Bytes::slice_ref`] of the received frame, wrapped in
//! [`Base64Audio::from_shared`]. Malformed JSON, bad base64, media for other tracks and unknown
//! events are logged (the first at `warn`, the rest at `debug`), counted, and skipped: the call
//! continues. A frame over the size limit ends the call (the endpoint reports a protocol error).
//!
//! Outbound commands are written with twilio-media's allocation-free writers and only
//! *queued* on the socket ([`Endpoint::start_send`]); [`Endpoint::poll_flush`] writes them, so a
//! media message and its mark leave in one write. [`Endpoint::close`] is the closing handshake.
//! Marks are named `m<id>` (compact; Twilio echoes the name verbatim) and echoes are parsed back
//! into [`MarkId`]s; names we did not send are ignored.
//!
//! The WebSocket is a [`SocketWebSocket`]: tungstenite over the TCP socket itself, driven from
//! its readiness.

use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use async_trait::async_trait;
use bridge_core::caller::{
    CallerCommand, CallerEndpoint, CallerEvent, CallerInfo, Endpoint, EndpointError, MarkId,
};
use bridge_core::format::{AudioFormat, Base64Audio};
use bytes::Bytes;
use openai_realtime::client::{ReadinessIo, SocketWebSocket};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use twilio_media::stream::{self, Event, Track};

use super::{Direction, RelayClock};

/// How long to wait for the peer's reply to our close frame before dropping the socket.
const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// WebSocket limits for the Twilio side: Twilio's messages are a few hundred bytes, so small
/// buffers keep memory per call low and cap what a misbehaving peer can make us hold. The
/// 2 KiB read buffer holds five media messages; tungstenite zero-fills it before every
/// read (twice per received message), so smaller is cheaper, and a larger message is still
/// read whole. Writes go out once 3 KiB are queued (a burst of agent audio): the write
/// buffer never shrinks and grows by doubling, so this bounds it at ~6 KB per call (with
/// 8 KiB it reached 12 KB under load); a media message and its mark still leave in one
/// write, and a burst still leaves in a few.
pub fn websocket_config() -> tungstenite::protocol::WebSocketConfig {
    tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(2 * 1024)
        .write_buffer_size(3 * 1024)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024))
}

/// Why the stream did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No `start` within the timeout.
    #[error("no `start` message within {0:?}")]
    Timeout(Duration),
    /// The socket closed or failed before `start`.
    #[error("the stream ended before `start`: {0}")]
    Ended(String),
}

/// The Twilio Media Streams caller endpoint.
pub struct TwilioCaller<S> {
    ws: SocketWebSocket<S>,
    decoder: TwilioDecoder,
    /// A `start` read by [`Self::wait_for_start`], replayed by the first `poll_recv`.
    replay_start: Option<CallerInfo>,
    clock: Arc<RelayClock>,
    /// An audio frame was fed since the last flush (for the relay latency metric).
    audio_fed: bool,
    closed: bool,
    /// Tells the call's tools when the greeting has been heard (see [`Self::watch_greeting`]).
    greeting: Option<GreetingWatch>,
    /// The call's recording, when on (see [`Self::record_to`]).
    recording: Option<crate::recording::RecordingTap>,
    /// Awaited before a normal close (see [`Self::save_before_close`]).
    end_save: Option<crate::handover::EndSave>,
}

/// Watches playout until the greeting has been heard.
struct GreetingWatch {
    over: Arc<std::sync::atomic::AtomicBool>,
    /// The last mark sent.
    last_mark: Option<MarkId>,
}

impl GreetingWatch {
    fn finish(&self) {
        self.over.store(true, std::sync::atomic::Ordering::Release);
    }
}

impl<S> std::fmt::Debug for TwilioCaller<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioCaller")
            .field("stream_sid", &self.decoder.stream_sid)
            .field("closed", &self.closed)
            .field("skipped", &self.decoder.skipped)
            .finish_non_exhaustive()
    }
}

/// Turns the text messages of one Media Stream into [`CallerEvent`]s: the per-message half of
/// [`TwilioCaller`] without the socket (usable on its own, e.g. in benchmarks).
///
/// Malformed messages, bad payloads, media before `start` or on another track, a second
/// `start`, bad DTMF digits and unknown events are skipped: logged (the first at `warn`, the
/// rest at `debug`), counted, and `decode` returns `None`. A `media` payload is not copied:
/// the event's audio is a slice of the message's buffer.
///
/// ```
/// use bridge_core::caller::CallerEvent;
/// use phone_agent_server::adapters::twilio::TwilioDecoder;
///
/// let mut decoder = TwilioDecoder::default();
/// let start = r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"streamSid":"MZ1","accountSid":"AC1","callSid":"CA1","tracks":["inbound"],"customParameters":{},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#;
/// assert!(matches!(decoder.decode(&start.into()), Some(CallerEvent::Started(_))));
/// let media = r#"{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"//////8="},"streamSid":"MZ1"}"#;
/// let Some(CallerEvent::Audio(audio)) = decoder.decode(&media.into()) else { panic!() };
/// assert_eq!(audio.as_str(), "//////8=");
/// assert_eq!(decoder.decode(&"not json".into()), None);
/// assert_eq!(decoder.skipped(), 1);
/// ```
#[derive(Debug, Default)]
pub struct TwilioDecoder {
    stream_sid: Option<String>,
    /// Messages skipped because they could not be used (malformed, unknown, bad payload).
    skipped: u64,
}

/// Writes the Twilio message for `command` on stream `stream_sid` into `out` (cleared
/// first); `false` for [`CallerCommand::Close`], which is no message.
///
/// ```
/// use bridge_core::caller::{CallerCommand, MarkId};
/// use phone_agent_server::adapters::twilio::encode_command;
///
/// let mut out = String::new();
/// assert!(encode_command("MZ1", &CallerCommand::Mark(MarkId(7)), &mut out));
/// assert_eq!(out, r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"m7"}}"#);
/// assert!(!encode_command("MZ1", &CallerCommand::Close, &mut out));
/// ```
pub fn encode_command(stream_sid: &str, command: &CallerCommand, out: &mut String) -> bool {
    out.clear();
    match command {
        CallerCommand::Audio(audio) => stream::write_media(out, stream_sid, audio.as_str()),
        CallerCommand::Mark(id) => {
            let mut name = String::with_capacity(12);
            mark_name(*id, &mut name);
            stream::write_mark(out, stream_sid, &name);
        }
        CallerCommand::Clear => stream::write_clear(out, stream_sid),
        CallerCommand::Close => return false,
    }
    true
}

/// The wire name of a mark.
pub fn mark_name(id: MarkId, out: &mut String) {
    use std::fmt::Write as _;
    out.push('m');
    // Writing into a String cannot fail.
    let _ = write!(out, "{}", id.0);
}

/// Parses a mark name written by [`mark_name`].
pub fn parse_mark_name(name: &str) -> Option<MarkId> {
    let digits = name.strip_prefix('m')?;
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    digits.parse().ok().map(MarkId)
}

impl<S> TwilioCaller<S>
where
    S: ReadinessIo,
{
    /// Wraps an accepted Media Streams WebSocket.
    pub fn new(ws: SocketWebSocket<S>, clock: Arc<RelayClock>) -> Self {
        TwilioCaller {
            ws,
            decoder: TwilioDecoder::default(),
            replay_start: None,
            clock,
            audio_fed: false,
            closed: false,
            greeting: None,
            recording: None,
            end_save: None,
        }
    }

    /// Waits for `save` (why the stream ends, see [`crate::handover`]) before the stream is
    /// closed normally, so the redirect Twilio runs next finds it on any instance.
    pub fn save_before_close(&mut self, save: crate::handover::EndSave) {
        self.end_save = Some(save);
    }

    /// Hands every caller frame, agent chunk and `clear` to `tap` (a non-blocking queue send
    /// each; see [`crate::recording`]). Dropping the endpoint ends the recording.
    pub fn record_to(&mut self, tap: crate::recording::RecordingTap) {
        self.recording = Some(tap);
    }

    /// Sets `over` once the agent's first speech (the greeting) has been heard in full: the
    /// first time every mark sent so far has been echoed, or a `clear` cut it short. Costs a
    /// comparison per mark echo until then.
    pub fn watch_greeting(&mut self, over: Arc<std::sync::atomic::AtomicBool>) {
        self.greeting = Some(GreetingWatch {
            over,
            last_mark: None,
        });
    }

    /// Reads until Twilio's `start` message and returns its information; the first
    /// [`Endpoint::poll_recv`] afterwards returns it again as [`CallerEvent::Started`]. Media
    /// arriving meanwhile stays in the socket.
    pub async fn wait_for_start(&mut self, timeout: Duration) -> Result<CallerInfo, StartError> {
        let read = async {
            loop {
                match self.next_event().await {
                    None => return Err(StartError::Ended("socket closed".into())),
                    Some(Err(e)) => return Err(StartError::Ended(e.to_string())),
                    Some(Ok(CallerEvent::Started(info))) => return Ok(info),
                    Some(Ok(CallerEvent::Hangup)) => {
                        return Err(StartError::Ended("stop before start".into()));
                    }
                    Some(Ok(_)) => continue,
                }
            }
        };
        let info = tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| StartError::Timeout(timeout))??;
        self.replay_start = Some(info.clone());
        Ok(info)
    }

    /// Closes the socket with a policy-violation code (the stream was refused after the
    /// upgrade, e.g. a bad token). Twilio logs error 31921 and continues the TwiML.
    pub async fn refuse(&mut self, reason: &str) {
        self.close_with(CloseCode::Policy, reason).await;
    }

    async fn close_with(&mut self, code: CloseCode, reason: &str) {
        if self.closed {
            return;
        }
        if code == CloseCode::Normal
            && let Some(save) = self.end_save.take()
        {
            save.wait().await;
        }
        self.closed = true;
        let frame = CloseFrame {
            code,
            reason: reason.to_owned().into(),
        };
        // Complete the closing handshake: send our close frame, then read (and discard) what is
        // still in flight until Twilio's reply or the socket's end. Dropping the socket with
        // unread data would make the kernel reset the connection, and the peer could see a
        // reset instead of our close frame. Bounded, and best effort: the peer may be gone.
        let handshake = async {
            if self.ws.close(Some(frame)).await.is_err() {
                return;
            }
            while let Some(Ok(_)) = self.ws.next().await {}
        };
        let _ = tokio::time::timeout(CLOSE_HANDSHAKE_TIMEOUT, handshake).await;
    }

    /// The next event from the socket (no replay).
    async fn next_event(&mut self) -> Option<Result<CallerEvent, EndpointError>> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    /// Poll form of [`next_event`](Self::next_event).
    fn poll_event(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<CallerEvent, EndpointError>>> {
        loop {
            let message = match ready!(self.ws.poll_next(cx)) {
                None => return Poll::Ready(None),
                Some(Ok(m)) => m,
                Some(Err(e)) => return Poll::Ready(map_ws_error(e)),
            };
            let text = match message {
                Message::Text(text) => text,
                Message::Close(frame) => {
                    tracing::debug!(?frame, "Twilio closed the stream");
                    continue; // tungstenite answers the close; the next read returns None.
                }
                Message::Binary(_) => {
                    self.decoder
                        .skip("binary frame", &"Twilio only sends text frames");
                    continue;
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
            if let Some(event) = self.decoder.decode(&text) {
                match &event {
                    CallerEvent::Audio(audio) => {
                        self.clock.received(Direction::CallerToAgent);
                        if let Some(tap) = &mut self.recording {
                            tap.caller(audio);
                        }
                    }
                    CallerEvent::MarkPlayed(id) => {
                        if self
                            .greeting
                            .as_ref()
                            .is_some_and(|w| w.last_mark == Some(*id))
                            && let Some(watch) = self.greeting.take()
                        {
                            watch.finish();
                        }
                    }
                    _ => {}
                }
                return Poll::Ready(Some(Ok(event)));
            }
        }
    }
}

impl TwilioDecoder {
    /// The event `text` (one message of the stream) carries, or `None` when it is skipped
    /// (see the type's docs).
    pub fn decode(&mut self, text: &Utf8Bytes) -> Option<CallerEvent> {
        let event = match stream::parse(text.as_str()) {
            Ok(event) => event,
            Err(e) => {
                self.skip("malformed message", &e);
                return None;
            }
        };
        match event {
            Event::Media(media) => {
                if self.stream_sid.is_none() {
                    self.skip("media before start", &"ignored");
                    return None;
                }
                if media.track != Track::Inbound {
                    self.skip("media on another track", &media.track.as_str());
                    return None;
                }
                let payload = match media.borrowed_payload() {
                    Some(p) => {
                        let frame = Bytes::from(text.clone());
                        Base64Audio::from_shared(frame.slice_ref(p.as_bytes()))
                    }
                    None => Base64Audio::from_text(&media.payload),
                };
                match payload {
                    Ok(audio) => {
                        tracing::trace!(
                            bytes = audio.decoded_len(),
                            chunk = media.chunk,
                            "caller audio"
                        );
                        Some(CallerEvent::Audio(audio))
                    }
                    Err(e) => {
                        self.skip("bad media payload", &e);
                        None
                    }
                }
            }
            Event::Mark(mark) => match parse_mark_name(&mark.name) {
                Some(id) => Some(CallerEvent::MarkPlayed(id)),
                None => {
                    tracing::debug!("ignoring the echo of a mark we did not send");
                    None
                }
            },
            Event::Start(start) => {
                if self.stream_sid.is_some() {
                    self.skip("second start", &"ignored");
                    return None;
                }
                if !start.media_format.is_mulaw_8k_mono() {
                    tracing::warn!(
                        encoding = %start.media_format.encoding,
                        sample_rate = start.media_format.sample_rate,
                        "unexpected media format; treating the audio as 8 kHz μ-law"
                    );
                }
                let info = CallerInfo {
                    call_id: start.call_sid.as_str().to_owned(),
                    stream_id: start.stream_sid.as_str().to_owned(),
                    account_id: Some(start.account_sid.as_str().to_owned()),
                    parameters: start
                        .custom_parameters
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                };
                self.stream_sid = Some(info.stream_id.clone());
                Some(CallerEvent::Started(info))
            }
            Event::Dtmf(dtmf) => {
                let mut chars = dtmf.digit.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) if c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D') => {
                        Some(CallerEvent::Dtmf(c))
                    }
                    _ => {
                        self.skip("bad dtmf digit", &"not one of 0-9 * # A-D");
                        None
                    }
                }
            }
            Event::Stop(_) => Some(CallerEvent::Hangup),
            Event::Connected(c) => {
                tracing::debug!(protocol = %c.protocol, version = %c.version, "Twilio stream connected");
                None
            }
            Event::Unknown { event, .. } => {
                self.skip("unknown event", &event);
                None
            }
            other => {
                self.skip("unhandled event", &other.name());
                None
            }
        }
    }

    /// Messages skipped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    fn skip(&mut self, what: &str, detail: &dyn std::fmt::Display) {
        self.skipped += 1;
        crate::telemetry::error("twilio_frame_skipped");
        if self.skipped == 1 {
            tracing::warn!(what, %detail, "skipping a Twilio stream message (further ones are logged at debug)");
        } else {
            tracing::debug!(what, %detail, "skipping a Twilio stream message");
        }
    }
}

fn map_ws_error(e: tungstenite::Error) -> Option<Result<CallerEvent, EndpointError>> {
    use tungstenite::Error as E;
    match e {
        E::ConnectionClosed | E::AlreadyClosed => None,
        E::Capacity(c) => {
            crate::telemetry::error("twilio_oversized_frame");
            Some(Err(EndpointError::Protocol(format!(
                "Twilio frame over the size limit: {c}"
            ))))
        }
        E::Protocol(p) => Some(Err(EndpointError::Protocol(p.to_string()))),
        E::Io(io) => Some(Err(EndpointError::Transport(io.to_string()))),
        other => Some(Err(EndpointError::Transport(other.to_string()))),
    }
}

fn send_error(e: tungstenite::Error) -> EndpointError {
    use tungstenite::Error as E;
    match e {
        E::ConnectionClosed | E::AlreadyClosed => {
            EndpointError::Closed("Twilio stream closed".into())
        }
        E::Io(io) => EndpointError::Transport(io.to_string()),
        other => EndpointError::Transport(other.to_string()),
    }
}

impl<S> TwilioCaller<S> {
    /// Bookkeeping of a command on its way out: the recording tap, the greeting watch, the
    /// relay clock.
    fn on_command(&mut self, command: &CallerCommand) {
        if let Some(tap) = &mut self.recording {
            match command {
                CallerCommand::Audio(audio) => tap.agent(audio),
                CallerCommand::Clear => tap.clear(),
                _ => {}
            }
        }
        match command {
            CallerCommand::Audio(_) => self.audio_fed = true,
            CallerCommand::Mark(id) => {
                if let Some(watch) = &mut self.greeting {
                    watch.last_mark = Some(*id);
                }
            }
            CallerCommand::Clear => {
                if let Some(watch) = self.greeting.take() {
                    watch.finish();
                }
            }
            _ => {}
        }
    }
}

#[async_trait]
impl<S> Endpoint for TwilioCaller<S>
where
    S: ReadinessIo,
{
    type Event = CallerEvent;
    type Command = CallerCommand;

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<CallerEvent, EndpointError>>> {
        if let Some(info) = self.replay_start.take() {
            return Poll::Ready(Some(Ok(CallerEvent::Started(info))));
        }
        if self.closed {
            return Poll::Ready(None);
        }
        self.poll_event(cx)
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        self.ws.poll_ready(cx).map_err(send_error)
    }

    fn start_send(&mut self, command: CallerCommand) -> Result<(), EndpointError> {
        if self.closed {
            return Ok(());
        }
        // Nothing can be addressed to a stream that has not started.
        let Some(sid) = self.decoder.stream_sid.as_deref() else {
            return Ok(());
        };
        let capacity = match &command {
            CallerCommand::Audio(audio) => audio.text_len() + sid.len() + 64,
            _ => sid.len() + 64,
        };
        let mut frame = String::with_capacity(capacity);
        if !encode_command(sid, &command, &mut frame) {
            // `Close` is not a message: the driver calls `close`.
            return Ok(());
        }
        self.on_command(&command);
        self.ws.start_send(Message::text(frame)).map_err(send_error)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        ready!(self.ws.poll_flush(cx)).map_err(send_error)?;
        if std::mem::take(&mut self.audio_fed) {
            self.clock.written(Direction::AgentToCaller);
        }
        Poll::Ready(Ok(()))
    }

    /// Our close frame, then Twilio's reply (bounded): see `close_with`.
    async fn close(&mut self) -> Result<(), EndpointError> {
        self.close_with(CloseCode::Normal, "call ended").await;
        Ok(())
    }
}

impl<S> CallerEndpoint for TwilioCaller<S>
where
    S: ReadinessIo,
{
    fn format(&self) -> AudioFormat {
        AudioFormat::Mulaw8k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_names_round_trip() {
        for id in [0u64, 1, 9, 10, 12345, u64::MAX] {
            let mut s = String::new();
            mark_name(MarkId(id), &mut s);
            assert_eq!(parse_mark_name(&s), Some(MarkId(id)), "{s}");
        }
        for bad in [
            "",
            "m",
            "x1",
            "m01",
            "m-1",
            "m1a",
            "M1",
            "m18446744073709551616",
        ] {
            assert_eq!(parse_mark_name(bad), None, "{bad}");
        }
    }
}
