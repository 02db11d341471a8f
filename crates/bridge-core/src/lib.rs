//! # bridge-core
//!
//! The sans-IO call engine of phone-agent (work in progress; see ARCHITECTURE.md).
#![warn(missing_docs)]

pub mod audio;
pub mod format;
