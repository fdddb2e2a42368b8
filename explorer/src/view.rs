//! Presentation values shared by the templates: the page layout, hashes in
//! short form with a copy button, times, and URL encoding.

use std::fmt::{self, Write as _};

use askama::filters::HtmlSafe;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::assets;

/// What the base template needs: the title, the active navigation item, and
/// the asset URLs (versioned by content, so they can be cached for a year).
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub title: String,
    pub nav: &'static str,
    pub origin: String,
    pub css: String,
    pub js: String,
}

impl Layout {
    pub fn new(title: impl Into<String>, nav: &'static str) -> Layout {
        Layout {
            title: title.into(),
            nav,
            origin: String::new(),
            css: assets::url("style.css"),
            js: assets::url("explorer.js"),
        }
    }

    pub fn with_origin(mut self, origin: &str) -> Layout {
        origin.clone_into(&mut self.origin);
        self
    }

    /// `"active"` when `item` is the current navigation item (a CSS class).
    pub fn active(&self, item: &str) -> &'static str {
        if self.nav == item { "active" } else { "" }
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a path segment or query value: everything but
/// `A-Z a-z 0-9 - _ . ~ : @` (so `/` inside an identifier stays in one segment).
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':' | b'@') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A hash or ID shown in short form (`1a2b3c4d…9f0e`), the full value on
/// hover, with a copy-to-clipboard button; optionally a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Digest {
    pub full: String,
    pub href: Option<String>,
}

impl Digest {
    pub fn new(full: impl Into<String>) -> Digest {
        Digest {
            full: full.into(),
            href: None,
        }
    }

    pub fn link(full: impl Into<String>, href: impl Into<String>) -> Digest {
        Digest {
            full: full.into(),
            href: Some(href.into()),
        }
    }

    /// A link to an event page.
    pub fn event(id: &str) -> Digest {
        Digest::link(id, format!("/events/{id}"))
    }
}

/// `1a2b3c4d…9f0e` for anything longer than 16 characters.
pub(crate) fn short(full: &str) -> String {
    let n = full.chars().count();
    if n <= 16 {
        return full.to_owned();
    }
    let head: String = full.chars().take(8).collect();
    let tail: String = full.chars().skip(n - 4).collect();
    format!("{head}…{tail}")
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = escape(&self.full);
        let short = escape(&short(&self.full));
        f.write_str("<span class=\"digest\">")?;
        match &self.href {
            Some(href) => write!(
                f,
                "<a class=\"mono\" href=\"{}\" title=\"{full}\">{short}</a>",
                escape(href)
            )?,
            None => write!(f, "<code class=\"mono\" title=\"{full}\">{short}</code>")?,
        }
        write!(
            f,
            "<button type=\"button\" class=\"copy\" data-copy=\"{full}\" \
             title=\"Copy {full}\" aria-label=\"Copy\"></button></span>"
        )
    }
}

impl HtmlSafe for Digest {}

/// A point in time: UTC text, RFC 3339 for `<time datetime>`, and an age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct When {
    pub iso: String,
    pub text: String,
    pub ago: String,
}

impl When {
    pub fn from_ms(ms: u64, now: OffsetDateTime) -> When {
        let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        When::at(t, now)
    }

    pub fn at(t: OffsetDateTime, now: OffsetDateTime) -> When {
        let t = t.to_offset(time::UtcOffset::UTC);
        When {
            iso: t.format(&Rfc3339).unwrap_or_default(),
            text: format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
            ago: ago(now - t),
        }
    }
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<time datetime=\"{}\" title=\"{}\">{}</time>",
            escape(&self.iso),
            escape(&self.ago),
            escape(&self.text)
        )
    }
}

impl HtmlSafe for When {}

/// "4 s ago", "3 min ago", "2 h ago", "5 d ago"; "in the future" for clock skew.
pub(crate) fn ago(d: time::Duration) -> String {
    let s = d.whole_seconds();
    if s < 0 {
        return "in the future".into();
    }
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// A duration between two events, compact: "120 ms", "4.2 s", "3 min 5 s".
pub(crate) fn span(d: time::Duration) -> String {
    let ms = d.whole_milliseconds();
    if ms < 0 {
        return format!("−{}", span(-d));
    }
    match ms {
        0..=999 => format!("{ms} ms"),
        1000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{} min {} s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{} h {} min", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// Thousands separators: 1234567 -> "1,234,567".
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A short category of an event kind, for colour in lists and the graph.
pub(crate) fn kind_class(kind: &str) -> &'static str {
    let k = kind.to_ascii_lowercase();
    if k.contains("deny")
        || k.contains("denied")
        || k.contains("revoke")
        || k.contains("fail")
        || k.contains("error")
    {
        "k-deny"
    } else if k.contains("grant") || k.contains("allow") || k.contains("approve") {
        "k-grant"
    } else if k.contains("boundary") || k.contains("cross") || k.contains("handoff") {
        "k-cross"
    } else if k.contains("spawn")
        || k.contains("start")
        || k.contains("finish")
        || k.contains("end")
    {
        "k-life"
    } else if k.contains("tool") || k.contains("invoke") || k.contains("call") {
        "k-tool"
    } else {
        "k-other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms_keep_both_ends() {
        assert_eq!(short("abc"), "abc");
        assert_eq!(short("0123456789abcdef0123456789abcdef"), "01234567…cdef");
    }

    #[test]
    fn digests_are_escaped() {
        let d = Digest::link("<x>\"", "/a?b=1&c=2").to_string();
        assert!(d.contains("&lt;x&gt;&quot;"), "{d}");
        assert!(d.contains("/a?b=1&amp;c=2"), "{d}");
        assert!(!d.contains("<x>"));
    }

    #[test]
    fn identifiers_stay_in_one_segment() {
        assert_eq!(enc("agent/planner"), "agent%2Fplanner");
        assert_eq!(enc("a b&c"), "a%20b%26c");
        assert_eq!(enc("run:1@x.y-z_~"), "run:1@x.y-z_~");
    }

    #[test]
    fn counts_and_ages_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(ago(time::Duration::seconds(5)), "5 s ago");
        assert_eq!(ago(time::Duration::seconds(125)), "2 min ago");
        assert_eq!(ago(time::Duration::seconds(-1)), "in the future");
        assert_eq!(span(time::Duration::milliseconds(1500)), "1.5 s");
    }
}
