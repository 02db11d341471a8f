//! Log output: `tracing-subscriber` with a `RUST_LOG`-style filter, as text or JSON.
//!
//! JSON lines are flat (`message` and the event's fields at the top level) with the current
//! span attached, so every line of a call carries its `call_sid` and `stream_sid`. Audio and
//! secrets are never logged; per-frame events exist only at `trace`.
//!
//! The filter is a static [`Targets`] list when the directives are plain `target=level` pairs
//! (the usual case, `info` included), and an [`EnvFilter`] only when they need one (span or
//! field directives such as `[call{call_sid=CA…}]=debug`). The difference matters on the
//! per-frame path: a call's span is entered on every poll of the call, and `EnvFilter` takes a
//! process-wide lock on every enter and exit to track span-scoped directives; `Targets` has
//! nothing to track.

use std::str::FromStr as _;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{LogConfig, LogFormat};

/// A parsed log filter.
#[derive(Debug)]
enum Filter {
    /// `target=level` pairs: decided per callsite, nothing tracked per span.
    Static(Box<Targets>),
    /// Span and field directives.
    Dynamic(Box<EnvFilter>),
}

impl Filter {
    /// Parses `RUST_LOG`-style directives, choosing the cheapest filter that means the same.
    fn parse(directives: &str) -> Result<Filter, String> {
        let dynamic = EnvFilter::try_new(directives)
            .map_err(|e| format!("invalid log filter {directives:?} (RUST_LOG): {e}"))?;
        // `Targets` reads the same `target=level` syntax; anything with spans, fields or
        // regexes (or an empty string, which the two read differently) stays an `EnvFilter`.
        let plain =
            !directives.trim().is_empty() && !directives.contains(['[', '{', '"', '/', '*']);
        Ok(match plain.then(|| Targets::from_str(directives)) {
            Some(Ok(targets)) => Filter::Static(Box::new(targets)),
            _ => Filter::Dynamic(Box::new(dynamic)),
        })
    }

    fn into_layer<S>(self) -> Box<dyn Layer<S> + Send + Sync>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        match self {
            Filter::Static(targets) => targets,
            Filter::Dynamic(env) => env,
        }
    }
}

/// Installs the global subscriber. Fails on an invalid filter or when a subscriber is already
/// installed.
pub fn init(config: &LogConfig) -> Result<(), String> {
    let filter = Filter::parse(&config.filter)?;
    let registry = tracing_subscriber::registry();
    let result = match config.format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(true)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())),
            )
            .with(filter.into_layer())
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .with(filter.into_layer())
            .try_init(),
    };
    result.map_err(|e| format!("could not install the log subscriber: {e}"))
}

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing::level_filters::LevelFilter;

    use super::*;

    fn targets(directives: &str) -> Targets {
        match Filter::parse(directives).expect("valid") {
            Filter::Static(targets) => *targets,
            Filter::Dynamic(_) => panic!("{directives:?} should be a static filter"),
        }
    }

    #[test]
    fn plain_directives_become_a_static_filter_that_means_the_same() {
        let t = targets("info");
        assert!(t.would_enable("phone_agent_server::call", &Level::INFO));
        assert!(!t.would_enable("phone_agent_server::call", &Level::DEBUG));

        let t = targets("warn,phone_agent_server=debug,hyper=off");
        assert!(t.would_enable("phone_agent_server::adapters::twilio", &Level::DEBUG));
        assert!(!t.would_enable("phone_agent_server::adapters::twilio", &Level::TRACE));
        assert!(t.would_enable("bridge_core::driver", &Level::WARN));
        assert!(!t.would_enable("bridge_core::driver", &Level::INFO));
        assert!(!t.would_enable("hyper::proto", &Level::ERROR));
        assert_eq!(t.default_level(), Some(LevelFilter::WARN));
    }

    #[test]
    fn span_and_field_directives_keep_the_dynamic_filter() {
        for directives in ["info,[call{call_sid=CA0001}]=debug", "[call]=trace", ""] {
            assert!(
                matches!(Filter::parse(directives), Ok(Filter::Dynamic(_))),
                "{directives:?}"
            );
        }
    }

    #[test]
    fn an_invalid_filter_is_refused_with_the_directives_named() {
        let err = Filter::parse("info,bridge_core=loud").expect_err("invalid level");
        assert!(err.contains("bridge_core=loud"), "{err}");
    }
}
