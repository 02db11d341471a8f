//! # bridge-core
//!
//! The sans-IO call engine of phone-agent (work in progress; see ARCHITECTURE.md).
#![warn(missing_docs)]

pub mod agent;
pub mod audio;
pub mod caller;
pub mod driver;
pub mod engine;
pub mod format;
pub mod tools;
