//! The history page's filters and totals over the call store.
//!
//! Time, number and end reason are filtered by the store's query; the profile (not a column)
//! by reading the records. Totals cover every matching call up to [`SCAN_LIMIT`] (the page says
//! so when there are more); the table shows the newest [`SHOWN`].

use crate::store::ListQuery;

/// The most calls read for one history page.
pub(crate) const SCAN_LIMIT: i64 = 5_000;
/// Calls listed in the table.
pub(crate) const SHOWN: usize = 100;

/// The period a history page covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Period {
    Hour,
    Day,
    Week,
    Month,
    All,
}

impl Period {
    /// Every period, in the order the form offers them.
    pub(crate) const ALL: &'static [Period] = &[
        Period::Hour,
        Period::Day,
        Period::Week,
        Period::Month,
        Period::All,
    ];

    /// Its query-string value.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Period::Hour => "1h",
            Period::Day => "24h",
            Period::Week => "7d",
            Period::Month => "30d",
            Period::All => "all",
        }
    }

    /// Its label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Period::Hour => "last hour",
            Period::Day => "last 24 hours",
            Period::Week => "last 7 days",
            Period::Month => "last 30 days",
            Period::All => "all time",
        }
    }

    fn millis(self) -> Option<i64> {
        let hour = 3_600_000;
        match self {
            Period::Hour => Some(hour),
            Period::Day => Some(24 * hour),
            Period::Week => Some(7 * 24 * hour),
            Period::Month => Some(30 * 24 * hour),
            Period::All => None,
        }
    }
}

/// The filters of one history page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filters {
    pub(crate) period: Period,
    pub(crate) number: Option<String>,
    pub(crate) end_reason: Option<String>,
    pub(crate) profile: Option<String>,
}

impl Filters {
    /// The filters of a query string; unknown keys and empty values are ignored, an unknown
    /// period is "last 24 hours".
    pub(crate) fn parse(query: Option<&str>) -> Filters {
        let mut f = Filters {
            period: Period::Day,
            number: None,
            end_reason: None,
            profile: None,
        };
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let value = value.trim();
            let v = (!value.is_empty()).then(|| value.to_owned());
            match key.as_ref() {
                "period" => {
                    f.period = Period::ALL
                        .iter()
                        .copied()
                        .find(|p| p.key() == value)
                        .unwrap_or(Period::Day);
                }
                "number" => f.number = v,
                "end_reason" => f.end_reason = v,
                "profile" => f.profile = v,
                _ => {}
            }
        }
        f
    }

    /// The store query (at `now_ms`).
    pub(crate) fn query(&self, now_ms: i64) -> ListQuery {
        ListQuery {
            since_ms: self.period.millis().map(|p| now_ms - p),
            number: self.number.clone(),
            end_reason: self.end_reason.clone(),
            limit: SCAN_LIMIT,
            ..ListQuery::default()
        }
    }

    /// Whether a stored call passes the filters the store cannot apply.
    pub(crate) fn keeps(&self, call: &serde_json::Value) -> bool {
        self.profile
            .as_deref()
            .is_none_or(|p| call["profile"].as_str() == Some(p))
    }
}

/// Totals over the matching calls.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Totals {
    pub(crate) calls: usize,
    pub(crate) minutes: f64,
    pub(crate) cost_usd: f64,
    pub(crate) median_first_audio_ms: Option<u64>,
}

/// The totals of `calls` (stored calls as JSON).
pub(crate) fn totals(calls: &[serde_json::Value]) -> Totals {
    let mut latencies: Vec<u64> = calls
        .iter()
        .filter_map(|c| c["latency"]["first_audio_ms"].as_u64())
        .collect();
    latencies.sort_unstable();
    let median = match latencies.len() {
        0 => None,
        n if n % 2 == 1 => Some(latencies[n / 2]),
        n => Some((latencies[n / 2 - 1] + latencies[n / 2]) / 2),
    };
    Totals {
        calls: calls.len(),
        minutes: calls
            .iter()
            .filter_map(|c| c["duration_ms"].as_u64())
            .sum::<u64>() as f64
            / 60_000.0,
        cost_usd: calls.iter().filter_map(|c| c["cost"]["usd"].as_f64()).sum(),
        median_first_audio_ms: median,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_from_the_query() {
        let f = Filters::parse(Some(
            "period=7d&number=%2B1555&end_reason=&profile=sales&x=1",
        ));
        assert_eq!(f.period, Period::Week);
        assert_eq!(f.number.as_deref(), Some("+1555"));
        assert_eq!(f.end_reason, None);
        assert_eq!(f.profile.as_deref(), Some("sales"));
        let q = f.query(1_000_000_000);
        assert_eq!(q.since_ms, Some(1_000_000_000 - 7 * 24 * 3_600_000));
        assert_eq!(q.limit, SCAN_LIMIT);
        assert!(f.keeps(&json!({"profile": "sales"})));
        assert!(!f.keeps(&json!({"profile": "default"})));
        assert_eq!(Filters::parse(Some("period=forever")).period, Period::Day);
        assert_eq!(Filters::parse(Some("period=all")).query(5).since_ms, None);
    }

    #[test]
    fn totals_and_median() {
        let calls = vec![
            json!({"duration_ms": 60_000, "cost": {"usd": 0.25}, "latency": {"first_audio_ms": 300}}),
            json!({"duration_ms": 30_000, "cost": {"usd": 0.5}, "latency": {"first_audio_ms": 500}}),
            json!({"duration_ms": 30_000, "cost": {"usd": 0.25}, "latency": {"first_audio_ms": 900}}),
            json!({"duration_ms": null, "latency": {}}),
        ];
        let t = totals(&calls);
        assert_eq!(t.calls, 4);
        assert!((t.minutes - 2.0).abs() < 1e-9);
        assert!((t.cost_usd - 1.0).abs() < 1e-9);
        assert_eq!(t.median_first_audio_ms, Some(500));
        assert_eq!(totals(&calls[..2]).median_first_audio_ms, Some(400));
        assert_eq!(totals(&[]).median_first_audio_ms, None);
    }
}
