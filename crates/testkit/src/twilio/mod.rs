//! Twilio side: call simulator, TwiML reader, request signatures.

pub mod signature;
pub mod twiml;
