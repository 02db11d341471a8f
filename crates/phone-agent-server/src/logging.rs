//! Log output: `tracing-subscriber` with a `RUST_LOG`-style filter, as text or JSON.
//!
//! JSON lines are flat (`message` and the event's fields at the top level) with the current
//! span attached, so every line of a call carries its `call_sid` and `stream_sid`. Audio and
//! secrets are never logged; per-frame events exist only at `trace`.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Fails on an invalid filter or when a subscriber is already
/// installed.
pub fn init(config: &LogConfig) -> Result<(), String> {
    let filter = EnvFilter::try_new(&config.filter)
        .map_err(|e| format!("invalid log filter {:?} (RUST_LOG): {e}", config.filter))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match config.format {
        LogFormat::Text => builder
            .with_target(true)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    result.map_err(|e| format!("could not install the log subscriber: {e}"))
}
