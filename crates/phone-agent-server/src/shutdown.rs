//! The shutdown signal: resolves on SIGTERM or SIGINT (Ctrl-C).

use std::future::Future;

/// Installs the SIGTERM and SIGINT handlers **now** and returns a future that resolves with the
/// first signal's name. Call it before the server announces that it listens, so a signal sent
/// right after that drains the server instead of killing the process (the default action of a
/// signal without a handler).
pub fn listen() -> impl Future<Output = &'static str> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            match handlers {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => "SIGTERM",
                        _ = int.recv() => "SIGINT",
                    }
                }
                _ => {
                    tracing::warn!(
                        "could not install signal handlers; falling back to Ctrl-C only"
                    );
                    let _ = tokio::signal::ctrl_c().await;
                    "SIGINT"
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

/// Waits for SIGTERM or SIGINT and returns the signal's name (handlers installed when first
/// polled; see [`listen`] to install them earlier).
pub async fn signal() -> &'static str {
    listen().await
}
