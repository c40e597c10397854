//! XSS-safe user HTML: [`SafeHtml`] over ammonia, and [`escape_html`] for plain text.
//!
//! **Threat model.** Stored cross-site scripting: a user saves HTML (an item description) that
//! runs script in another user's browser when shown. [`SafeHtml::sanitize`] parses the input with
//! an HTML5 parser (html5ever, through ammonia ≥ 4.2.5) and keeps only this allowlist:
//!
//! - tags `p br b i em strong code pre blockquote ul ol li a`, with no attributes at all except
//!   `href` on `a`;
//! - `href` only with the schemes `http`, `https` and `mailto`; relative URLs are dropped too, so
//!   `javascript:`, `data:`, `vbscript:` and scheme-less tricks cannot survive;
//! - every link gets `rel="noopener noreferrer"` (no `window.opener`, no `Referer` leak);
//! - `script` and `style` lose their content; other unknown tags (`svg`, `math`, `img`, `iframe`,
//!   `form`, ...) are unwrapped to their text; comments are dropped.
//!
//! The output is re-serialized by the parser, so what a browser parses is what was checked
//! (mutation-XSS vectors built on parser differentials come out as inert text). Plain text going
//! into a page (an item name) goes through [`escape_html`] instead.
//!
//! **Not covered.** Text inside `<script>`, `<style>`, or an unquoted attribute: neither function
//! makes text safe there. Sanitized HTML can still carry links to hostile `http(s)` sites and
//! misleading text (phishing); it cannot run script. CSS-based layout abuse is impossible only
//! because no `style` or `class` attribute is allowed.
//!
//! **Deployment.** Sanitize on input and store the sanitized form, as the contract says; pages
//! that show it should still send a strict `Content-Security-Policy` (see [`crate::headers`]) as a
//! second wall. Upgrading ammonia may change the exact output bytes, never the allowlist.

use std::{collections::HashSet, fmt, sync::LazyLock};

use ammonia::{Builder, UrlRelative};
use serde::{Serialize, Serializer};

/// The tags [`SafeHtml::sanitize`] keeps (the contract's allowlist); every other tag is unwrapped
/// to its text, or dropped with its content for `script` and `style`. Only `a` keeps an
/// attribute, `href`. Public so that tests and fuzz oracles check output against the policy itself.
pub const ALLOWED_TAGS: [&str; 13] = [
    "p",
    "br",
    "b",
    "i",
    "em",
    "strong",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "a",
];

/// The contract's allowlist, built once.
static SANITIZER: LazyLock<Builder<'static>> = LazyLock::new(|| {
    let mut builder = Builder::empty();
    builder
        .tags(HashSet::from(ALLOWED_TAGS))
        .tag_attributes([("a", HashSet::from(["href"]))].into())
        .tag_attribute_values(Default::default())
        .set_tag_attribute_values(Default::default())
        .generic_attributes(HashSet::new())
        .allowed_classes(Default::default())
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        .url_relative(UrlRelative::Deny)
        .link_rel(Some("noopener noreferrer"))
        .strip_comments(true)
        .id_prefix(None);
    builder
});

/// HTML that passed the allowlist. The only way to make one is [`SafeHtml::sanitize`].
///
/// Serializes as a plain JSON string.
///
/// # Examples
/// ```
/// use bulwark::sanitize::SafeHtml;
///
/// let untrusted = r#"<p onclick="steal()">Hi <a href="https://example.com">there</a></p>"#;
/// let html = SafeHtml::sanitize(&format!("{untrusted}<script>x()</script>"));
/// assert_eq!(
///     html.as_str(),
///     r#"<p>Hi <a href="https://example.com" rel="noopener noreferrer">there</a></p>"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SafeHtml(String);

impl SafeHtml {
    /// Sanitizes untrusted HTML with the allowlist described in the [module docs](self).
    pub fn sanitize(untrusted: &str) -> Self {
        Self(SANITIZER.clean(untrusted).to_string())
    }

    /// The sanitized HTML.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The sanitized HTML, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl AsRef<str> for SafeHtml {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SafeHtml {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<SafeHtml> for String {
    fn from(html: SafeHtml) -> Self {
        html.0
    }
}

impl Serialize for SafeHtml {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Escapes text for an HTML text node or a quoted attribute value: `& < > " '`.
///
/// Unlike `ammonia::clean_text`, spaces, `/` and `=` stay readable; in exchange the result is not
/// safe in an *unquoted* attribute (always quote attributes).
///
/// # Examples
/// ```
/// use bulwark::sanitize::escape_html;
///
/// assert_eq!(
///     escape_html(r#"<b class="x">Tom & Jerry's</b>"#),
///     "&lt;b class=&quot;x&quot;&gt;Tom &amp; Jerry&#x27;s&lt;/b&gt;"
/// );
/// ```
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(html: &str) -> String {
        SafeHtml::sanitize(html).into_string()
    }

    /// The allowlist itself holds no tag that can run or load anything, and none that switches
    /// a browser's tokenizer out of its data state (raw text, RCDATA, plaintext), so output made
    /// only of these tags tokenizes the way the fuzz oracle reads it.
    #[test]
    fn the_allowlist_has_no_active_or_raw_text_tag() {
        for tag in [
            "script",
            "style",
            "iframe",
            "frame",
            "object",
            "embed",
            "img",
            "svg",
            "math",
            "form",
            "input",
            "button",
            "link",
            "meta",
            "base",
            "template",
            "noscript",
            "noembed",
            "noframes",
            "textarea",
            "title",
            "xmp",
            "plaintext",
            "video",
            "audio",
            "source",
        ] {
            assert!(!ALLOWED_TAGS.contains(&tag), "{tag} is allowed");
        }
        assert_eq!(
            HashSet::from(ALLOWED_TAGS).len(),
            ALLOWED_TAGS.len(),
            "a tag is repeated"
        );
    }

    /// No tag outside the allowlist, no event handler, no dangerous scheme, no style.
    fn assert_inert(output: &str, input: &str) {
        let lower = output.to_lowercase();
        for needle in [
            "<script",
            "<img",
            "<svg",
            "<math",
            "<iframe",
            "<style",
            "<form",
            "<object",
            "<embed",
            "<noscript",
            "<template",
            "<!--",
            "onerror",
            "onload",
            "onclick",
            "onmouseover",
            "javascript:",
            "vbscript:",
            "data:",
            "style=",
            "srcdoc",
            "formaction",
        ] {
            assert!(
                !lower.contains(needle),
                "{needle:?} survived in {output:?} (from {input:?})"
            );
        }
    }

    #[test]
    fn classic_xss_vectors_come_out_inert() {
        let vectors = [
            "<script>alert(1)</script>",
            "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
            "<img src=x onerror=alert(1)>",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<a href=\"JaVaScRiPt:alert(1)\">x</a>",
            "<a href=\"java&#x09;script:alert(1)\">x</a>",
            "<a href=\"&#106;avascript:alert(1)\">x</a>",
            "<a href=\" javascript:alert(1)\">x</a>",
            "<a href=\"vbscript:msgbox(1)\">x</a>",
            "<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">x</a>",
            "<svg onload=alert(1)>",
            "<svg><script>alert(1)</script></svg>",
            "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
            "<svg></p><style><a id=\"</style><img src=1 onerror=alert(1)>\">",
            "<form><math><mtext></form><form><mglyph><style></math><img src onerror=alert(1)>",
            "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
            "<p style=\"background:url(javascript:alert(1))\">x</p>",
            "<b style=\"position:fixed;top:0\">x</b>",
            "<iframe src=\"https://evil.example\"></iframe>",
            "<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>",
            "<object data=\"javascript:alert(1)\"></object>",
            "<button formaction=javascript:alert(1)>x</button>",
            "<!--<img src=x onerror=alert(1)>-->",
            "<a href=x onmouseover=alert(1)>x</a>",
            "<style>@import 'https://evil.example/x.css';</style>",
            "<template><script>alert(1)</script></template>",
        ];
        for input in vectors {
            assert_inert(&clean(input), input);
        }
    }

    #[test]
    fn script_and_style_lose_their_content() {
        assert_eq!(clean("a<script>alert(1)</script>b"), "ab");
        assert_eq!(clean("a<style>p{color:red}</style>b"), "ab");
    }

    #[test]
    fn allowed_markup_is_kept() {
        let input = "<p>Hello <b>bold</b> <i>it</i> <em>em</em> <strong>st</strong><br>\
                     <code>x</code></p><pre>pre</pre><blockquote>q</blockquote>\
                     <ul><li>one</li></ul><ol><li>two</li></ol>";
        assert_eq!(clean(input), input);
    }

    #[test]
    fn links_keep_safe_schemes_and_get_rel() {
        assert_eq!(
            clean("<a href=\"https://example.com/?a=1&amp;b=2\" title=t target=_blank>x</a>"),
            "<a href=\"https://example.com/?a=1&amp;b=2\" rel=\"noopener noreferrer\">x</a>"
        );
        assert_eq!(
            clean("<a href=\"mailto:me@example.com\">m</a>"),
            "<a href=\"mailto:me@example.com\" rel=\"noopener noreferrer\">m</a>"
        );
        assert_eq!(
            clean("<a href=\"http://example.com\" rel=\"opener\">h</a>"),
            "<a href=\"http://example.com\" rel=\"noopener noreferrer\">h</a>"
        );
        // Relative and other schemes lose the href, keep the text.
        for href in ["/admin", "//evil.example", "ftp://x.example", "tel:123"] {
            assert_eq!(
                clean(&format!("<a href=\"{href}\">t</a>")),
                "<a rel=\"noopener noreferrer\">t</a>",
                "{href}"
            );
        }
    }

    #[test]
    fn other_tags_and_attributes_are_dropped() {
        assert_eq!(
            clean("<div class=c id=i><span lang=en>t</span><h1>h</h1></div>"),
            "th"
        );
        assert_eq!(
            clean("<p class=\"x\" id=\"y\" title=\"z\">t</p>"),
            "<p>t</p>"
        );
    }

    #[test]
    fn sanitizing_is_idempotent() {
        let once = clean("<p>x <a href=\"https://e.example\">l</a> &lt;tag&gt;</p><img src=x>");
        assert_eq!(clean(&once), once);
    }

    #[test]
    fn safe_html_serializes_as_a_string_and_displays_raw() {
        let html = SafeHtml::sanitize("<b>x</b>");
        assert_eq!(serde_json::to_string(&html).expect("json"), "\"<b>x</b>\"");
        assert_eq!(html.to_string(), "<b>x</b>");
    }

    #[test]
    fn escape_html_neutralises_markup() {
        assert_eq!(
            escape_html("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#x27;x&#x27;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(escape_html("plain text, ünïcode"), "plain text, ünïcode");
    }
}
