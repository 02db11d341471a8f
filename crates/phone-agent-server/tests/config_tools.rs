//! Configuration of tools, call control, MCP servers and profiles: bad entries fail at startup
//! with a message naming the key; good ones load as written (key case kept).

mod common;

use std::collections::HashMap;

use phone_agent_server::config::Config;

fn load(toml: &str) -> Result<Config, String> {
    let path = common::temp_path("tools.toml");
    std::fs::write(&path, toml).unwrap();
    let env: HashMap<String, String> = [
        ("PHONE_AGENT_CONFIG", path.to_str().unwrap()),
        ("PHONE_AGENT_AGENT__BACKEND", "echo"),
        ("HOURS_TOKEN", "tok-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Config::from_env_map(&env).map_err(|e| e.to_string())
}

fn tool(name: &str, url: &str, parameters: &str) -> String {
    format!(
        "[[tools]]\nname = \"{name}\"\ndescription = \"d\"\nurl = \"{url}\"\nparameters = {parameters}\n"
    )
}

const OBJECT: &str = "{ type = \"object\" }";

#[test]
fn duplicate_tool_names_fail_naming_the_key() {
    let toml = [
        tool("hours", "https://x.example/a", OBJECT),
        tool("hours", "https://x.example/b", OBJECT),
    ]
    .concat();
    let e = load(&toml).unwrap_err();
    assert_eq!(
        e,
        "invalid tools[1].name: duplicate tool name \"hours\": every tool needs its own name"
    );
}

#[test]
fn a_schema_that_is_not_json_schema_fails_naming_the_key() {
    let e = load(&tool(
        "hours",
        "https://x.example/a",
        "{ type = \"object\", properties = { day = { type = \"text\" } } }",
    ))
    .unwrap_err();
    assert!(
        e.starts_with("invalid tools[0].parameters: is not a usable JSON Schema: properties.day.type: \"text\" is not a JSON Schema type"),
        "{e}"
    );
    let e = load(&tool("hours", "https://x.example/a", "'{\"type\": '")).unwrap_err();
    assert!(
        e.starts_with("invalid tools[0].parameters: is not valid JSON"),
        "{e}"
    );
    let e = load(&tool("hours", "https://x.example/a", "\"just text\"")).unwrap_err();
    assert!(e.starts_with("invalid tools[0].parameters"), "{e}");
}

#[test]
fn a_webhook_url_that_is_not_http_fails_naming_the_key() {
    let e = load(&tool("hours", "ftp://x.example/a", OBJECT)).unwrap_err();
    assert_eq!(
        e,
        "invalid tools[0].url: \"ftp://x.example/a\" is not an http:// or https:// URL"
    );
}

#[test]
fn a_transfer_entry_that_is_not_e164_or_sip_fails_naming_the_key() {
    let e = load(
        "[[call_control.destinations]]\nname = \"desk\"\nnumber = \"555-1234\"\ndescription = \"d\"\n",
    )
    .unwrap_err();
    assert_eq!(
        e,
        "invalid call_control.destinations[0].number: \"555-1234\" is not an E.164 number (+ and 8-15 digits, e.g. +15551234567)"
    );
    let e = load(
        "[[call_control.destinations]]\nname = \"desk\"\nsip = \"desk@pbx\"\ndescription = \"d\"\n",
    )
    .unwrap_err();
    assert_eq!(
        e,
        "invalid call_control.destinations[0].sip: \"desk@pbx\" is not a SIP URI (sip:user@host)"
    );
}

/// The transfer allow-list takes an E.164 `number` or a SIP URI in `sip`; an entry with
/// neither, or with both, fails naming the key.
#[test]
fn transfer_entries_take_an_e164_number_or_a_sip_uri_and_exactly_one() {
    use phone_agent_server::tools::config::DialTarget;
    let c = load(
        "[[call_control.destinations]]\nname = \"desk\"\nnumber = \"+15551230000\"\ndescription = \"d\"\n\
         [[call_control.destinations]]\nname = \"kitchen\"\nsip = \"sip:kitchen@pbx.example.com\"\ndescription = \"k\"\n",
    )
    .unwrap();
    let targets: Vec<(&str, &DialTarget)> = c
        .tools
        .call_control
        .destinations
        .iter()
        .map(|d| (d.name.as_str(), &d.target))
        .collect();
    assert_eq!(
        targets,
        vec![
            ("desk", &DialTarget::Number("+15551230000".into())),
            (
                "kitchen",
                &DialTarget::Sip("sip:kitchen@pbx.example.com".into())
            ),
        ]
    );
    let e =
        load("[[call_control.destinations]]\nname = \"desk\"\ndescription = \"d\"\n").unwrap_err();
    assert_eq!(
        e,
        "invalid call_control.destinations[0].number: set number (E.164) or sip (a SIP URI)"
    );
    let e = load(
        "[[call_control.destinations]]\nname = \"desk\"\nnumber = \"+15551230000\"\nsip = \"sip:desk@pbx\"\ndescription = \"d\"\n",
    )
    .unwrap_err();
    assert_eq!(
        e,
        "invalid call_control.destinations[0].number: set number or sip, not both"
    );
}

#[test]
fn missing_environment_references_and_unknown_profile_entries_fail_naming_the_key() {
    let e = load(&format!(
        "{}headers = {{ Authorization = \"Bearer ${{NOPE}}\" }}\n",
        tool("hours", "https://x.example/a", OBJECT)
    ))
    .unwrap_err();
    assert_eq!(
        e,
        "invalid tools[0].headers.Authorization: environment variable NOPE (referenced as ${NOPE}) is not set"
    );
    let e =
        load("[profiles.pizza]\nnumbers = [\"+15550001111\"]\ntools = [\"hours\"]\n").unwrap_err();
    assert_eq!(
        e,
        "invalid profiles.pizza.tools: \"hours\" is not a configured tool"
    );
    let e = load(
        "[profiles.a]\nnumbers = [\"+15550001111\"]\n[profiles.b]\nnumbers = [\"+15550001111\"]\n",
    )
    .unwrap_err();
    assert_eq!(
        e,
        "invalid profiles.b.numbers: +15550001111 is also a number of profile \"a\""
    );
    let e = load("[[mcp_servers]]\nlabel = \"crm\"\nurl = \"wss://x\"\n").unwrap_err();
    assert_eq!(
        e,
        "invalid mcp_servers[0].url: \"wss://x\" is not an http:// or https:// URL"
    );
}

/// A profile may set its own `goodbye_barge_in`; anything but `finish`/`interrupt` fails
/// naming the profile's key.
#[test]
fn a_profile_sets_its_goodbye_barge_in_and_a_bad_one_fails_naming_the_key() {
    use bridge_core::engine::GoodbyeBargeIn;
    let c = load(
        "[profiles.support]\nnumbers = [\"+15550001111\"]\ngoodbye_barge_in = \"interrupt\"\n\
         [profiles.sales]\nnumbers = [\"+15550002222\"]\n",
    )
    .unwrap();
    let by_name = |n: &str| c.tools.profiles.iter().find(|p| p.name == n).unwrap();
    assert_eq!(
        by_name("support").goodbye_barge_in,
        Some(GoodbyeBargeIn::Interrupt)
    );
    assert_eq!(by_name("sales").goodbye_barge_in, None, "inherits agent.*");
    let e =
        load("[profiles.support]\nnumbers = [\"+15550001111\"]\ngoodbye_barge_in = \"never\"\n")
            .unwrap_err();
    assert_eq!(
        e,
        "invalid profiles.support.goodbye_barge_in: \"never\" is not one of finish, interrupt"
    );
}

#[test]
fn tools_load_as_written_with_key_case_kept() {
    let toml = format!(
        "{}headers = {{ X-Api-Key = \"${{HOURS_TOKEN}}\" }}\nfiller = \"One moment.\"\n\n[profiles.Pizza_Line]\nnumbers = [\"+15550001111\"]\n",
        tool(
            "hours",
            "https://x.example/a",
            "{ type = \"object\", properties = { partySize = { type = \"integer\", minimum = 1 } }, required = [\"partySize\"] }",
        )
    );
    let c = load(&toml).unwrap();
    let t = &c.tools.webhooks[0];
    assert_eq!(
        t.parameters,
        serde_json::json!({"type": "object", "properties": {"partySize": {"type": "integer", "minimum": 1}}, "required": ["partySize"]})
    );
    assert_eq!(t.headers[0].0.as_str(), "x-api-key");
    assert_eq!(t.headers[0].1.expose(), "tok-1");
    assert_eq!(format!("{:?}", t.headers[0].1), "[redacted]");
    assert_eq!(t.filler.as_deref(), Some("One moment."));
    assert_eq!(c.tools.profiles[0].name, "Pizza_Line");
}

/// Through the real binary: a bad entry stops it at startup (exit code 2) with the message
/// naming the key on stderr, before it listens.
#[test]
fn the_binary_refuses_to_start_with_a_bad_entry_naming_the_key() {
    let cwd = common::temp_path("bad-config-cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let duplicate = common::temp_path("duplicate.toml");
    std::fs::write(
        &duplicate,
        [
            tool("hours", "https://x.example/a", OBJECT),
            tool("hours", "https://x.example/b", OBJECT),
        ]
        .concat(),
    )
    .unwrap();
    let cases: [(&[(&str, &str)], &str); 2] = [
        (
            &[("PHONE_AGENT_CONFIG", duplicate.to_str().unwrap())],
            "phone-agent-server: invalid tools[1].name: duplicate tool name \"hours\": every \
             tool needs its own name\n",
        ),
        (
            &[("PHONE_AGENT_AGENT__GOODBYE_BARGE_IN", "cut")],
            "phone-agent-server: invalid agent.goodbye_barge_in \
             (PHONE_AGENT_AGENT__GOODBYE_BARGE_IN): \"cut\" is not one of finish, interrupt\n",
        ),
    ];
    for (envs, expected) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_phone-agent-server"))
            .current_dir(&cwd)
            .env_clear()
            .env("PORT", "0")
            .env("PHONE_AGENT_AGENT__BACKEND", "echo")
            .envs(envs.iter().copied())
            .output()
            .expect("run the server binary");
        assert_eq!(out.status.code(), Some(2), "{envs:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), expected);
        assert!(
            out.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// `config/examples/restaurant.toml` loads as documented and a server starts with it.
#[tokio::test]
async fn the_restaurant_example_loads_and_a_server_starts_with_it() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let file = root.join("config/examples/restaurant.toml");
    let prompt = root.join("config/examples/restaurant_prompt.md");
    let env: HashMap<String, String> = [
        ("PHONE_AGENT_CONFIG", file.to_str().unwrap()),
        ("PROMPT_PATH", prompt.to_str().unwrap()),
        ("OPENAI_API_KEY", "sk-test"),
        ("TWILIO_AUTH_TOKEN", "0123456789abcdef0123456789abcdef"),
        ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000001"),
        ("PUBLIC_URL", "https://agent.example.com"),
        ("HOURS_API_TOKEN", "hours-token"),
        ("TOOLS_SIGNING_SECRET", "signing-secret"),
        ("PHONE_AGENT_METRICS__BIND", "off"),
        // Tests write only to temp dirs.
        ("PHONE_AGENT_DATABASE__URL", "off"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let config = Config::from_env_map(&env).unwrap();
    let tools = &config.tools;
    assert!(tools.call_control.end_call);
    assert_eq!(tools.call_control.destinations[0].name, "front_desk");
    let hours = &tools.webhooks[0];
    assert_eq!(hours.name, "opening_hours");
    assert_eq!(hours.headers[0].1.expose(), "Bearer hours-token");
    assert_eq!(hours.parameters["required"], serde_json::json!(["day"]));
    assert_eq!(
        hours.parameters["properties"]["day"]["enum"][5],
        serde_json::json!("saturday")
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = phone_agent_server::Server::new(config)
        .serve(listener)
        .unwrap();
    server.shutdown();
    assert!(server.wait().await.clean);
}
