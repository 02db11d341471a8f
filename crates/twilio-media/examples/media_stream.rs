//! Walks through one call the way a bridge sees it, with no network:
//!
//! 1. the voice webhook arrives: check its signature, read it, answer with TwiML;
//! 2. the Media Stream upgrade arrives: check its signature;
//! 3. a recorded sequence of Twilio messages is parsed, and for each one the example prints
//!    what a bridge would do, writing the frames it would send back;
//! 4. the call is transferred through the REST API.
//!
//! Run with `cargo run -p twilio-media --example media_stream`.
#![allow(clippy::print_stdout)]

use std::collections::HashSet;

use twilio_media::rest::{self, UpdateCall};
use twilio_media::signature::RequestValidator;
use twilio_media::stream::{self, Event, Track};
use twilio_media::twiml::{Dial, Response, Stream};
use twilio_media::webhook::{Params, VoiceRequest};

const AUTH_TOKEN: &str = "0123456789abcdef0123456789abcdef";
const PUBLIC_BASE: &str = "https://bridge.example.com";
const STREAM_URL: &str = "wss://bridge.example.com/media-stream";

/// What Twilio sent during a short call (payloads shortened; a real frame is 20 ms).
const RECORDED: &[&str] = &[
    r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#,
    r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ00000000000000000000000000000001","start":{"streamSid":"MZ00000000000000000000000000000001","accountSid":"AC00000000000000000000000000000001","callSid":"CA00000000000000000000000000000001","tracks":["inbound"],"customParameters":{"token":"b1f0c2"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#,
    r#"{"event":"media","sequenceNumber":"2","streamSid":"MZ00000000000000000000000000000001","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"/////////////////////w=="}}"#,
    r#"{"event":"media","sequenceNumber":"3","streamSid":"MZ00000000000000000000000000000001","media":{"track":"inbound","chunk":"2","timestamp":"60","payload":"/////////////////////w=="}}"#,
    r#"{"event":"mark","sequenceNumber":"4","streamSid":"MZ00000000000000000000000000000001","mark":{"name":"reply-1"}}"#,
    r#"{"event":"dtmf","sequenceNumber":"5","streamSid":"MZ00000000000000000000000000000001","dtmf":{"track":"inbound_track","digit":"0"}}"#,
    r#"{"event":"mark","sequenceNumber":"6","streamSid":"MZ00000000000000000000000000000001","mark":{"name":"reply-2"}}"#,
    r#"{"event":"transcription","sequenceNumber":"7","streamSid":"MZ00000000000000000000000000000001","transcription":{"text":"agent please"}}"#,
    r#"{"event":"media","sequenceNumber":"8","streamSid":"MZ00000000000000000000000000000001","media":{"track":"inbound","chunk":"3","timestamp":"oops","payload":"AA=="}}"#,
    r#"{"event":"stop","sequenceNumber":"9","streamSid":"MZ00000000000000000000000000000001","stop":{"accountSid":"AC00000000000000000000000000000001","callSid":"CA00000000000000000000000000000001"}}"#,
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let validator = RequestValidator::new(AUTH_TOKEN);
    println!("validator: {validator:?}");

    // 1. The voice webhook.
    let webhook_url = format!("{PUBLIC_BASE}/twilio/voice");
    let body =
        b"CallSid=CA00000000000000000000000000000001&AccountSid=AC00000000000000000000000000000001\
&From=%2B14155551234&To=%2B15005550006&CallStatus=ringing&Direction=inbound&ApiVersion=2010-04-01";
    // Twilio would send this in `X-Twilio-Signature`; here we sign as a simulator would.
    let header = validator.compute(&webhook_url, Params::from_urlencoded(body).pairs());
    if !validator.validate_urlencoded(&webhook_url, body, &header) {
        println!("webhook: bad signature → 403");
        return Ok(());
    }
    let call = VoiceRequest::from_urlencoded(body)?;
    println!(
        "webhook: call {} from {} to {} ({})",
        call.call_sid,
        call.from.as_deref().unwrap_or("?"),
        call.to.as_deref().unwrap_or("?"),
        call.call_status.as_ref().map_or("?", |s| s.as_str()),
    );
    Stream::check_url(STREAM_URL)?;
    let twiml = Response::new()
        .connect(
            Stream::new(STREAM_URL)
                .parameter("token", "b1f0c2")
                .parameter("call_sid", call.call_sid.as_str()),
        )
        .say("Sorry, the assistant is unavailable. Goodbye.")
        .to_xml();
    println!("webhook: answer 200 text/xml\n  {twiml}");

    // 2. The WebSocket upgrade: signed over the wss:// URL, no params.
    let no_params: &[(&str, &str)] = &[];
    let upgrade_header = validator.compute(STREAM_URL, no_params);
    println!(
        "upgrade: signature valid = {}",
        validator.validate(STREAM_URL, no_params, &upgrade_header)
    );

    // 3. The stream.
    let mut stream_sid = String::new();
    let mut out = String::new();
    let cleared: HashSet<&str> = HashSet::from(["reply-2"]);
    for (n, text) in RECORDED.iter().enumerate() {
        out.clear();
        match stream::parse(text) {
            Ok(Event::Connected(c)) => {
                println!("#{n} connected (protocol {} {})", c.protocol, c.version)
            }
            Ok(Event::Start(s)) => {
                stream_sid = s.stream_sid.as_str().to_owned();
                println!(
                    "#{n} start: stream {} for call {}, token {:?}, μ-law 8 kHz mono: {}",
                    s.stream_sid,
                    s.call_sid,
                    s.parameter("token"),
                    s.media_format.is_mulaw_8k_mono()
                );
            }
            Ok(Event::Media(m)) if m.track == Track::Inbound => {
                let range = m.payload_range(text);
                println!(
                    "#{n} media t={} ms: forward {} audio bytes to the agent (payload at bytes {range:?}, not copied)",
                    m.timestamp,
                    m.decoded_len()
                );
                // Pretend the agent answered: play it, then mark the end of the reply.
                stream::write_media(&mut out, &stream_sid, "f39/f39/f39/fw==");
                out.push('\n');
                stream::write_mark(&mut out, &stream_sid, &format!("reply-{}", m.chunk));
                println!("    send: {}", out.replace('\n', "\n    send: "));
            }
            Ok(Event::Media(m)) => println!("#{n} media on {} track: ignored", m.track.as_str()),
            Ok(Event::Mark(mark)) if cleared.contains(&*mark.name) => {
                println!("#{n} mark {:?}: echo of a cleared mark, ignored", mark.name);
            }
            Ok(Event::Mark(mark)) => {
                println!("#{n} mark {:?}: the caller has heard that reply", mark.name)
            }
            Ok(Event::Dtmf(d)) => {
                println!(
                    "#{n} dtmf {:?}: caller wants an operator; barge in",
                    d.digit
                );
                stream::write_clear(&mut out, &stream_sid);
                println!("    send: {out}");
            }
            Ok(Event::Stop(s)) => println!(
                "#{n} stop: call {} ended, close the agent session",
                s.call_sid
            ),
            Ok(Event::Unknown { event, .. }) => println!("#{n} unknown event {event:?}: ignored"),
            Ok(other) => println!("#{n} {}: ignored", other.name()),
            Err(e) => println!("#{n} bad message, logged and skipped: {e}"),
        }
    }

    // 4. Transfer the caller to a person through the REST API.
    let transfer = Response::new()
        .say("Connecting you to an agent.")
        .dial(
            Dial::number("+15551234567")
                .caller_id("+15005550006")
                .timeout(30),
        )
        .to_xml();
    let path = rest::call_path(call.account_sid.as_str(), call.call_sid.as_str());
    println!(
        "transfer: POST {}{path}\n  {}",
        rest::API_BASE_URL,
        UpdateCall::twiml(transfer)?.to_form()
    );
    Ok(())
}
