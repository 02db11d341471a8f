//! `[outbound]`: who the admin API may call, the caller ID, and what to do when answering
//! machine detection (AMD) says a machine, a fax or nobody-knows answered.
//!
//! **The allow-list is toll-fraud protection.** An API that places calls is what fraudsters
//! look for (premium-rate and international destinations billed to you), so by default
//! `allowed_destinations` is empty and `POST /api/calls` refuses every destination (403) until
//! you list the numbers or E.164 prefixes (`+1`, `+4420`, `+15551234567`) it may call.

use serde::{Deserialize, Deserializer};

use crate::config::{ConfigError, invalid, non_empty};

/// What to do with an outbound call once AMD has classified who answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmdAction {
    /// Let the agent talk (nothing to do).
    Converse,
    /// Leave the profile's voicemail message (`<Say>`), then hang up.
    Voicemail,
    /// The live call's agent leaves the message (`voicemail_instructions`), and the call hangs
    /// up once it has been heard; `<Say>` is the fallback. Machines only (after the beep).
    AgentVoicemail,
    /// Hang up at once (REST `Status=completed`).
    Hangup,
}

/// What [`AmdAction::parse`] accepts, for error messages.
const ACTIONS: &str = "converse, voicemail, agent_voicemail, hangup";

/// What the agent is told when it is to leave the message and the profile says nothing else
/// (`{{voicemail_message}}` is the profile's message; the call's variables apply too).
pub const DEFAULT_VOICEMAIL_INSTRUCTIONS: &str = "You have reached a voicemail box and the \
    beep has sounded: the recording runs now. Leave this message in your own words, in one \
    go, and then stop talking (the call ends after it): {{voicemail_message}}";

impl AmdAction {
    /// Parses `converse`, `voicemail` or `hangup`.
    pub fn parse(s: &str) -> Option<AmdAction> {
        match s.trim() {
            "converse" => Some(AmdAction::Converse),
            "voicemail" => Some(AmdAction::Voicemail),
            "agent_voicemail" => Some(AmdAction::AgentVoicemail),
            "hangup" => Some(AmdAction::Hangup),
            _ => None,
        }
    }

    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AmdAction::Converse => "converse",
            AmdAction::Voicemail => "voicemail",
            AmdAction::AgentVoicemail => "agent_voicemail",
            AmdAction::Hangup => "hangup",
        }
    }
}

/// The AMD policy of one profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmdPolicy {
    /// `machine_end_beep`, `machine_end_silence`, `machine_end_other`.
    pub on_machine: AmdAction,
    /// `fax`.
    pub on_fax: AmdAction,
    /// `unknown` (and `machine_start`, which only `MachineDetection=Enable` sends).
    pub on_unknown: AmdAction,
    /// Said (`<Say>`) on `voicemail`, and the fallback of `agent_voicemail`; required when any
    /// action is one of them.
    pub voicemail_message: Option<String>,
    /// What the agent is told on `agent_voicemail` (a template: `{{voicemail_message}}` and
    /// the call's variables).
    pub voicemail_instructions: String,
}

impl AmdPolicy {
    /// The action for Twilio's `AnsweredBy` value (`human` → converse).
    pub fn action_for(&self, answered_by: &str) -> AmdAction {
        match answered_by {
            "human" => AmdAction::Converse,
            "machine_end_beep" | "machine_end_silence" | "machine_end_other" => self.on_machine,
            "fax" => self.on_fax,
            _ => self.on_unknown,
        }
    }

    /// Applies a profile's overrides (raw strings; `key` names the profile's table) and checks
    /// that `voicemail` has a message. The error is the key at fault and what is wrong.
    pub fn with_overrides(
        &self,
        on_machine: Option<&str>,
        on_fax: Option<&str>,
        on_unknown: Option<&str>,
        voicemail_message: Option<&str>,
        voicemail_instructions: Option<&str>,
        key: &str,
    ) -> Result<AmdPolicy, (String, String)> {
        let action = |value: Option<&str>, field: &str, current: AmdAction| match value {
            None => Ok(current),
            Some(v) => AmdAction::parse(v).ok_or_else(|| {
                (
                    format!("{key}.{field}"),
                    format!("{v:?} is not one of {ACTIONS}"),
                )
            }),
        };
        let policy = AmdPolicy {
            on_machine: action(on_machine, "on_machine", self.on_machine)?,
            on_fax: action(on_fax, "on_fax", self.on_fax)?,
            on_unknown: action(on_unknown, "on_unknown", self.on_unknown)?,
            voicemail_message: match voicemail_message {
                Some(m) => non_empty(m.to_owned()),
                None => self.voicemail_message.clone(),
            },
            voicemail_instructions: match voicemail_instructions
                .and_then(|i| non_empty(i.to_owned()))
            {
                Some(i) => i,
                None => self.voicemail_instructions.clone(),
            },
        };
        policy
            .check()
            .map_err(|(field, m)| (format!("{key}.{field}"), m))?;
        Ok(policy)
    }

    /// The field at fault and what is wrong.
    fn check(&self) -> Result<(), (&'static str, String)> {
        for (field, action) in [("on_fax", self.on_fax), ("on_unknown", self.on_unknown)] {
            if action == AmdAction::AgentVoicemail {
                return Err((
                    field,
                    "\"agent_voicemail\" is for machines (on_machine): it speaks after the beep"
                        .into(),
                ));
            }
        }
        let uses_voicemail = [self.on_machine, self.on_fax, self.on_unknown]
            .iter()
            .any(|a| matches!(a, AmdAction::Voicemail | AmdAction::AgentVoicemail));
        if uses_voicemail && self.voicemail_message.is_none() {
            return Err((
                "voicemail_message",
                "an action is \"voicemail\" or \"agent_voicemail\" but voicemail_message is empty"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// The validated `[outbound]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundConfig {
    /// E.164 prefixes (or whole numbers) the API may call; empty: none.
    pub allowed_destinations: Vec<String>,
    /// The caller ID when a request names none (a Twilio number or verified caller ID).
    pub from: Option<String>,
    /// How long the callee's phone rings (`Timeout`, seconds).
    pub ring_timeout_secs: u32,
    /// The default AMD policy (profiles may override it).
    pub amd: AmdPolicy,
}

impl OutboundConfig {
    /// Whether `to` (an E.164 number) is on the allow-list.
    pub fn allows(&self, to: &str) -> bool {
        self.allowed_destinations
            .iter()
            .any(|prefix| to.starts_with(prefix.as_str()))
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawOutbound {
    #[serde(deserialize_with = "list_or_csv")]
    allowed_destinations: Vec<String>,
    from: String,
    ring_timeout_secs: i64,
    on_machine: String,
    on_fax: String,
    on_unknown: String,
    voicemail_message: String,
    voicemail_instructions: String,
}

impl Default for RawOutbound {
    fn default() -> Self {
        RawOutbound {
            allowed_destinations: Vec::new(),
            from: String::new(),
            ring_timeout_secs: 30,
            on_machine: "hangup".into(),
            on_fax: "hangup".into(),
            on_unknown: "converse".into(),
            voicemail_message: String::new(),
            voicemail_instructions: DEFAULT_VOICEMAIL_INSTRUCTIONS.into(),
        }
    }
}

/// A TOML array, or (from an environment variable) a comma-separated string.
fn list_or_csv<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCsv {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match ListOrCsv::deserialize(d)? {
        ListOrCsv::List(list) => list,
        ListOrCsv::Csv(csv) => csv
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// Whether `s` is `+` followed by 0–15 digits (an E.164 prefix; `+` alone allows everything).
fn is_e164_prefix(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| d.len() <= 15 && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Validates `[outbound]`.
pub(crate) fn validate(raw: RawOutbound) -> Result<OutboundConfig, ConfigError> {
    let mut allowed = Vec::with_capacity(raw.allowed_destinations.len());
    for entry in raw.allowed_destinations {
        let entry = entry.trim().to_owned();
        if !is_e164_prefix(&entry) {
            return Err(invalid(
                "outbound.allowed_destinations",
                format!(
                    "{entry:?} is not an E.164 number or prefix (a + and digits, e.g. +1 or +4420)"
                ),
            ));
        }
        allowed.push(entry);
    }
    let from = non_empty(raw.from);
    if let Some(from) = &from
        && !crate::tools::config::is_e164(from)
    {
        return Err(invalid(
            "outbound.from",
            format!("{from:?} is not an E.164 number"),
        ));
    }
    let ring_timeout_secs = u32::try_from(raw.ring_timeout_secs)
        .ok()
        .filter(|s| (5..=600).contains(s))
        .ok_or_else(|| {
            invalid(
                "outbound.ring_timeout_secs",
                format!("{} is not between 5 and 600", raw.ring_timeout_secs),
            )
        })?;
    let action = |setting: &'static str, value: &str| {
        AmdAction::parse(value)
            .ok_or_else(|| invalid(setting, format!("{value:?} is not one of {ACTIONS}")))
    };
    let amd = AmdPolicy {
        on_machine: action("outbound.on_machine", &raw.on_machine)?,
        on_fax: action("outbound.on_fax", &raw.on_fax)?,
        on_unknown: action("outbound.on_unknown", &raw.on_unknown)?,
        voicemail_message: non_empty(raw.voicemail_message),
        voicemail_instructions: non_empty(raw.voicemail_instructions)
            .unwrap_or_else(|| DEFAULT_VOICEMAIL_INSTRUCTIONS.to_owned()),
    };
    amd.check().map_err(|(field, m)| {
        let setting = match field {
            "on_fax" => "outbound.on_fax",
            "on_unknown" => "outbound.on_unknown",
            _ => "outbound.voicemail_message",
        };
        invalid(setting, m)
    })?;
    Ok(OutboundConfig {
        allowed_destinations: allowed,
        from,
        ring_timeout_secs,
        amd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AmdPolicy {
        AmdPolicy {
            on_machine: AmdAction::Voicemail,
            on_fax: AmdAction::Hangup,
            on_unknown: AmdAction::Converse,
            voicemail_message: Some("Call us back.".into()),
            voicemail_instructions: DEFAULT_VOICEMAIL_INSTRUCTIONS.into(),
        }
    }

    #[test]
    fn answered_by_maps_to_the_policy() {
        let p = policy();
        assert_eq!(p.action_for("human"), AmdAction::Converse);
        for machine in [
            "machine_end_beep",
            "machine_end_silence",
            "machine_end_other",
        ] {
            assert_eq!(p.action_for(machine), AmdAction::Voicemail, "{machine}");
        }
        assert_eq!(p.action_for("fax"), AmdAction::Hangup);
        assert_eq!(p.action_for("unknown"), AmdAction::Converse);
        assert_eq!(p.action_for("machine_start"), AmdAction::Converse);
    }

    #[test]
    fn overrides_and_their_errors() {
        let p = policy()
            .with_overrides(Some("hangup"), None, None, None, None, "profiles.x")
            .unwrap();
        assert_eq!(p.on_machine, AmdAction::Hangup);
        assert_eq!(
            policy()
                .with_overrides(Some("shout"), None, None, None, None, "profiles.x")
                .unwrap_err(),
            (
                "profiles.x.on_machine".to_owned(),
                "\"shout\" is not one of converse, voicemail, agent_voicemail, hangup".to_owned()
            )
        );
        assert_eq!(
            policy()
                .with_overrides(None, None, None, Some(" "), None, "profiles.x")
                .unwrap_err(),
            (
                "profiles.x.voicemail_message".to_owned(),
                "an action is \"voicemail\" or \"agent_voicemail\" but voicemail_message is empty"
                    .to_owned()
            )
        );
        let agent = policy()
            .with_overrides(
                Some("agent_voicemail"),
                None,
                None,
                None,
                Some("Say {{voicemail_message}}"),
                "profiles.x",
            )
            .unwrap();
        assert_eq!(agent.on_machine, AmdAction::AgentVoicemail);
        assert_eq!(agent.voicemail_instructions, "Say {{voicemail_message}}");
        assert_eq!(
            policy()
                .with_overrides(
                    None,
                    None,
                    Some("agent_voicemail"),
                    None,
                    None,
                    "profiles.x"
                )
                .unwrap_err()
                .0,
            "profiles.x.on_unknown"
        );
    }

    #[test]
    fn allow_list_is_by_prefix_and_empty_allows_nothing() {
        let mut c = validate(RawOutbound::default()).unwrap();
        assert!(!c.allows("+15551234567"));
        c.allowed_destinations = vec!["+1555".into(), "+447911123456".into()];
        assert!(c.allows("+15551234567"));
        assert!(c.allows("+447911123456"));
        assert!(!c.allows("+447911123457"));
        assert!(!c.allows("+16501234567"));
    }

    #[test]
    fn entries_must_be_e164_prefixes() {
        assert!(is_e164_prefix("+"));
        assert!(is_e164_prefix("+44"));
        assert!(!is_e164_prefix("44"));
        assert!(!is_e164_prefix("+1-555"));
        assert!(!is_e164_prefix("+1234567890123456"));
    }
}
