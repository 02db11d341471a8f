//! Escaping of untrusted text (transcripts, numbers, tool arguments and results, anything a
//! caller or a tool controls) for HTML text, attribute values and SVG text: the one function
//! every page goes through.

use std::fmt::Write as _;

/// `text` escaped for HTML and SVG: `&`, `<`, `>`, `"` and `'` become character references, so
/// the result is safe as element content and inside single- or double-quoted attribute values.
/// Control characters other than tab, newline and carriage return are dropped (XML forbids them
/// and browsers render them as garbage).
pub(crate) fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// `text` escaped for a URL path segment or query value (everything but unreserved
/// characters percent-encoded); the result is also safe in an HTML attribute.
pub(crate) fn url_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_becomes_text() {
        assert_eq!(
            html(r#"<script>alert("x")</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
        );
        assert_eq!(
            html("a & b's <b>bold</b>"),
            "a &amp; b&#39;s &lt;b&gt;bold&lt;/b&gt;"
        );
        // Already escaped text is escaped again (shown as typed, never decoded).
        assert_eq!(html("&lt;"), "&amp;lt;");
        // Attribute breakouts.
        assert_eq!(html(r#"" onmouseover="x"#), "&quot; onmouseover=&quot;x");
        assert_eq!(html("' onload='x"), "&#39; onload=&#39;x");
    }

    #[test]
    fn keeps_text_and_drops_control_characters() {
        assert_eq!(html("Grüße, 東京 ☎\n\tok"), "Grüße, 東京 ☎\n\tok");
        assert_eq!(html("a\u{0}b\u{1b}[31mc\u{7f}"), "ab[31mc");
        assert_eq!(html(""), "");
    }

    #[test]
    fn url_components() {
        assert_eq!(url_component("CA123"), "CA123");
        assert_eq!(url_component("+1 555/\"x\""), "%2B1%20555%2F%22x%22");
        assert_eq!(url_component("ü"), "%C3%BC");
    }
}
