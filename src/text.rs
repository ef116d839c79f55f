//! Peer-chosen text on its way to a terminal, a log file or a page: a TFTP
//! file name, an HTTP path, a vendor class or an NFS export path can carry
//! escape sequences (`\x1b[2J` clears the operator's screen) or a newline
//! that forges a second log line. Every such character is written as a
//! visible escape instead.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` must not reach a terminal or a line-based log as it is:
/// C0 and C1 controls, DEL, and the bidirectional overrides that make text
/// read differently from what it is (CVE-2021-42574, "Trojan Source").
fn hostile(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every hostile character escaped (`\n`, `\r`, `\t`, `\x1b`, `\u{202e}`).
pub fn clean(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hostile) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if hostile(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if hostile(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `s` cut to at most `max` bytes (on a character boundary), marked with `…`.
pub fn bounded(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &s[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_overrides_become_visible() {
        assert_eq!(clean("pxelinux.0"), "pxelinux.0");
        assert!(matches!(clean("plain"), Cow::Borrowed(_)));
        assert_eq!(clean("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(clean("x\nINFO forged"), "x\\nINFO forged");
        assert_eq!(clean("\r\t\x7f\u{85}"), "\\r\\t\\x7f\\x85");
        assert_eq!(clean("evil\u{202e}fdp.exe"), "evil\\u{202e}fdp.exe");
        assert_eq!(clean("café ünïcode"), "café ünïcode");
    }

    #[test]
    fn bounded_cuts_on_a_character_boundary() {
        assert_eq!(bounded("short", 10), "short");
        assert_eq!(bounded("ééé", 3), "é…");
        assert_eq!(bounded(&"x".repeat(1000), 4), "xxxx…");
    }
}
