//! Settings of the call records: `[database]`, `[admin]`, `[privacy]` and `[pricing]`.
//!
//! Parsed by [`crate::config`] like every other section (same variables, same file); kept here
//! so the call-record feature is in one place.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{ConfigError, Secret};

/// Where call records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseConfig {
    /// No call records (`database.url = "off"`).
    Off,
    /// An SQLite file, created on first start (with its directory), in WAL mode.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A PostgreSQL server (`postgres://user:password@host/db`).
    Postgres {
        /// The connection URL (it may hold a password: never logged).
        url: Secret,
    },
}

impl DatabaseConfig {
    /// `"off"`, `"sqlite"` or `"postgres"`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            DatabaseConfig::Off => "off",
            DatabaseConfig::Sqlite { .. } => "sqlite",
            DatabaseConfig::Postgres { .. } => "postgres",
        }
    }
}

/// The admin API (`/api/*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Bearer token (`PHONE_AGENT_ADMIN__TOKEN`); without it every `/api/*` route is 404.
    pub token: Option<Secret>,
}

/// What personal data is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrivacyConfig {
    /// Store phone numbers masked (`+44********56`) instead of in full. Logs always mask them.
    pub mask_numbers: bool,
}

/// The price table behind each record's cost estimate, in US dollars.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pricing {
    /// Per million text input tokens.
    pub text_input_per_mtok: f64,
    /// Per million text output tokens.
    pub text_output_per_mtok: f64,
    /// Per million audio input tokens.
    pub audio_input_per_mtok: f64,
    /// Per million audio output tokens.
    pub audio_output_per_mtok: f64,
    /// Per minute of a GPT-Live session (billed per second).
    pub live_per_minute: f64,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawDatabase {
    url: String,
}

impl Default for RawDatabase {
    fn default() -> Self {
        RawDatabase {
            url: "data/calls.db".into(),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawAdmin {
    token: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawPrivacy {
    mask_numbers: bool,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawPricing {
    text_input_per_mtok: f64,
    text_output_per_mtok: f64,
    audio_input_per_mtok: f64,
    audio_output_per_mtok: f64,
    live_per_minute: f64,
}

impl Default for RawPricing {
    fn default() -> Self {
        // OpenAI's published list prices for gpt-realtime and gpt-live-1 when this was written.
        RawPricing {
            text_input_per_mtok: 4.0,
            text_output_per_mtok: 16.0,
            audio_input_per_mtok: 32.0,
            audio_output_per_mtok: 64.0,
            live_per_minute: 0.05,
        }
    }
}

/// The validated settings of the four sections.
pub(crate) type RecordSettings = (DatabaseConfig, AdminConfig, PrivacyConfig, Pricing);

/// Validates the four sections.
pub(crate) fn validate(
    database: RawDatabase,
    admin: RawAdmin,
    privacy: RawPrivacy,
    pricing: RawPricing,
) -> Result<RecordSettings, ConfigError> {
    let database =
        parse_database_url(&database.url).map_err(|m| crate::config::invalid("database.url", m))?;
    let token = crate::config::non_empty(admin.token);
    if let Some(t) = &token
        && t.len() < 16
    {
        return Err(crate::config::invalid(
            "admin.token",
            "must be at least 16 characters (it guards every call record)",
        ));
    }
    let prices = [
        ("pricing.text_input_per_mtok", pricing.text_input_per_mtok),
        ("pricing.text_output_per_mtok", pricing.text_output_per_mtok),
        ("pricing.audio_input_per_mtok", pricing.audio_input_per_mtok),
        (
            "pricing.audio_output_per_mtok",
            pricing.audio_output_per_mtok,
        ),
        ("pricing.live_per_minute", pricing.live_per_minute),
    ];
    for (setting, price) in prices {
        if !(price.is_finite() && price >= 0.0) {
            return Err(crate::config::invalid(
                setting,
                format!("{price} is not a price (a non-negative number of US dollars)"),
            ));
        }
    }
    Ok((
        database,
        AdminConfig {
            token: token.map(Secret::new),
        },
        PrivacyConfig {
            mask_numbers: privacy.mask_numbers,
        },
        Pricing {
            text_input_per_mtok: pricing.text_input_per_mtok,
            text_output_per_mtok: pricing.text_output_per_mtok,
            audio_input_per_mtok: pricing.audio_input_per_mtok,
            audio_output_per_mtok: pricing.audio_output_per_mtok,
            live_per_minute: pricing.live_per_minute,
        },
    ))
}

/// `off`; `postgres://…` / `postgresql://…`; `sqlite://PATH` / `sqlite:PATH`; or a plain file
/// path (SQLite).
fn parse_database_url(raw: &str) -> Result<DatabaseConfig, String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.eq_ignore_ascii_case("off") {
        return Ok(DatabaseConfig::Off);
    }
    let lower = raw.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        return Ok(DatabaseConfig::Postgres {
            url: Secret::new(raw),
        });
    }
    let path = if let Some(rest) = lower.strip_prefix("sqlite:") {
        let rest = &raw[raw.len() - rest.len()..];
        rest.strip_prefix("//").unwrap_or(rest)
    } else if lower.contains("://") {
        return Err(format!(
            "unsupported scheme in {:?}; use a file path (SQLite), postgres://…, or off",
            raw.split("://").next().unwrap_or_default()
        ));
    } else {
        raw
    };
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Err("an SQLite database needs a file path (records must survive a restart)".into());
    }
    Ok(DatabaseConfig::Sqlite {
        path: PathBuf::from(path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(parse_database_url("off").unwrap(), DatabaseConfig::Off);
        assert_eq!(
            parse_database_url("data/calls.db").unwrap(),
            DatabaseConfig::Sqlite {
                path: "data/calls.db".into()
            }
        );
        assert_eq!(
            parse_database_url("sqlite:///var/lib/pa/calls.db?mode=rwc").unwrap(),
            DatabaseConfig::Sqlite {
                path: "/var/lib/pa/calls.db".into()
            }
        );
        assert!(matches!(
            parse_database_url("postgres://u:p@db/calls").unwrap(),
            DatabaseConfig::Postgres { .. }
        ));
        assert!(parse_database_url("mysql://x").is_err());
        assert!(parse_database_url("sqlite::memory:").is_err());
        let pg = parse_database_url("postgresql://u:hunter2@db/calls").unwrap();
        assert!(!format!("{pg:?}").contains("hunter2"));
    }
}
