//! Audio DSP for the bridge: G.711 codecs, resampling, format conversion, level metering.
//!
//! On the main path the bridge never touches audio: both Twilio and OpenAI speak G.711 μ-law
//! at 8 kHz, so payloads are forwarded as base64 untouched. This module exists for the other
//! cases:
//!
//! * [`g711`] — μ-law and A-law encode/decode (256-entry decode tables, classic encoders).
//! * [`pcm`] — PCM16 little-endian bytes ⇄ `i16` samples.
//! * [`resample`] — a streaming rational polyphase FIR resampler (8 ↔ 16 ↔ 24 kHz and more).
//! * [`transcode`] — a stateful base64-payload converter between any two
//!   [`AudioFormat`](crate::format::AudioFormat)s, only built when the formats differ.
//! * [`energy`] — cheap frame levels in dBFS and an energy voice-activity detector.
//! * [`tone`] — sine tones and silence for tests, demos and prompts.
//!
//! Everything here is pure Rust, synchronous and deterministic. Per-frame work reuses buffers
//! owned by the caller or by the stateful objects, so the steady state does not allocate
//! (except for the outgoing base64 payload, which must be owned).
//!
//! ```
//! use bridge_core::audio::transcode::Transcoder;
//! use bridge_core::format::AudioFormat;
//!
//! let caller = AudioFormat::Mulaw8k; // Twilio
//! // Main path: the agent also speaks μ-law, so there is nothing to build or run.
//! assert!(Transcoder::new(caller, AudioFormat::Mulaw8k)?.is_none());
//! // An agent on PCM16 24 kHz gets one stateful transcoder per direction.
//! let agent = AudioFormat::Pcm16 { rate: 24_000 };
//! let to_agent = Transcoder::new(caller, agent)?.expect("formats differ");
//! let to_caller = Transcoder::new(agent, caller)?.expect("formats differ");
//! assert_eq!(to_agent.output_len(160), 960); // 20 ms: 160 μ-law bytes → 960 PCM16 bytes
//! assert_eq!(to_caller.output_len(960), 160);
//! # Ok::<(), bridge_core::audio::transcode::UnsupportedConversion>(())
//! ```
//!
//! ```
//! use bridge_core::audio::{g711, tone::Tone};
//!
//! // A 1 kHz tone at 8 kHz, encoded as one 20 ms μ-law frame.
//! let mut tone = Tone::new(1000.0, 8000.0, 8_000);
//! let mut frame = Vec::new();
//! tone.ulaw_into(160, &mut frame);
//! assert_eq!(frame.len(), 160);
//! assert!(frame.iter().any(|&c| g711::ulaw_decode(c).abs() > 7000));
//! ```

pub mod energy;
pub mod g711;
pub mod pcm;
pub mod resample;
pub mod tone;
pub mod transcode;
