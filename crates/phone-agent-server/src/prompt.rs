//! The agent prompt: read from `PROMPT_PATH` at every call (so edits apply to the next call) and
//! rendered with the call's variables.
//!
//! Placeholders are `{{name}}` (spaces inside the braces are allowed). Known names are `from`,
//! `to`, `call_sid` and every custom stream parameter (configured `twilio.stream_parameters`).
//! Unknown placeholders are left as written, so literal braces in a prompt survive.
//!
//! ```
//! use phone_agent_server::prompt::render;
//! let text = render("Caller {{ from }} dialled {{to}}. {{unknown}}", &[("from", "+1555"), ("to", "+1666")]);
//! assert_eq!(text, "Caller +1555 dialled +1666. {{unknown}}");
//! ```

use std::path::Path;

use bridge_core::caller::CallerInfo;

/// Custom parameters that never reach the prompt (the per-call token is a credential).
const HIDDEN: &[&str] = &["token"];

/// Renders `template`, replacing each `{{name}}` whose name is in `vars`.
pub fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => {
                let name = after[..close].trim();
                match vars.iter().find(|(k, _)| *k == name) {
                    Some((_, value)) => out.push_str(value),
                    None => out.push_str(&rest[open..open + 2 + close + 2]),
                }
                rest = &after[close + 2..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The variables of one call: `call_sid`, then every stream parameter except the token (which
/// carries `from`, `to` and the configured extras).
pub fn call_variables(info: &CallerInfo) -> Vec<(&str, &str)> {
    let mut vars: Vec<(&str, &str)> = Vec::with_capacity(info.parameters.len() + 1);
    vars.push(("call_sid", info.call_id.as_str()));
    for (k, v) in &info.parameters {
        if !HIDDEN.contains(&k.as_str()) && k != "call_sid" {
            vars.push((k.as_str(), v.as_str()));
        }
    }
    vars
}

/// Reads the prompt file and renders it for one call.
pub async fn load_for_call(path: &Path, info: &CallerInfo) -> std::io::Result<String> {
    let template = tokio::fs::read_to_string(path).await?;
    Ok(render(&template, &call_variables(info)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(template: &str, expected: &str) {
        let vars = [
            ("from", "+14155551234"),
            ("to", "+15005550006"),
            ("call_sid", "CA1"),
        ];
        assert_eq!(render(template, &vars), expected, "template {template:?}");
    }

    #[test]
    fn placeholders() {
        check("", "");
        check("no vars", "no vars");
        check("{{from}}", "+14155551234");
        check("a {{ to }} b", "a +15005550006 b");
        check("{{call_sid}}{{call_sid}}", "CA1CA1");
        check("{{nope}} stays", "{{nope}} stays");
        check("unclosed {{from", "unclosed {{from");
        check("{{}}", "{{}}");
        check("{ {from} }", "{ {from} }");
        check("ünïcødé {{from}} ✓", "ünïcødé +14155551234 ✓");
    }

    #[test]
    fn token_is_never_a_variable() {
        let info = CallerInfo {
            call_id: "CA9".into(),
            stream_id: "MZ9".into(),
            account_id: None,
            parameters: vec![
                ("token".into(), "secret".into()),
                ("from".into(), "+1".into()),
                ("tenant".into(), "acme".into()),
            ],
        };
        let vars = call_variables(&info);
        assert_eq!(
            render("{{token}} {{from}} {{tenant}} {{call_sid}}", &vars),
            "{{token}} +1 acme CA9"
        );
    }
}
