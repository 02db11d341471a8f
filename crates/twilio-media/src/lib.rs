//! placeholder
#![warn(missing_docs)]

mod json;
pub mod sid;
pub mod signature;
pub mod stream;
pub mod twiml;

pub use sid::{AccountSid, CallSid, StreamSid};
