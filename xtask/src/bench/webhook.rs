//! `--tool-calls`: the webhook tool the benchmark configures on the server, served by the
//! load process on loopback.
//!
//! A tiny HTTP/1.1 server (hyper) that answers every `POST` [`TOOL_PATH`] carrying a signature
//! header with the fixed JSON [`TOOL_ANSWER`], at once: the benchmark measures what the bridge
//! adds to a tool round trip, not a webhook's own work. Anything else is answered 404 and
//! counted as refused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;

/// The tool's name in the server's `[[tools]]` and in the mock agent's function calls.
pub(crate) const TOOL_NAME: &str = "order_status";
/// The arguments the mock agent calls it with.
pub(crate) const TOOL_ARGUMENTS: &str = r#"{"order_id":"A1234"}"#;
/// The path the webhook serves.
const TOOL_PATH: &str = "/tool";
/// The webhook's answer: the `function_call_output` the agent must get back.
pub(crate) const TOOL_ANSWER: &str = r#"{"status":"shipped","eta":"tomorrow"}"#;
/// The shared secret the server signs webhook requests with (the bench's own, not a secret).
const SIGNING_SECRET: &str = "bench-signing-secret-0123456789abcdef";
/// The header carrying the signature.
const SIGNATURE_HEADER: &str = "x-phone-agent-signature";

/// The running webhook.
#[derive(Debug)]
pub(crate) struct ToolWebhook {
    addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
    /// Requests answered with [`TOOL_ANSWER`].
    pub(crate) answered: Arc<AtomicU64>,
    /// Requests refused (wrong method or path, or no signature header).
    pub(crate) refused: Arc<AtomicU64>,
}

impl ToolWebhook {
    /// Binds `127.0.0.1:0` and serves until dropped.
    pub(crate) async fn start() -> std::io::Result<ToolWebhook> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let answered = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let (a, r) = (Arc::clone(&answered), Arc::clone(&refused));
        let accept = tokio::spawn(async move {
            loop {
                let (tcp, _) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(_) => {
                        // EMFILE and friends: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let (a, r) = (Arc::clone(&a), Arc::clone(&r));
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        answer(req, Arc::clone(&a), Arc::clone(&r))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Ok(ToolWebhook {
            addr,
            accept,
            answered,
            refused,
        })
    }

    /// The server's configuration file: the `[webhooks]` settings and the one `[[tools]]`
    /// entry pointing here.
    pub(crate) fn config_toml(&self) -> String {
        tool_config_toml(&format!("http://{}{TOOL_PATH}", self.addr))
    }
}

impl Drop for ToolWebhook {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The TOML that configures the bench tool at `url` (signed requests, no filler: the answer
/// is immediate).
pub(crate) fn tool_config_toml(url: &str) -> String {
    format!(
        r#"[webhooks]
signing_secret = "{SIGNING_SECRET}"
timeout_ms = 5000

[[tools]]
name = "{TOOL_NAME}"
description = "The status of a customer's order."
url = "{url}"
method = "POST"
parameters = {{ type = "object", properties = {{ order_id = {{ type = "string" }} }}, required = ["order_id"] }}
"#
    )
}

async fn answer(
    req: Request<Incoming>,
    answered: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let ok = *req.method() == hyper::Method::POST
        && req.uri().path() == TOOL_PATH
        && req.headers().contains_key(SIGNATURE_HEADER);
    // Read the whole request, as a real webhook would.
    let _ = req.into_body().collect().await?;
    let response = if ok {
        answered.fetch_add(1, Ordering::Relaxed);
        Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(TOOL_ANSWER.as_bytes())))
    } else {
        refused.fetch_add(1, Ordering::Relaxed);
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::new()))
    };
    // The builder's inputs are constants: it cannot fail.
    Ok(response.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's own configuration loader accepts the generated file with exactly the
    /// bench tool (the whole bench environment around it, as the server process gets it).
    #[test]
    fn the_server_accepts_the_bench_tool_configuration() {
        let dir = std::env::temp_dir().join(format!("bench-tool-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let prompt = dir.join("prompt.md");
        std::fs::write(&prompt, "Be brief. {{call_sid}}").unwrap();
        let file = dir.join("tools.toml");
        std::fs::write(&file, tool_config_toml("http://127.0.0.1:4321/tool")).unwrap();
        let env: std::collections::HashMap<String, String> = super::super::server_env(
            "http://127.0.0.1:9/v1",
            &prompt,
            100,
            crate::demo::DemoBackend::Realtime,
            Some(&file),
        )
        .into_iter()
        .collect();
        let config = phone_agent_server::config::Config::from_env_map(&env);
        std::fs::remove_dir_all(&dir).unwrap();
        let config = config.expect("the bench configuration is valid");
        let tools = &config.tools.webhooks;
        assert_eq!(tools.len(), 1);
        assert_eq!(tools[0].name, TOOL_NAME);
        assert_eq!(tools[0].url, "http://127.0.0.1:4321/tool");
        assert_eq!(tools[0].method, http::Method::POST);
        assert_eq!(tools[0].filler, None);
        assert_eq!(
            tools[0].parameters["required"],
            serde_json::json!(["order_id"])
        );
        assert!(config.tools.signing_secret.is_some());
        // The arguments the mock sends satisfy the schema's required key.
        let args: serde_json::Value = serde_json::from_str(TOOL_ARGUMENTS).unwrap();
        assert_eq!(args["order_id"], "A1234");
    }
}
