//! Per-number profiles: which prompt, voice, greeting, back end, tools, MCP servers and
//! transfer destinations answer a call, chosen by the number called (`To`).
//!
//! Built once at startup from `[profiles.NAME]` over the top-level settings (a profile's unset
//! fields inherit them). The **default** profile answers every number no profile lists: the
//! profile named `default` if there is one, otherwise the top-level settings with every
//! configured tool and MCP server.
//!
//! `/voice` picks the profile and writes its name into the stream's `<Parameter
//! name="profile">`; `/media` reads it back from Twilio's `start` message, so the two routes
//! (possibly on different instances) share no state. An unknown name (a stale stream after a
//! redeploy) falls back to the default profile, with a warning.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bridge_core::engine::CallConfig;

use crate::config::{AgentConfig, Backend, Config};
use crate::outbound::settings::AmdPolicy;
use crate::tools::ToolSet;
use crate::tools::config::McpServer;

/// The name of the implicit default profile.
pub(crate) const DEFAULT_PROFILE: &str = "default";

/// One profile, ready for calls.
#[derive(Debug)]
pub(crate) struct Profile {
    pub(crate) name: String,
    /// The agent settings with the profile's overrides applied.
    pub(crate) agent: AgentConfig,
    pub(crate) tools: Arc<ToolSet>,
    pub(crate) mcp_servers: Vec<McpServer>,
    /// What outbound calls of this profile do on AMD's verdict.
    pub(crate) amd: AmdPolicy,
    /// The engine's configuration of this profile's calls: see [`Profile::call_config`].
    call_config: OnceLock<Arc<CallConfig>>,
}

impl Profile {
    /// The engine's configuration of this profile's calls, made by `build` at the profile's
    /// first call and shared by every later one (an `Arc` clone instead of ~0.5 KB in each
    /// call's future and its strings on the heap). `build`'s inputs must be fixed for the
    /// process: the configuration, this profile, whether a call store is open. A call that
    /// needs something of its own (a resumed conversation) clones it.
    pub(crate) fn call_config(&self, build: impl FnOnce() -> CallConfig) -> Arc<CallConfig> {
        Arc::clone(self.call_config.get_or_init(|| Arc::new(build())))
    }

    /// The `{"type":"mcp",…}` session tools of the profile's MCP servers.
    pub(crate) fn mcp_tools(&self) -> Vec<serde_json::Value> {
        self.mcp_servers
            .iter()
            .map(McpServer::session_tool)
            .collect()
    }
}

/// Every profile, by name and by number.
#[derive(Debug)]
pub(crate) struct Profiles {
    default: Arc<Profile>,
    by_name: HashMap<String, Arc<Profile>>,
    by_number: HashMap<String, Arc<Profile>>,
}

/// The back end a profile names.
fn backend(name: &str, config: &Config, key: &str) -> Result<Backend, String> {
    match name {
        "realtime" => {
            if config.openai.api_key.is_none() {
                return Err(format!("invalid {key}: \"realtime\" needs OPENAI_API_KEY"));
            }
            Ok(Backend::Realtime)
        }
        "echo" => Ok(Backend::Echo),
        "live" => {
            if config.openai.api_key.is_none() {
                return Err(format!("invalid {key}: \"live\" needs OPENAI_API_KEY"));
            }
            if config.twilio.auth_token.is_none() && !config.twilio.danger_allow_unsigned_requests {
                return Err(format!(
                    "invalid {key}: \"live\" is billed, but TWILIO_AUTH_TOKEN is not set; set \
                     TWILIO_AUTH_TOKEN and PUBLIC_URL"
                ));
            }
            Ok(Backend::Live)
        }
        other => Err(format!(
            "invalid {key}: {other:?} is not one of realtime, echo, live"
        )),
    }
}

impl Profiles {
    /// Builds every profile. Errors name the key.
    pub(crate) fn build(config: &Config) -> Result<Profiles, String> {
        let tools = &config.tools;
        let mut by_name = HashMap::new();
        let mut by_number = HashMap::new();
        let mut default = None;
        for p in &tools.profiles {
            let mut agent = config.agent.clone();
            if let Some(path) = &p.prompt_path {
                agent.prompt_path = path.clone();
            }
            if let Some(voice) = &p.voice {
                agent.voice = voice.clone();
            }
            if let Some(greeting) = &p.greeting {
                agent.greeting = greeting.clone();
            }
            if let Some(mode) = p.goodbye_barge_in {
                agent.goodbye_barge_in = mode;
            }
            if let Some(name) = &p.backend {
                agent.backend = backend(name, config, &format!("profiles.{}.backend", p.name))?;
            }
            let mcp_servers = tools
                .mcp_servers
                .iter()
                .filter(|m| p.mcp_servers.as_ref().is_none_or(|l| l.contains(&m.label)))
                .cloned()
                .collect();
            let profile = Arc::new(Profile {
                name: p.name.clone(),
                agent,
                tools: Arc::new(ToolSet::build(
                    tools,
                    p.tools.as_deref(),
                    p.transfer_destinations.as_deref(),
                )),
                mcp_servers,
                amd: config
                    .outbound
                    .amd
                    .with_overrides(
                        p.on_machine.as_deref(),
                        p.on_fax.as_deref(),
                        p.on_unknown.as_deref(),
                        p.voicemail_message.as_deref(),
                        p.voicemail_instructions.as_deref(),
                        &format!("profiles.{}", p.name),
                    )
                    .map_err(|(key, message)| format!("invalid {key}: {message}"))?,
                call_config: OnceLock::new(),
            });
            for n in &p.numbers {
                by_number.insert(n.clone(), Arc::clone(&profile));
            }
            if p.name == DEFAULT_PROFILE {
                default = Some(Arc::clone(&profile));
            }
            by_name.insert(p.name.clone(), profile);
        }
        let default = default.unwrap_or_else(|| {
            Arc::new(Profile {
                name: DEFAULT_PROFILE.to_owned(),
                agent: config.agent.clone(),
                tools: Arc::new(ToolSet::build(tools, None, None)),
                mcp_servers: tools.mcp_servers.clone(),
                amd: config.outbound.amd.clone(),
                call_config: OnceLock::new(),
            })
        });
        Ok(Profiles {
            default,
            by_name,
            by_number,
        })
    }

    /// The profile answering calls to `to`.
    pub(crate) fn for_number(&self, to: Option<&str>) -> &Arc<Profile> {
        to.and_then(|n| self.by_number.get(n))
            .unwrap_or(&self.default)
    }

    /// The profile named in a stream's parameters.
    pub(crate) fn named(&self, name: Option<&str>) -> &Arc<Profile> {
        match name {
            None => &self.default,
            Some(n) if n == self.default.name => &self.default,
            Some(n) => self.by_name.get(n).unwrap_or_else(|| {
                tracing::warn!(
                    profile = n,
                    "the stream names an unknown profile; using the default"
                );
                &self.default
            }),
        }
    }

    /// The profile with this name, if there is one (`default` is always there).
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Profile>> {
        if name == self.default.name {
            Some(&self.default)
        } else {
            self.by_name.get(name)
        }
    }

    /// Every profile (the default first).
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<Profile>> {
        std::iter::once(&self.default).chain(
            self.by_name
                .values()
                .filter(|p| !Arc::ptr_eq(p, &self.default)),
        )
    }
}
