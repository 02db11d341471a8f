//! Model names (PROTOCOLS §6.1). Every API field takes any string; these constants only save
//! typing and document what the 21 Aug 2026 schema listed.
//!
//! ```
//! use openai_realtime::realtime::models;
//! assert_eq!(models::DEFAULT, "gpt-realtime-2.1");
//! assert!(models::is_reasoning_model("gpt-realtime-2.1-mini"));
//! assert!(!models::is_reasoning_model("gpt-realtime-2025-08-28"));
//! ```

/// `gpt-realtime-2.1` — the model OpenAI's own guide uses; our default.
pub const GPT_REALTIME_2_1: &str = "gpt-realtime-2.1";
/// `gpt-realtime-2.1-mini`.
pub const GPT_REALTIME_2_1_MINI: &str = "gpt-realtime-2.1-mini";
/// `gpt-realtime-2` — the first reasoning Realtime model.
pub const GPT_REALTIME_2: &str = "gpt-realtime-2";
/// `gpt-realtime-1.5`.
pub const GPT_REALTIME_1_5: &str = "gpt-realtime-1.5";
/// `gpt-realtime` (the first GA model; deprecated).
pub const GPT_REALTIME: &str = "gpt-realtime";
/// `gpt-realtime-mini` (deprecated).
pub const GPT_REALTIME_MINI: &str = "gpt-realtime-mini";

/// The model this crate suggests when nothing is configured: [`GPT_REALTIME_2_1`].
pub const DEFAULT: &str = GPT_REALTIME_2_1;

/// Every model name in the GA session schema (PROTOCOLS §6.1), newest first. Newer names exist
/// or will; never reject a model because it is missing here.
pub const KNOWN: &[&str] = &[
    "gpt-realtime-2.1",
    "gpt-realtime-2.1-mini",
    "gpt-realtime-2",
    "gpt-realtime-1.5",
    "gpt-realtime",
    "gpt-realtime-2025-08-28",
    "gpt-realtime-mini",
    "gpt-realtime-mini-2025-10-06",
    "gpt-realtime-mini-2025-12-15",
    "gpt-audio-1.5",
    "gpt-audio-mini",
    "gpt-audio-mini-2025-10-06",
    "gpt-audio-mini-2025-12-15",
    "gpt-4o-realtime-preview",
    "gpt-4o-realtime-preview-2024-10-01",
    "gpt-4o-realtime-preview-2024-12-17",
    "gpt-4o-realtime-preview-2025-06-03",
    "gpt-4o-mini-realtime-preview",
    "gpt-4o-mini-realtime-preview-2024-12-17",
];

/// Whether `model` is a reasoning Realtime model — `gpt-realtime-2` and later (`gpt-realtime-2`,
/// `gpt-realtime-2.1`, `gpt-realtime-2.1-mini`, …). Only these accept `reasoning.effort` and
/// `parallel_tool_calls` (PROTOCOLS §6.1).
///
/// This is a heuristic on the name: `gpt-realtime-<major>[.<minor>][-suffix]` with
/// `2 <= major < 1000` (so dated snapshots such as `gpt-realtime-2025-08-28` do not count).
pub fn is_reasoning_model(model: &str) -> bool {
    let Some(rest) = model.strip_prefix("gpt-realtime-") else {
        return false;
    };
    let major_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let Some(major) = rest.get(..major_len).and_then(|m| m.parse::<u32>().ok()) else {
        return false;
    };
    let after = rest.get(major_len..).unwrap_or("");
    (2..1000).contains(&major) && (after.is_empty() || after.starts_with(['.', '-']))
}

/// Whether `model` is one of [`KNOWN`] and is *not* a reasoning model: session validation
/// refuses `reasoning`/`parallel_tool_calls` only for these (unknown names get the benefit of
/// the doubt).
pub fn is_known_non_reasoning_model(model: &str) -> bool {
    KNOWN.contains(&model) && !is_reasoning_model(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_heuristic() {
        for m in [
            "gpt-realtime-2",
            "gpt-realtime-2.1",
            "gpt-realtime-2.1-mini",
            "gpt-realtime-3",
        ] {
            assert!(is_reasoning_model(m), "{m}");
        }
        for m in [
            "gpt-realtime",
            "gpt-realtime-1.5",
            "gpt-realtime-mini",
            "gpt-realtime-2025-08-28",
            "gpt-4o-realtime-preview",
            "gpt-realtime-2x",
            "",
        ] {
            assert!(!is_reasoning_model(m), "{m}");
        }
        assert!(is_known_non_reasoning_model("gpt-realtime-1.5"));
        assert!(!is_known_non_reasoning_model("gpt-realtime-2"));
        assert!(!is_known_non_reasoning_model("my-future-model"));
    }
}
