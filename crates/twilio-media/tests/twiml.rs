//! TwiML writer snapshots: every verb, every attribute, and escaping.

use insta::assert_snapshot;
use twilio_media::twiml::{
    Connect, Dial, Method, Pause, Redirect, Reject, RejectReason, Response, Say, Stream,
    TwimlError, Verb,
};

#[test]
fn empty_response() {
    assert_snapshot!(Response::new().to_xml(), @r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#);
}

#[test]
fn connect_stream_with_everything() {
    let xml = Response::new()
        .connect(
            Connect::new(
                Stream::new("wss://bridge.example.com/media-stream")
                    .name("call-1")
                    .status_callback("https://bridge.example.com/twilio/stream-status")
                    .status_callback_method(Method::Post)
                    .parameter("token", "b1f0c2")
                    .parameter("caller", "+14155551234"),
            )
            .action("https://bridge.example.com/twilio/after")
            .method(Method::Get),
        )
        .say("Sorry, the assistant is unavailable. Goodbye.")
        .to_xml();
    assert_snapshot!(xml, @r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect action="https://bridge.example.com/twilio/after" method="GET"><Stream url="wss://bridge.example.com/media-stream" name="call-1" statusCallback="https://bridge.example.com/twilio/stream-status" statusCallbackMethod="POST"><Parameter name="token" value="b1f0c2"/><Parameter name="caller" value="+14155551234"/></Stream></Connect><Say>Sorry, the assistant is unavailable. Goodbye.</Say></Response>"#);
}

#[test]
fn connect_stream_minimal() {
    let xml = Response::new()
        .connect(Stream::new("wss://bridge.example.com/media"))
        .to_xml();
    assert_snapshot!(xml, @r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://bridge.example.com/media"/></Connect></Response>"#);
}

#[test]
fn say() {
    let xml = Response::new()
        .say("Hello")
        .say(
            Say::new("Bonjour")
                .voice("Google.fr-FR-Chirp3-HD-Aoede")
                .language("fr-FR")
                .loop_count(2),
        )
        .say(String::from(""))
        .to_xml();
    assert_snapshot!(xml, @r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say>Hello</Say><Say voice="Google.fr-FR-Chirp3-HD-Aoede" language="fr-FR" loop="2">Bonjour</Say><Say/></Response>"#);
}

#[test]
fn pause_and_hangup() {
    let xml = Response::new()
        .pause(Pause::new())
        .pause(Pause::seconds(2))
        .pause(Pause::new().length(0))
        .hangup()
        .to_xml();
    assert_snapshot!(xml, @r#"<?xml version="1.0" encoding="UTF-8"?><Response><Pause/><Pause length="2"/><Pause length="0"/><Hangup/></Response>"#);
}

#[test]
fn dial() {
    let xml = Response::new()
        .say("Connecting you to an agent.")
        .dial(
            Dial::number("+15551234567")
                .caller_id("+15005550006")
                .timeout(30)
                .time_limit(3600)
                .action("https://bridge.example.com/twilio/dial-done")
                .method(Method::Post),
        )
        .dial("+15557654321")
        .say("The agent did not answer. Goodbye.")
        .hangup()
        .to_xml();
    assert_snapshot!(xml, @r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say>Connecting you to an agent.</Say><Dial callerId="+15005550006" timeout="30" timeLimit="3600" action="https://bridge.example.com/twilio/dial-done" method="POST">+15551234567</Dial><Dial>+15557654321</Dial><Say>The agent did not answer. Goodbye.</Say><Hangup/></Response>"#);
}

#[test]
fn reject() {
    let xml = Response::new()
        .reject(Reject::busy())
        .reject(Reject::rejected())
        .reject(Reject::new())
        .reject(Reject::new().reason(RejectReason::Busy))
        .to_xml();
    assert_snapshot!(xml, @r#"<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy"/><Reject reason="rejected"/><Reject/><Reject reason="busy"/></Response>"#);
}

#[test]
fn redirect() {
    let xml = Response::new()
        .redirect("https://bridge.example.com/twilio/next")
        .redirect(Redirect::new("https://bridge.example.com/twilio/get").method(Method::Get))
        .to_xml();
    assert_snapshot!(xml, @r#"<?xml version="1.0" encoding="UTF-8"?><Response><Redirect>https://bridge.example.com/twilio/next</Redirect><Redirect method="GET">https://bridge.example.com/twilio/get</Redirect></Response>"#);
}

#[test]
fn escaping_in_text_and_attributes() {
    let nasty = r#"Tom & "Jerry" <b>'s</b>"#;
    let xml = Response::new()
        .connect(
            Stream::new("wss://h.example/m?a=1&b=2")
                .parameter(nasty, nasty)
                .name("tab\there\nline\rcr"),
        )
        .say(Say::new(format!("{nasty}\nline two\ttab\u{1}\u{7}bell")).voice(nasty))
        .dial(Dial::number("<+1555>").caller_id("&"))
        .redirect("https://h.example/x?a=1&b='2'")
        .to_xml();
    assert_snapshot!(xml, @r#"
<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://h.example/m?a=1&amp;b=2" name="tab&#9;here&#10;line&#13;cr"><Parameter name="Tom &amp; &quot;Jerry&quot; &lt;b&gt;&apos;s&lt;/b&gt;" value="Tom &amp; &quot;Jerry&quot; &lt;b&gt;&apos;s&lt;/b&gt;"/></Stream></Connect><Say voice="Tom &amp; &quot;Jerry&quot; &lt;b&gt;&apos;s&lt;/b&gt;">Tom &amp; &quot;Jerry&quot; &lt;b&gt;&apos;s&lt;/b&gt;
line two	tabbell</Say><Dial callerId="&amp;">&lt;+1555&gt;</Dial><Redirect>https://h.example/x?a=1&amp;b=&apos;2&apos;</Redirect></Response>
"#);
}

#[test]
fn unicode_passes_through() {
    let xml = Response::new().say("Zoë says 你好 📞").to_xml();
    assert_snapshot!(xml, @r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say>Zoë says 你好 📞</Say></Response>"#);
}

#[test]
fn verbs_display_and_accessors() {
    let response = Response::new()
        .verb(Verb::Hangup)
        .verb(Pause::seconds(1))
        .verb(Say::new("x"));
    assert_eq!(response.verbs().len(), 3);
    assert_eq!(response.to_string(), response.to_xml());
    let mut out = String::from("prefix:");
    response.write_xml(&mut out);
    assert_eq!(out, format!("prefix:{}", response.to_xml()));
    assert_eq!(Method::Get.to_string(), "GET");
    assert_eq!(RejectReason::Rejected.as_str(), "rejected");
}

#[test]
fn stream_url_rules() {
    let ok = [
        "wss://bridge.example.com/media",
        "wss://bridge.example.com",
        "WSS://bridge.example.com/media",
        "wss://bridge.example.com:443/media",
        "wss://[2001:db8::1]/media",
        "wss://[2001:db8::1]:443/media",
        "wss://user@bridge.example.com/media",
    ];
    for url in ok {
        assert_eq!(Stream::check_url(url), Ok(()), "{url}");
        assert_eq!(Stream::new(url).validate(), Ok(()), "{url}");
    }
    type Expect = fn(&TwimlError) -> bool;
    let bad: &[(&str, Expect)] = &[
        ("https://bridge.example.com/media", |e| {
            matches!(e, TwimlError::StreamScheme { .. })
        }),
        ("ws://bridge.example.com/media", |e| {
            matches!(e, TwimlError::StreamScheme { .. })
        }),
        ("/media", |e| matches!(e, TwimlError::StreamScheme { .. })),
        ("bridge.example.com/media", |e| {
            matches!(e, TwimlError::StreamScheme { .. })
        }),
        ("wss://bridge.example.com/media?token=1", |e| {
            matches!(e, TwimlError::StreamQuery { .. })
        }),
        ("wss://bridge.example.com/media?", |e| {
            matches!(e, TwimlError::StreamQuery { .. })
        }),
        ("wss://bridge.example.com/media#x", |e| {
            matches!(e, TwimlError::StreamQuery { .. })
        }),
        ("wss://bridge.example.com:8443/media", |e| {
            matches!(e, TwimlError::StreamPort { .. })
        }),
        ("wss://bridge.example.com:/media", |e| {
            matches!(e, TwimlError::StreamPort { .. })
        }),
        ("wss:///media", |e| {
            matches!(e, TwimlError::StreamHost { .. })
        }),
        ("wss://:443/media", |e| {
            matches!(e, TwimlError::StreamHost { .. })
        }),
        ("wss://[::1/media", |e| {
            matches!(e, TwimlError::StreamHost { .. })
        }),
    ];
    for (url, expected) in bad {
        let err = Stream::check_url(url).expect_err(url);
        assert!(expected(&err), "{url}: {err:?}");
        assert!(err.to_string().contains(url), "{err}");
    }
    assert_eq!(Stream::new("wss://a.example/m").url(), "wss://a.example/m");
}
