//! Connects to the Realtime GA API, sends a `session.update`, and prints the type of every
//! event received until the session is updated (or 20 events have arrived).
//!
//! ```sh
//! OPENAI_API_KEY=sk-... cargo run -p openai-realtime --features client --example connect
//! # optional: OPENAI_BASE_URL (default https://api.openai.com/v1), OPENAI_ORG_ID,
//! # OPENAI_PROJECT_ID, and REALTIME_MODEL (default gpt-realtime)
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use openai_realtime::client::{DEFAULT_CLOSE_TIMEOUT, EndpointBuilder, Incoming, Target};

#[derive(serde::Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            let mut source = err.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = EndpointBuilder::from_vars(|name| std::env::var(name).ok())?.build()?;
    let model = std::env::var("REALTIME_MODEL").unwrap_or_else(|_| "gpt-realtime".to_owned());
    let target = Target::realtime(model);
    println!("connecting to {}", endpoint.url(&target));

    let mut connection = endpoint.connect(&target).await?;
    let info = connection.info();
    println!(
        "connected after {} attempt(s); x-request-id {}; TCP_NODELAY {:?}",
        info.attempts(),
        info.request_id().unwrap_or("-"),
        info.tcp_nodelay()
    );

    connection
        .send_json(&serde_json::json!({
            "type": "session.update",
            "session": {
                "type": "realtime",
                "instructions": "You are a friendly phone agent. Be brief.",
                "output_modalities": ["audio"],
                "audio": {
                    "input": {
                        "format": { "type": "audio/pcmu" },
                        "turn_detection": { "type": "server_vad" }
                    },
                    "output": { "format": { "type": "audio/pcmu" }, "voice": "marin" }
                }
            }
        }))
        .await?;

    let mut seen = 0;
    while let Some(item) = connection.recv().await {
        match item? {
            Incoming::Text(text) => {
                seen += 1;
                match serde_json::from_str::<Event<'_>>(text.as_str()) {
                    Ok(event) => {
                        println!("{:>3} {} ({} bytes)", seen, event.kind, text.len());
                        if event.kind == "error" {
                            println!("    {}", text.as_str());
                        }
                        if event.kind == "session.updated" || event.kind == "error" {
                            break;
                        }
                    }
                    Err(err) => println!("{seen:>3} unparsable message: {err}"),
                }
                if seen >= 20 {
                    break;
                }
            }
            Incoming::Close(reason) => {
                println!("server closed the connection: {reason:?}");
                return Ok(());
            }
            _ => {}
        }
    }

    let report = connection
        .close_with_reason(1000, "example done", DEFAULT_CLOSE_TIMEOUT)
        .await?;
    println!("closed: {:?}", report.end);
    Ok(())
}
