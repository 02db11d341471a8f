//! `phone-agent-server call`: places an outbound call through a running server's admin API
//! (`POST /api/calls`), with the admin token and port of the same configuration (`.env`,
//! environment, `PHONE_AGENT_CONFIG`) the server reads.
//!
//! ```text
//! phone-agent-server call +15551234567 [--profile NAME] [--var KEY=VALUE]… [--from +1…]
//!                                      [--server http://HOST:PORT]
//! ```
//!
//! Prints the call SID on success; otherwise a message saying what went wrong, including
//! whether the call may have been placed anyway (a create whose outcome is unknown is never
//! retried, by the server or here).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::config::Config;

/// Usage of the `call` subcommand.
pub const CALL_USAGE: &str = "\
phone-agent-server call +15551234567 [--profile NAME] [--var KEY=VALUE]... [--from +1...] [--server URL]
    places an outbound call through the running server's admin API (POST /api/calls), with
    the admin token (PHONE_AGENT_ADMIN__TOKEN) and port of this configuration; --server
    overrides the server's address (default http://127.0.0.1:PORT). Prints the call SID.";

/// How long the server may take to answer (it waits for Twilio's answer to `Calls.create`).
const TIMEOUT: Duration = Duration::from_secs(60);

/// The arguments of `call`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallArgs {
    /// The destination.
    pub to: String,
    /// `--from`.
    pub from: Option<String>,
    /// `--profile`.
    pub profile: Option<String>,
    /// `--var KEY=VALUE`, repeatable.
    pub variables: BTreeMap<String, String>,
    /// `--server URL`.
    pub server: Option<String>,
}

/// Parses the arguments after `call`.
pub fn parse_call_args(args: impl IntoIterator<Item = String>) -> Result<CallArgs, String> {
    let mut out = CallArgs::default();
    let mut to = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--profile" => out.profile = Some(value("--profile")?),
            "--from" => out.from = Some(value("--from")?),
            "--server" => out.server = Some(value("--server")?),
            "--var" => {
                let pair = value("--var")?;
                let Some((k, v)) = pair.split_once('=') else {
                    return Err(format!("--var {pair:?}: expected KEY=VALUE"));
                };
                out.variables.insert(k.to_owned(), v.to_owned());
            }
            other if other.starts_with('-') && other.len() > 1 && !other.starts_with("-+") => {
                return Err(format!("unknown option {other:?}"));
            }
            number => {
                if to.replace(number.to_owned()).is_some() {
                    return Err(format!(
                        "unexpected argument {number:?} (one number per call)"
                    ));
                }
            }
        }
    }
    out.to = to.ok_or("which number? e.g. phone-agent-server call +15551234567")?;
    Ok(out)
}

/// The server's base URL: `--server`, or the configured port on the loopback address (the
/// bind address when it is a specific one).
fn server_url(config: &Config, args: &CallArgs) -> String {
    if let Some(url) = &args.server {
        return url.trim_end_matches('/').to_owned();
    }
    let ip = match config.server.bind_address {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    format!(
        "http://{}",
        std::net::SocketAddr::new(ip, config.server.port)
    )
}

/// Places the call; the call SID, or a message for the user.
pub async fn place_call(config: &Config, args: &CallArgs) -> Result<String, String> {
    let token = config.admin.token.as_ref().ok_or(
        "the admin API needs a token: set PHONE_AGENT_ADMIN__TOKEN (the same value as the \
         server's)",
    )?;
    let base = server_url(config, args);
    let url = format!("{base}/api/calls");
    let mut body = serde_json::json!({ "to": args.to });
    if let Some(from) = &args.from {
        body["from"] = from.as_str().into();
    }
    if let Some(profile) = &args.profile {
        body["profile"] = profile.as_str().into();
    }
    if !args.variables.is_empty() {
        body["variables"] = serde_json::to_value(&args.variables).unwrap_or_default();
    }
    let http = crate::twilio_rest::http_client()?;
    let response = http
        .post(&url)
        .bearer_auth(token.expose())
        .json(&body)
        .timeout(TIMEOUT)
        .send()
        .await
        .map_err(|e| {
            if e.is_connect() {
                format!(
                    "cannot reach the server at {base} ({}); is it running? (--server URL)",
                    crate::twilio_rest::describe(&e)
                )
            } else {
                format!(
                    "no answer from the server at {base} ({}): the call may have been placed; \
                     check the call log before trying again",
                    crate::twilio_rest::describe(&e)
                )
            }
        })?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|e| format!("reading the server's answer: {e}"))?;
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    match status {
        201 => json["call_sid"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("the server answered 201 without a call SID: {text}")),
        404 if json.get("error").is_none() => Err(format!(
            "the server at {base} has no admin API: set PHONE_AGENT_ADMIN__TOKEN on the server"
        )),
        401 => Err("the server refused the admin token (PHONE_AGENT_ADMIN__TOKEN differs)".into()),
        _ => Err(match json["error"].as_str() {
            Some(message) => format!("{message} (HTTP {status})"),
            None => format!("the server answered {status}: {text}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<CallArgs, String> {
        parse_call_args(list.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn parses_the_call_subcommand() {
        let a = args(&[
            "+15551234567",
            "--profile",
            "sales",
            "--var",
            "name=Ada",
            "--var",
            "note=a=b",
        ])
        .unwrap();
        assert_eq!(a.to, "+15551234567");
        assert_eq!(a.profile.as_deref(), Some("sales"));
        assert_eq!(a.variables["name"], "Ada");
        assert_eq!(a.variables["note"], "a=b");
        assert!(args(&[]).is_err());
        assert!(args(&["+1555", "+1666"]).is_err());
        assert!(args(&["+1555", "--var", "novalue"]).is_err());
        assert!(args(&["+1555", "--profile"]).is_err());
        assert!(args(&["+1555", "--colour", "red"]).is_err());
    }
}
