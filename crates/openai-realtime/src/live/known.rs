//! Open string vocabularies: values the reference lists today, plus pass-through of new ones.
//!
//! GPT-Live's close reasons, error codes, delegation targets and several backend settings are
//! plain strings whose lists grow over time. Each is a newtype over `Cow<'static, str>` with an
//! associated constant per known value, so code can compare against `CloseReason::EXPIRED`
//! without a string literal, while an unknown value received from the server (or a new value a
//! caller wants to send) still round-trips unchanged instead of failing to parse.

use std::borrow::Cow;
use std::fmt;

macro_rules! known_strings {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$cmeta:meta])* $konst:ident = $value:literal, )+
        }
    ) => {
        $(#[$meta])*
        ///
        /// Unknown values are kept as received; compare with `==` against the constants (or a
        /// `&str`) and use [`is_known`](Self::is_known) to detect values newer than this crate.
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(Cow<'static, str>);

        impl $name {
            $(
                $(#[$cmeta])*
                pub const $konst: Self = Self(Cow::Borrowed($value));
            )+

            /// Every value this crate knows, in reference order.
            pub const KNOWN: &'static [Self] = &[$(Self::$konst),+];

            /// Wraps any value, known or not.
            pub fn new(value: impl Into<Cow<'static, str>>) -> Self {
                Self(value.into())
            }

            /// The wire string.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Whether the value is one of the constants defined by this crate.
            pub fn is_known(&self) -> bool {
                Self::KNOWN.iter().any(|known| known.as_str() == self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.as_str())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl From<&'static str> for $name {
            fn from(value: &'static str) -> Self {
                Self(Cow::Borrowed(value))
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(Cow::Owned(value))
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

known_strings! {
    /// Why a GPT-Live session ended (`session.closed.reason`).
    CloseReason {
        /// The application sent `session.close` (or called the hang-up endpoint).
        CLOSE_REQUESTED = "close_requested",
        /// The session reached its duration limit. Also observed for a session that never
        /// received audio (after about 31 s).
        EXPIRED = "expired",
        /// A safety filter ended the session.
        CONTENT = "content",
        /// The remote primary connection ended gracefully.
        REMOTE_HANGUP = "remote_hangup",
        /// The primary or upstream connection was lost unexpectedly.
        CONNECTION_LOST = "connection_lost",
    }
}

known_strings! {
    /// A machine-readable GPT-Live error code (`error.code`). The reference publishes no full
    /// catalogue; these are the codes seen in the SDK, the guides and public integrations.
    ErrorCode {
        /// An unknown field was sent in a strict object (such as the session configuration).
        UNKNOWN_PARAMETER = "unknown_parameter",
        /// A `session.update` tried to change an immutable setting (model, instructions,
        /// input, audio, store, voice, or the delegation type).
        IMMUTABLE_FIELD_UPDATE = "immutable_field_update",
        /// `response.create` was sent before every pending function call had an output.
        FUNCTION_CALL_OUTPUTS_REQUIRED = "function_call_outputs_required",
        /// A context append was still pending when the session closed or the timeline stalled.
        CONTEXT_INJECTION_INCOMPLETE = "context_injection_incomplete",
        /// The stored recording failed to persist at finalization (a following
        /// `session.closed` does not mean storage succeeded).
        SESSION_STORAGE_FAILED = "session_storage_failed",
        /// A SIP accept/reject raced with another decision.
        DECISION_ALREADY_MADE = "decision_already_made",
        /// An audio payload was malformed (for example empty or odd-length PCM).
        INVALID_AUDIO = "invalid_audio",
        /// The organization has no access to the model (seen at startup).
        MODEL_NOT_FOUND = "model_not_found",
        /// The prepaid balance is exhausted (seen at startup).
        CREDIT_BALANCE_EXHAUSTED = "credit_balance_exhausted",
    }
}

known_strings! {
    /// Who handles a delegation (`session.delegation.created` → `delegation.target`).
    DelegationTarget {
        /// Your application handles the task (client delegation).
        CLIENT = "client",
        /// A Responses model run by OpenAI handles the task.
        RESPONSES = "responses",
        /// The Decisions feature handles the task.
        DECISIONS = "decisions",
    }
}

known_strings! {
    /// Reasoning effort of the delegated Responses model (`reasoning.effort`); supported values
    /// depend on the backend model.
    ReasoningEffort {
        /// No reasoning.
        NONE = "none",
        /// Minimal reasoning.
        MINIMAL = "minimal",
        /// Low effort.
        LOW = "low",
        /// Medium effort.
        MEDIUM = "medium",
        /// High effort.
        HIGH = "high",
        /// Extra-high effort.
        XHIGH = "xhigh",
    }
}

known_strings! {
    /// Reasoning summary requested from the delegated Responses model (`reasoning.summary`).
    ReasoningSummary {
        /// A concise summary.
        CONCISE = "concise",
        /// A detailed summary.
        DETAILED = "detailed",
        /// Let the model choose.
        AUTO = "auto",
    }
}

known_strings! {
    /// Verbosity of the delegated backend's text (`text.verbosity`); does not configure the
    /// voice model's spoken delivery.
    Verbosity {
        /// Terse.
        LOW = "low",
        /// Default detail.
        MEDIUM = "medium",
        /// Detailed.
        HIGH = "high",
    }
}

known_strings! {
    /// Service tier for delegated Responses requests (`service_tier`).
    ServiceTier {
        /// Let the platform choose.
        AUTO = "auto",
        /// The default tier.
        DEFAULT = "default",
        /// Flex processing.
        FLEX = "flex",
        /// Priority processing ("Fast mode").
        PRIORITY = "priority",
        /// Listed by the SDK; availability is model- and account-dependent.
        ULTRAFAST = "ultrafast",
        /// Listed by the SDK as a pilot tier; availability is account-dependent.
        FAST_TIER_TEMP_PILOT = "fast_tier_temp_pilot",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_values_round_trip() {
        let known: CloseReason = serde_json::from_str("\"expired\"").expect("valid JSON string");
        assert_eq!(known, CloseReason::EXPIRED);
        assert!(known.is_known());
        let unknown: CloseReason =
            serde_json::from_str("\"meteor_strike\"").expect("valid JSON string");
        assert!(!unknown.is_known());
        assert_eq!(unknown, "meteor_strike");
        assert_eq!(
            serde_json::to_string(&unknown).expect("string serialization"),
            "\"meteor_strike\""
        );
        assert_eq!(format!("{unknown:?}"), "CloseReason(\"meteor_strike\")");
        assert_eq!(ErrorCode::KNOWN.len(), 9);
    }
}
