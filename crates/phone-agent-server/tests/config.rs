//! Configuration: errors (map in → message out), defaults, the documented files, layering.

mod common;

use std::collections::HashMap;

use phone_agent_server::config::{Backend, Config, LogFormat, NoiseReduction, TurnDetection};

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn manifest_path(rel: &str) -> String {
    format!("{}/../../{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// `(variables, a fragment the error message must contain)`.
fn check_error(pairs: &[(&str, &str)], expected: &str) {
    match Config::from_env_map(&env(pairs)) {
        Ok(_) => panic!("{pairs:?}: expected an error containing {expected:?}, got a config"),
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains(expected),
                "{pairs:?}: {message:?} does not contain {expected:?}"
            );
        }
    }
}

#[test]
fn configuration_errors() {
    let missing_prompt = common::temp_path("does-not-exist.md");
    let missing_prompt = missing_prompt.to_str().unwrap();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("PUBLIC_URL", "agent.example.com")], "not an http(s) URL"),
        (&[("PUBLIC_URL", "ftp://agent.example.com")], "use https://"),
        (
            &[("PUBLIC_URL", "https://agent.example.com/?x=1")],
            "query string",
        ),
        (&[("PUBLIC_URL", "https://")], "no valid host"),
        (&[("PUBLIC_URL", "https://host:99999")], "invalid port"),
        (&[("PORT", "70000")], "PORT or PHONE_AGENT_SERVER__PORT"),
        (&[("PORT", "70000")], "out of range"),
        (&[("PORT", "-1")], "out of range"),
        (&[("PORT", "eighty")], "configuration error"),
        (
            &[("PHONE_AGENT_SERVER__BIND_ADDRESS", "localhost")],
            "not an IP address",
        ),
        (
            &[("PHONE_AGENT_SERVER__MAX_CONCURRENT_CALLS", "0")],
            "at least 1",
        ),
        (
            &[
                ("OPENAI_API_KEY", "sk-test"),
                ("PROMPT_PATH", missing_prompt),
            ],
            "prompt file",
        ),
        (
            &[("PHONE_AGENT_AGENT__BACKEND", "realtime")],
            "needs OPENAI_API_KEY",
        ),
        (
            &[("PHONE_AGENT_AGENT__BACKEND", "live")],
            "needs OPENAI_API_KEY",
        ),
        (
            &[("PHONE_AGENT_AGENT__BACKEND", "robot")],
            "auto, realtime, live, echo",
        ),
        (&[("TWILIO_AUTH_TOKEN", "secret")], "PUBLIC_URL"),
        (&[("TWILIO_ACCOUNT_SID", "XY123")], "not an account SID"),
        (
            &[("PHONE_AGENT_TWILIO__STREAM_PARAMETERS__TOKEN", "x")],
            "reserved",
        ),
        (&[("PHONE_AGENT_AGENT__VOCIE", "cedar")], "vocie"),
        (&[("PHONE_AGENT_NOPE__X", "1")], "nope"),
        (
            &[("PHONE_AGENT_OPENAI__TURN_DETECTION__THRESHOLD", "1.5")],
            "between 0.0 and 1.0",
        ),
        (
            &[(
                "PHONE_AGENT_OPENAI__TURN_DETECTION__IDLE_TIMEOUT_MS",
                "1000",
            )],
            "between 5000 and 30000",
        ),
        (
            &[
                ("PHONE_AGENT_OPENAI__TURN_DETECTION__TYPE", "semantic_vad"),
                (
                    "PHONE_AGENT_OPENAI__TURN_DETECTION__IDLE_TIMEOUT_MS",
                    "8000",
                ),
            ],
            "contradictory",
        ),
        (
            &[("PHONE_AGENT_OPENAI__TURN_DETECTION__TYPE", "none")],
            "needs turn detection",
        ),
        (
            &[("PHONE_AGENT_OPENAI__NOISE_REDUCTION", "loud")],
            "near_field",
        ),
        (&[("OPENAI_BASE_URL", "api.openai.com")], "not a URL"),
        (&[("PHONE_AGENT_LOG__FORMAT", "xml")], "text, json"),
        (
            &[("PHONE_AGENT_AGENT__DTMF", "maybe")],
            "forward, respond, off",
        ),
        (
            &[("PHONE_AGENT_CONFIG", "/nonexistent/phone-agent.toml")],
            "does not exist",
        ),
        (&[("PHONE_AGENT_ECHO__PAUSE_MS", "10")], "at least 100"),
    ];
    for (pairs, expected) in cases {
        check_error(pairs, expected);
    }
}

#[test]
fn secrets_never_print() {
    let prompt = common::prompt_file("hi");
    let c = Config::from_env_map(&env(&[
        ("OPENAI_API_KEY", "sk-very-secret"),
        ("TWILIO_AUTH_TOKEN", "tok-very-secret"),
        ("PUBLIC_URL", "https://agent.example.com"),
        ("PROMPT_PATH", prompt.to_str().unwrap()),
    ]))
    .unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("very-secret"), "{debug}");
    assert!(debug.contains("[redacted]"));
    assert_eq!(
        c.openai.api_key.as_ref().unwrap().expose(),
        "sk-very-secret"
    );
    for warning in c.startup_warnings() {
        assert!(!warning.contains("very-secret"));
    }
}

#[test]
fn defaults_and_backend_selection() {
    let c = Config::from_env_map(&HashMap::new()).unwrap();
    assert_eq!(c.server.port, 3000);
    assert_eq!(c.agent.backend, Backend::Echo, "no key: echo");
    assert_eq!(c.openai.model, "gpt-realtime-2.1");
    assert_eq!(c.agent.prompt_path.to_str(), Some("config/agent_prompt.md"));
    assert!(c.server.public_url.is_none());
    let warnings = c.startup_warnings();
    let echo_warnings: Vec<_> = warnings
        .iter()
        .filter(|w| w.contains("echo agent"))
        .collect();
    assert_eq!(echo_warnings.len(), 1, "{warnings:?}");
    assert!(echo_warnings[0].contains("OPENAI_API_KEY"));

    let prompt = common::prompt_file("hi");
    let c = Config::from_env_map(&env(&[
        ("OPENAI_API_KEY", "sk-x"),
        ("PROMPT_PATH", prompt.to_str().unwrap()),
        ("TWILIO_AUTH_TOKEN", "tok"),
        ("PUBLIC_URL", "https://agent.example.com"),
    ]))
    .unwrap();
    assert_eq!(c.agent.backend, Backend::Realtime, "key: realtime");
    assert!(
        c.startup_warnings()
            .iter()
            .all(|w| !w.contains("echo agent"))
    );

    // Empty values count as unset.
    let c = Config::from_env_map(&env(&[("OPENAI_API_KEY", ""), ("PORT", "")])).unwrap();
    assert_eq!(c.agent.backend, Backend::Echo);
    assert_eq!(c.server.port, 3000);
}

#[test]
fn seed_names_and_prefixed_names() {
    let prompt = common::prompt_file("hi");
    let c = Config::from_env_map(&env(&[
        ("OPENAI_API_KEY", "sk-x"),
        ("OPENAI_MODEL", "gpt-realtime-mini"),
        ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
        ("PUBLIC_URL", "https://agent.example.com/"),
        ("PORT", "8080"),
        ("PROMPT_PATH", prompt.to_str().unwrap()),
        ("TWILIO_AUTH_TOKEN", "tok"),
        ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000001"),
        ("RUST_LOG", "debug"),
        ("PHONE_AGENT_AGENT__VOICE", "cedar"),
        ("PHONE_AGENT_LOG__FORMAT", "json"),
        (
            "PHONE_AGENT_OPENAI__TURN_DETECTION__INTERRUPT_RESPONSE",
            "false",
        ),
        (
            "PHONE_AGENT_OPENAI__TURN_DETECTION__IDLE_TIMEOUT_MS",
            "8000",
        ),
        ("PHONE_AGENT_OPENAI__NOISE_REDUCTION", "far_field"),
        ("PHONE_AGENT_AGENT__GREETING", "off"),
        ("PHONE_AGENT_TWILIO__STREAM_PARAMETERS__TENANT", "acme"),
    ]))
    .unwrap();
    assert_eq!(c.openai.model, "gpt-realtime-mini");
    assert_eq!(c.openai.base_url, "http://127.0.0.1:9/v1");
    assert_eq!(c.server.port, 8080);
    let public = c.server.public_url.as_ref().unwrap();
    assert_eq!(public.voice_url(), "https://agent.example.com/voice");
    assert_eq!(public.media_url(), "wss://agent.example.com/media");
    assert_eq!(c.twilio.auth_token.as_ref().unwrap().expose(), "tok");
    assert!(c.twilio.signature_key().is_some());
    assert_eq!(c.log.filter, "debug");
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.agent.voice, "cedar");
    assert_eq!(c.agent.greeting, None);
    assert_eq!(c.openai.noise_reduction, NoiseReduction::FarField);
    assert!(matches!(
        c.openai.turn_detection,
        TurnDetection::ServerVad {
            interrupt_response: false,
            idle_timeout_ms: Some(8000),
            ..
        }
    ));
    assert!(!c.openai.turn_detection.interrupts_itself());
    assert_eq!(
        c.twilio.stream_parameters.get("tenant").map(String::as_str),
        Some("acme")
    );
}

/// A billed back end without a Twilio auth token would let anyone who finds the URL hold
/// billed sessions open: refused unless explicitly allowed (loudly). The echo agent may stay
/// open.
#[test]
fn a_billed_backend_without_an_auth_token_is_refused_unless_explicitly_allowed() {
    let prompt = common::prompt_file("hi");
    let prompt = prompt.to_str().unwrap();
    let open = [("OPENAI_API_KEY", "sk-x"), ("PROMPT_PATH", prompt)];
    match Config::from_env_map(&env(&open)) {
        Ok(_) => panic!("a realtime back end without TWILIO_AUTH_TOKEN must be refused"),
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains("Set TWILIO_AUTH_TOKEN"), "{message}");
            assert!(
                message.contains("PHONE_AGENT_TWILIO__DANGER_ALLOW_UNSIGNED_REQUESTS=true"),
                "{message}"
            );
        }
    }
    let allowed = Config::from_env_map(&env(&[
        ("OPENAI_API_KEY", "sk-x"),
        ("PROMPT_PATH", prompt),
        ("PHONE_AGENT_TWILIO__DANGER_ALLOW_UNSIGNED_REQUESTS", "true"),
    ]))
    .unwrap();
    assert_eq!(allowed.agent.backend, Backend::Realtime);
    assert!(
        allowed
            .startup_warnings()
            .iter()
            .any(|w| w.starts_with("DANGER") && w.contains("danger_allow_unsigned_requests")),
        "{:?}",
        allowed.startup_warnings()
    );
    // The free echo agent may stay open (with the existing warning).
    let echo = Config::from_env_map(&env(&[("PHONE_AGENT_AGENT__BACKEND", "echo")])).unwrap();
    assert!(echo.twilio.auth_token.is_none());
    // With a token, signatures are checked and nothing needs allowing.
    Config::from_env_map(&env(&[
        ("OPENAI_API_KEY", "sk-x"),
        ("PROMPT_PATH", prompt),
        ("TWILIO_AUTH_TOKEN", "tok"),
        ("PUBLIC_URL", "https://agent.example.com"),
    ]))
    .unwrap();
}

#[test]
fn danger_flag_disables_signatures_and_warns() {
    let c = Config::from_env_map(&env(&[
        ("TWILIO_AUTH_TOKEN", "tok"),
        (
            "PHONE_AGENT_TWILIO__DANGER_SKIP_SIGNATURE_VALIDATION",
            "true",
        ),
    ]))
    .unwrap();
    assert!(c.twilio.signature_key().is_none());
    assert!(c.startup_warnings().iter().any(|w| w.starts_with("DANGER")));
}

#[test]
fn config_file_layer_sits_below_the_environment() {
    let path = common::temp_path("config.toml");
    std::fs::write(
        &path,
        "[server]\nport = 4000\nmax_concurrent_calls = 7\n[agent]\nvoice = \"ash\"\n",
    )
    .unwrap();
    let c = Config::from_env_map(&env(&[
        ("PHONE_AGENT_CONFIG", path.to_str().unwrap()),
        ("PORT", "5000"),
    ]))
    .unwrap();
    assert_eq!(c.server.port, 5000, "environment beats the file");
    assert_eq!(c.server.max_concurrent_calls, 7, "file beats the defaults");
    assert_eq!(c.agent.voice, "ash");

    std::fs::write(&path, "[server]\nprot = 1\n").unwrap();
    check_error(&[("PHONE_AGENT_CONFIG", path.to_str().unwrap())], "prot");
}

/// `config/default.toml` documents the defaults: loading it must change nothing.
#[test]
fn default_toml_equals_the_built_in_defaults() {
    let builtin = Config::from_env_map(&HashMap::new()).unwrap();
    let from_file = Config::from_env_map(&env(&[(
        "PHONE_AGENT_CONFIG",
        &manifest_path("config/default.toml"),
    )]))
    .unwrap();
    assert_eq!(format!("{builtin:?}"), format!("{from_file:?}"));
}

/// Every variable in `.env.example`, uncommented, is a valid setting.
#[test]
fn env_example_is_valid() {
    let text = std::fs::read_to_string(manifest_path(".env.example")).unwrap();
    let prompt = common::prompt_file("hi");
    let mut map = HashMap::new();
    for line in text.lines() {
        let line = line
            .trim()
            .trim_start_matches("# ")
            .trim_start_matches('#')
            .trim();
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !key
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            || key.is_empty()
        {
            continue;
        }
        // Inline comments after a value are documentation.
        let value = value.split("  #").next().unwrap_or_default().trim();
        map.insert(key.to_string(), value.to_string());
    }
    assert!(map.contains_key("OPENAI_API_KEY"));
    assert!(map.contains_key("PHONE_AGENT_AGENT__VOICE"));
    // The example points at files that exist only in a deployment.
    map.remove("PHONE_AGENT_CONFIG");
    map.insert("PROMPT_PATH".into(), prompt.to_str().unwrap().into());
    map.insert("TWILIO_AUTH_TOKEN".into(), "tok".into());
    let c = Config::from_env_map(&map).unwrap();
    assert_eq!(c.server.port, 3000);
}

/// `KEY=value` lines of an env file as kustomize's `configMapGenerator` reads them (comments and
/// blank lines skipped, the value taken verbatim).
fn env_file(rel: &str) -> HashMap<String, String> {
    let text = std::fs::read_to_string(manifest_path(rel)).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("{rel}: not KEY=value: {line:?}"));
            (key.to_string(), value.to_string())
        })
        .collect()
}

/// The Kubernetes manifests' settings (the base's and the example overlay's ConfigMap, its
/// config.toml and prompt, the Deployment's fixed variables) are accepted by the server's own
/// parser, values included; deploy/validate.sh checks the manifests themselves. A renamed or
/// removed setting that the manifests still use fails here.
#[test]
fn kubernetes_settings_are_valid() {
    let base = env_file("deploy/kubernetes/base/config.env");
    let base_only = {
        let mut map = base.clone();
        map.insert("PHONE_AGENT_SERVER__PORT".into(), "3000".into());
        map.insert("PHONE_AGENT_SERVER__BIND_ADDRESS".into(), "0.0.0.0".into());
        map.insert("PHONE_AGENT_METRICS__BIND".into(), "0.0.0.0:9090".into());
        map
    };
    let c = Config::from_env_map(&base_only).unwrap();
    assert_eq!(c.server.port, 3000);
    assert_eq!(c.log.format, LogFormat::Json);

    let mut example = base_only;
    example.extend(env_file("deploy/kubernetes/overlays/example/config.env"));
    // The overlay mounts these files at /etc/phone-agent; here they are read from the tree.
    assert_eq!(
        example.get("PROMPT_PATH").map(String::as_str),
        Some("/etc/phone-agent/agent_prompt.md")
    );
    assert_eq!(
        example.get("PHONE_AGENT_CONFIG").map(String::as_str),
        Some("/etc/phone-agent/config.toml")
    );
    example.insert(
        "PROMPT_PATH".into(),
        manifest_path("deploy/kubernetes/overlays/example/agent_prompt.md"),
    );
    example.insert(
        "PHONE_AGENT_CONFIG".into(),
        manifest_path("deploy/kubernetes/overlays/example/config.toml"),
    );
    // What the user's Secret provides.
    example.insert("TWILIO_AUTH_TOKEN".into(), "tok".into());
    example.insert("OPENAI_API_KEY".into(), "sk-test".into());
    let c = Config::from_env_map(&example).unwrap();
    assert_eq!(c.server.port, 3000);
    // config.toml was read, below the environment.
    assert_eq!(
        c.agent.greeting.as_deref(),
        Some(
            "Thank the caller for calling Example Corp in one short sentence and ask how you can help."
        )
    );
    assert_eq!(
        c.server.max_concurrent_calls.to_string(),
        base["PHONE_AGENT_SERVER__MAX_CONCURRENT_CALLS"]
    );
    assert_eq!(
        c.server.shutdown_grace.as_secs().to_string(),
        base["PHONE_AGENT_SERVER__SHUTDOWN_GRACE_SECS"]
    );
}

/// The `.env` reader uses dotenvy's iterator: the file's values are returned, and the process
/// environment is left alone.
#[test]
fn dotenv_is_read_without_touching_the_environment() {
    let path = common::temp_path(".env");
    std::fs::write(
        &path,
        "PHONE_AGENT_TEST_ONLY_MARKER=from-dotenv\nPORT=4321\n",
    )
    .unwrap();
    let map = phone_agent_server::config::env_map_from_process(&path).unwrap();
    assert_eq!(
        map.get("PHONE_AGENT_TEST_ONLY_MARKER").map(String::as_str),
        Some("from-dotenv")
    );
    assert!(std::env::var_os("PHONE_AGENT_TEST_ONLY_MARKER").is_none());
    // A missing file is fine.
    assert!(
        phone_agent_server::config::env_map_from_process(&common::temp_path("missing.env")).is_ok()
    );
}

/// Issue 10, item 4: a session that never answers the caller's turns is refused at startup;
/// the engine's new knobs (`agent.apology`, `agent.min_barge_in_ms`) reach the call config.
#[test]
fn turn_answering_and_barge_in_settings() {
    check_error(
        &[(
            "PHONE_AGENT_OPENAI__TURN_DETECTION__CREATE_RESPONSE",
            "false",
        )],
        "create_response",
    );
    check_error(
        &[("PHONE_AGENT_AGENT__MIN_BARGE_IN_MS", "5000")],
        "agent.min_barge_in_ms",
    );
    let c = Config::from_env_map(&env(&[
        ("PHONE_AGENT_AGENT__MIN_BARGE_IN_MS", "250"),
        ("PHONE_AGENT_AGENT__APOLOGY", "off"),
    ]))
    .unwrap();
    assert_eq!(c.agent.min_barge_in, std::time::Duration::from_millis(250));
    assert_eq!(c.agent.apology, None);
    let defaults = Config::from_env_map(&HashMap::new()).unwrap();
    assert_eq!(
        defaults.agent.apology.as_deref(),
        Some(bridge_core::engine::DEFAULT_APOLOGY)
    );
}

/// Issue 12: `agent.goodbye_barge_in` is `finish` by default, `interrupt` when set, and any
/// other value fails at startup naming the key and its variable.
#[test]
fn goodbye_barge_in_setting() {
    use bridge_core::engine::GoodbyeBargeIn;
    let defaults = Config::from_env_map(&HashMap::new()).unwrap();
    assert_eq!(defaults.agent.goodbye_barge_in, GoodbyeBargeIn::Finish);
    let c = Config::from_env_map(&env(&[(
        "PHONE_AGENT_AGENT__GOODBYE_BARGE_IN",
        "interrupt",
    )]))
    .unwrap();
    assert_eq!(c.agent.goodbye_barge_in, GoodbyeBargeIn::Interrupt);
    let e =
        Config::from_env_map(&env(&[("PHONE_AGENT_AGENT__GOODBYE_BARGE_IN", "cut")])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid agent.goodbye_barge_in (PHONE_AGENT_AGENT__GOODBYE_BARGE_IN): \"cut\" is not \
         one of finish, interrupt"
    );
}

/// `agent.backend = "live"` with its `[live]` settings, and the errors that name them.
#[test]
fn live_backend_and_its_validation() {
    use phone_agent_server::config::LiveDelegation;
    let prompt = common::prompt_file("hi");
    let prompt = prompt.to_str().unwrap();
    let base = [
        ("OPENAI_API_KEY", "sk-x"),
        ("PROMPT_PATH", prompt),
        ("PHONE_AGENT_AGENT__BACKEND", "live"),
        ("TWILIO_AUTH_TOKEN", "tok"),
        ("PUBLIC_URL", "https://bridge.example.com"),
    ];
    let c = Config::from_env_map(&env(&base)).unwrap();
    assert_eq!(c.agent.backend, Backend::Live);
    assert_eq!(c.live.model, "gpt-live-1");
    assert_eq!(c.live.delegation, LiveDelegation::Responses);
    assert_eq!(c.live.backend_model, "gpt-5.6-luna");
    assert_eq!(c.live.close_timeout, std::time::Duration::from_millis(3000));

    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        base.iter().copied().chain(extra.iter().copied()).collect()
    };
    let c = Config::from_env_map(&env(&with(&[
        ("PHONE_AGENT_LIVE__DELEGATION", "client"),
        ("PHONE_AGENT_LIVE__CLIENT_TOOL", "backend"),
        ("PHONE_AGENT_LIVE__MODEL", "gpt-live-1.1"),
        ("PHONE_AGENT_LIVE__GREETING", "off"),
    ])))
    .unwrap();
    assert_eq!(c.live.delegation, LiveDelegation::Client);
    assert_eq!(c.live.client_tool.as_deref(), Some("backend"));
    assert_eq!(c.live.model, "gpt-live-1.1");
    assert_eq!(c.live.greeting, None);

    check_error(
        &[
            ("PROMPT_PATH", prompt),
            ("PHONE_AGENT_AGENT__BACKEND", "live"),
            ("TWILIO_AUTH_TOKEN", "tok"),
            ("PUBLIC_URL", "https://bridge.example.com"),
        ],
        "needs OPENAI_API_KEY",
    );
    check_error(
        &with(&[("PHONE_AGENT_LIVE__DELEGATION", "client")]),
        "live.client_tool",
    );
    check_error(
        &with(&[("PHONE_AGENT_LIVE__DELEGATION", "decisions")]),
        "live.delegation",
    );
    check_error(
        &with(&[("PHONE_AGENT_LIVE__BACKEND_MODEL", " ")]),
        "live.backend_model",
    );
    check_error(
        &with(&[("PHONE_AGENT_LIVE__CLOSE_TIMEOUT_MS", "9000")]),
        "live.close_timeout_ms",
    );
    check_error(
        &with(&[("PHONE_AGENT_LIVE__SESSION_CAP_SECS", "5")]),
        "live.session_cap_secs",
    );
    check_error(
        &with(&[("PHONE_AGENT_LIVE__TURN_DETECTION", "x")]),
        "turn_detection",
    );
    check_error(
        &with(&[("PHONE_AGENT_AGENT__BACKEND", "gpt-live")]),
        "auto, realtime, live, echo",
    );
}
