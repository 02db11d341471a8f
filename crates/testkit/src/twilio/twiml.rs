//! A small, strict TwiML reader: enough XML for the verbs a voice bridge answers with
//! (`<Connect><Stream><Parameter>`, `<Reject>`, `<Say>`, `<Pause>`, `<Hangup>`, `<Redirect>`,
//! `<Dial>`), plus a generic [`Element`] tree for anything else.
//!
//! It refuses what Twilio would not accept as TwiML: a root other than `<Response>`,
//! mismatched tags, unquoted attributes, unknown entities, DOCTYPEs. It does not resolve
//! namespaces or validate attribute values; [`Twiml::issues`] lists the problems Twilio would
//! report later (a `<Stream url>` that is not `wss://` or carries a query string).
//!
//! ```
//! use testkit::twilio::twiml::{Twiml, Verb};
//! let t = Twiml::parse(r#"<?xml version="1.0" encoding="UTF-8"?>
//! <Response><Connect><Stream url="wss://bridge.example.com/media">
//!   <Parameter name="token" value="a&amp;b"/>
//! </Stream></Connect><Say>Goodbye.</Say></Response>"#).unwrap();
//! let stream = t.stream().unwrap();
//! assert_eq!(stream.url, "wss://bridge.example.com/media");
//! assert_eq!(stream.parameters, vec![("token".to_string(), "a&b".to_string())]);
//! assert!(matches!(&t.verbs[1], Verb::Say { text, .. } if text == "Goodbye."));
//! assert!(t.issues().is_empty());
//! ```

/// Why a document is not acceptable TwiML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid TwiML at byte {at}: {message}")]
pub struct TwimlError {
    /// Byte offset of the problem.
    pub at: usize,
    /// What is wrong.
    pub message: String,
}

/// An XML node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data (entities decoded).
    Text(String),
}

/// An XML element.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Tag name.
    pub name: String,
    /// Attributes in document order (values decoded).
    pub attrs: Vec<(String, String)>,
    /// Children in document order.
    pub children: Vec<Node>,
}

impl Element {
    /// The value of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// Concatenated text of the direct children, trimmed.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                s.push_str(t);
            }
        }
        s.trim().to_string()
    }
}

/// `<Stream>` inside `<Connect>` (or `<Start>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// The `url` attribute, exactly as written.
    pub url: String,
    /// `name`.
    pub name: Option<String>,
    /// `track`.
    pub track: Option<String>,
    /// `statusCallback`.
    pub status_callback: Option<String>,
    /// `statusCallbackMethod`.
    pub status_callback_method: Option<String>,
    /// `<Parameter name value>` children in order; they become `start.customParameters`.
    pub parameters: Vec<(String, String)>,
}

/// `<Connect>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// `action`.
    pub action: Option<String>,
    /// `method`.
    pub method: Option<String>,
    /// The `<Stream>` child, if any.
    pub stream: Option<Stream>,
    /// Other children (e.g. `<ConversationRelay>`).
    pub other: Vec<Element>,
}

/// `<Dial>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    /// The number dialled: the text content, or the first `<Number>` child's text.
    pub number: Option<String>,
    /// `callerId`.
    pub caller_id: Option<String>,
    /// `timeout` in seconds, if numeric.
    pub timeout: Option<u32>,
    /// The element itself (other attributes and nouns such as `<Sip>`, `<Client>`).
    pub element: Element,
}

/// One TwiML verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// `<Connect>`.
    Connect(Connect),
    /// `<Start>` (unidirectional stream fork); `stream` is its `<Stream>` child.
    Start {
        /// The `<Stream>` child, if any.
        stream: Option<Stream>,
    },
    /// `<Reject reason="…">`.
    Reject {
        /// `reason` (`rejected` or `busy`).
        reason: Option<String>,
    },
    /// `<Say>`.
    Say {
        /// Text to speak.
        text: String,
        /// `voice`.
        voice: Option<String>,
        /// `language`.
        language: Option<String>,
    },
    /// `<Pause length="N"/>`.
    Pause {
        /// `length` in seconds, if given and numeric.
        length: Option<u32>,
    },
    /// `<Hangup/>`.
    Hangup,
    /// `<Redirect>URL</Redirect>`.
    Redirect {
        /// Target URL.
        url: String,
        /// `method`.
        method: Option<String>,
    },
    /// `<Dial>`.
    Dial(Dial),
    /// Any other verb, kept as XML.
    Other(Element),
}

/// A parsed `<Response>` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Twiml {
    /// The verbs in order.
    pub verbs: Vec<Verb>,
    /// The raw `<Response>` element.
    pub root: Element,
}

impl Twiml {
    /// Parses a TwiML document.
    pub fn parse(xml: &str) -> Result<Self, TwimlError> {
        let root = parse_xml(xml)?;
        if root.name != "Response" {
            return Err(TwimlError {
                at: 0,
                message: format!("root element is <{}>, expected <Response>", root.name),
            });
        }
        let verbs = root.elements().map(verb).collect();
        Ok(Self { verbs, root })
    }

    /// The `<Connect><Stream>`, if the document has one.
    pub fn stream(&self) -> Option<&Stream> {
        self.verbs.iter().find_map(|v| match v {
            Verb::Connect(c) => c.stream.as_ref(),
            _ => None,
        })
    }

    /// The `<Reject>` reason, if the document rejects the call (`Some(None)` = no reason).
    pub fn reject(&self) -> Option<Option<&str>> {
        self.verbs.iter().find_map(|v| match v {
            Verb::Reject { reason } => Some(reason.as_deref()),
            _ => None,
        })
    }

    /// The first `<Dial>`.
    pub fn dial(&self) -> Option<&Dial> {
        self.verbs.iter().find_map(|v| match v {
            Verb::Dial(d) => Some(d),
            _ => None,
        })
    }

    /// Whether the document hangs up (`<Hangup/>` anywhere at top level).
    pub fn hangs_up(&self) -> bool {
        self.verbs.iter().any(|v| matches!(v, Verb::Hangup))
    }

    /// Texts of the top-level `<Say>` verbs.
    pub fn says(&self) -> Vec<&str> {
        self.verbs
            .iter()
            .filter_map(|v| match v {
                Verb::Say { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Problems Twilio would report when executing this document (empty = none found):
    /// a `<Stream url>` that is not absolute `wss://` or that has a query string (error 31920),
    /// `<Parameter>` without `name`/`value`, verbs after `<Reject>`/`<Hangup>`.
    pub fn issues(&self) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.root.elements() {
            if matches!(e.name.as_str(), "Connect" | "Start") {
                for s in e.elements().filter(|s| s.name == "Stream") {
                    match s.attr("url") {
                        None => out.push("<Stream> without url".to_string()),
                        Some(url) => {
                            if !url.starts_with("wss://") {
                                out.push(format!("<Stream url> is not wss://: {url}"));
                            }
                            if url.contains('?') {
                                out.push(format!("<Stream url> has a query string: {url}"));
                            }
                        }
                    }
                    for p in s.elements() {
                        if p.name != "Parameter" {
                            out.push(format!("unexpected <{}> inside <Stream>", p.name));
                        } else if p.attr("name").is_none() || p.attr("value").is_none() {
                            out.push("<Parameter> without name or value".to_string());
                        }
                    }
                }
            }
        }
        if let Some(pos) = self
            .verbs
            .iter()
            .position(|v| matches!(v, Verb::Reject { .. } | Verb::Hangup))
            && pos + 1 < self.verbs.len()
        {
            out.push("verbs after <Reject>/<Hangup> are never executed".to_string());
        }
        out
    }
}

fn stream(e: &Element) -> Stream {
    let get = |k: &str| e.attr(k).map(str::to_string);
    Stream {
        url: e.attr("url").unwrap_or_default().to_string(),
        name: get("name"),
        track: get("track"),
        status_callback: get("statusCallback"),
        status_callback_method: get("statusCallbackMethod"),
        parameters: e
            .elements()
            .filter(|p| p.name == "Parameter")
            .map(|p| {
                (
                    p.attr("name").unwrap_or_default().to_string(),
                    p.attr("value").unwrap_or_default().to_string(),
                )
            })
            .collect(),
    }
}

fn verb(e: &Element) -> Verb {
    let get = |k: &str| e.attr(k).map(str::to_string);
    match e.name.as_str() {
        "Connect" => Verb::Connect(Connect {
            action: get("action"),
            method: get("method"),
            stream: e.elements().find(|c| c.name == "Stream").map(stream),
            other: e
                .elements()
                .filter(|c| c.name != "Stream")
                .cloned()
                .collect(),
        }),
        "Start" => Verb::Start {
            stream: e.elements().find(|c| c.name == "Stream").map(stream),
        },
        "Reject" => Verb::Reject {
            reason: get("reason"),
        },
        "Say" => Verb::Say {
            text: e.text(),
            voice: get("voice"),
            language: get("language"),
        },
        "Pause" => Verb::Pause {
            length: e.attr("length").and_then(|l| l.parse().ok()),
        },
        "Hangup" => Verb::Hangup,
        "Redirect" => Verb::Redirect {
            url: e.text(),
            method: get("method"),
        },
        "Dial" => {
            let text = e.text();
            let number = if text.is_empty() {
                e.elements().find(|c| c.name == "Number").map(Element::text)
            } else {
                Some(text)
            };
            Verb::Dial(Dial {
                number,
                caller_id: get("callerId"),
                timeout: e.attr("timeout").and_then(|t| t.parse().ok()),
                element: e.clone(),
            })
        }
        _ => Verb::Other(e.clone()),
    }
}

/// Parses an XML document into its root element (comments, processing instructions and the
/// XML declaration are skipped; DOCTYPEs are refused).
pub fn parse_xml(xml: &str) -> Result<Element, TwimlError> {
    let mut p = Parser {
        s: xml,
        pos: xml.strip_prefix('\u{feff}').map_or(0, |_| 3),
    };
    p.skip_misc()?;
    if !p.rest().starts_with('<') {
        return Err(p.err("expected a root element"));
    }
    let root = p.element()?;
    p.skip_misc()?;
    if p.pos != p.s.len() {
        return Err(p.err("content after the root element"));
    }
    Ok(root)
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }

    fn err(&self, message: impl Into<String>) -> TwimlError {
        TwimlError {
            at: self.pos,
            message: message.into(),
        }
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.s.len() - trimmed.len();
    }

    fn skip_until(&mut self, end: &str, what: &str) -> Result<(), TwimlError> {
        match self.rest().find(end) {
            Some(i) => {
                self.pos += i + end.len();
                Ok(())
            }
            None => Err(self.err(format!("unterminated {what}"))),
        }
    }

    /// Skips whitespace, comments and processing instructions.
    fn skip_misc(&mut self) -> Result<(), TwimlError> {
        loop {
            self.skip_ws();
            let r = self.rest();
            if r.starts_with("<?") {
                self.skip_until("?>", "processing instruction")?;
            } else if r.starts_with("<!--") {
                self.skip_until("-->", "comment")?;
            } else if r.starts_with("<!") && !r.starts_with("<![CDATA[") {
                return Err(self.err("DOCTYPE and markup declarations are not allowed"));
            } else {
                return Ok(());
            }
        }
    }

    fn name(&mut self) -> Result<String, TwimlError> {
        let r = self.rest();
        let len = r
            .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
            .unwrap_or(r.len());
        if len == 0 {
            return Err(self.err("expected a name"));
        }
        let name = r[..len].to_string();
        self.pos += len;
        Ok(name)
    }

    fn element(&mut self) -> Result<Element, TwimlError> {
        // At '<'.
        self.pos += 1;
        let name = self.name()?;
        let mut el = Element {
            name,
            ..Element::default()
        };
        loop {
            self.skip_ws();
            let r = self.rest();
            if r.starts_with("/>") {
                self.pos += 2;
                return Ok(el);
            }
            if r.starts_with('>') {
                self.pos += 1;
                break;
            }
            let attr = self.name()?;
            self.skip_ws();
            if !self.rest().starts_with('=') {
                return Err(self.err(format!("attribute {attr} without a value")));
            }
            self.pos += 1;
            self.skip_ws();
            let quote = match self.rest().chars().next() {
                Some(q @ ('"' | '\'')) => q,
                _ => return Err(self.err(format!("attribute {attr} value is not quoted"))),
            };
            self.pos += 1;
            let Some(end) = self.rest().find(quote) else {
                return Err(self.err("unterminated attribute value"));
            };
            let raw = &self.s[self.pos..self.pos + end];
            if raw.contains('<') {
                return Err(self.err("'<' in an attribute value"));
            }
            let value = decode_entities(raw).map_err(|m| self.err(m))?;
            self.pos += end + 1;
            if el.attr(&attr).is_some() {
                return Err(self.err(format!("duplicate attribute {attr}")));
            }
            el.attrs.push((attr, value));
        }
        // Content.
        loop {
            let r = self.rest();
            if r.is_empty() {
                return Err(self.err(format!("unclosed <{}>", el.name)));
            }
            if r.starts_with("</") {
                self.pos += 2;
                let close = self.name()?;
                if close != el.name {
                    return Err(self.err(format!("</{close}> closes <{}>", el.name)));
                }
                self.skip_ws();
                if !self.rest().starts_with('>') {
                    return Err(self.err("expected '>'"));
                }
                self.pos += 1;
                return Ok(el);
            } else if r.starts_with("<!--") {
                self.skip_until("-->", "comment")?;
            } else if let Some(cdata) = r.strip_prefix("<![CDATA[") {
                let Some(end) = cdata.find("]]>") else {
                    return Err(self.err("unterminated CDATA"));
                };
                el.children.push(Node::Text(cdata[..end].to_string()));
                self.pos += 9 + end + 3;
            } else if r.starts_with("<?") {
                self.skip_until("?>", "processing instruction")?;
            } else if r.starts_with('<') {
                let child = self.element()?;
                el.children.push(Node::Element(child));
            } else {
                let end = r.find('<').unwrap_or(r.len());
                let text = decode_entities(&r[..end]).map_err(|m| self.err(m))?;
                self.pos += end;
                if !text.trim().is_empty() {
                    el.children.push(Node::Text(text));
                }
            }
        }
    }
}

fn decode_entities(raw: &str) -> Result<String, String> {
    if !raw.contains('&') {
        return Ok(raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(semi) = after.find(';') else {
            return Err("unterminated entity".to_string());
        };
        let ent = &after[..semi];
        let ch = match ent {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = ent.strip_prefix("#x").or(ent.strip_prefix("#X")) {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = ent.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| format!("unknown entity &{ent};"))?
            }
        };
        out.push(ch);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reject_dial_and_misc() {
        let t = Twiml::parse("<Response><!-- busy --><Reject reason='busy' /></Response>").unwrap();
        assert_eq!(t.reject(), Some(Some("busy")));
        assert!(t.stream().is_none());

        let t = Twiml::parse(
            r#"<Response><Say voice="alice">Connecting &#233;</Say><Dial callerId="+15005550006" timeout="30"><Number>+15551234567</Number></Dial><Hangup/></Response>"#,
        )
        .unwrap();
        assert_eq!(t.says(), vec!["Connecting é"]);
        let d = t.dial().unwrap();
        assert_eq!(d.number.as_deref(), Some("+15551234567"));
        assert_eq!(d.caller_id.as_deref(), Some("+15005550006"));
        assert_eq!(d.timeout, Some(30));
        assert!(t.hangs_up());

        let t = Twiml::parse("<Response><Dial>+15551234567</Dial><Pause length=\"2\"/><Redirect method=\"POST\">https://x/y</Redirect><Foo/></Response>").unwrap();
        assert_eq!(t.dial().unwrap().number.as_deref(), Some("+15551234567"));
        assert_eq!(t.verbs[1], Verb::Pause { length: Some(2) });
        assert!(matches!(&t.verbs[2], Verb::Redirect { url, .. } if url == "https://x/y"));
        assert!(matches!(&t.verbs[3], Verb::Other(e) if e.name == "Foo"));
    }

    #[test]
    fn refuses_bad_documents() {
        for bad in [
            "",
            "<Response>",
            "<Response></Respons>",
            "<Response><Say>x</Response>",
            "<Response a=b/>",
            "<Response>&bogus;</Response>",
            "<Other/>",
            "<!DOCTYPE x><Response/>",
            "<Response/><Response/>",
            "<Response a='1' a='2'/>",
        ] {
            assert!(Twiml::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn reports_stream_issues() {
        let t = Twiml::parse(
            r#"<Response><Connect><Stream url="ws://h/media?x=1"><Parameter name="a"/></Stream></Connect><Hangup/><Say>x</Say></Response>"#,
        )
        .unwrap();
        let issues = t.issues();
        assert_eq!(issues.len(), 4, "{issues:?}");
    }
}
