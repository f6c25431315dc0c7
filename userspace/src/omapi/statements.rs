//! The dhcpd.conf statements an OMAPI host carries (`statements`), parsed
//! into what a reservation can hold: boot file, next server, host name.
//! The forms Foreman, MAAS and pypureomapi send are accepted, in their
//! `option`, `supersede` and `server.` spellings; anything else is an
//! error (dhcpd's "parse error"), never silently dropped.

use std::net::Ipv4Addr;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Statements {
    pub filename: Option<String>,
    pub next_server: Option<Ipv4Addr>,
    pub hostname: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Str(String),
    Eq,
}

fn tokens(stmt: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = stmt.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '=' {
            chars.next();
            out.push(Token::Eq);
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => return Err("unterminated string".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(e) => s.push(e),
                        None => return Err("unterminated string".into()),
                    },
                    Some(ch) => s.push(ch),
                }
            }
            out.push(Token::Str(s));
        } else {
            let mut w = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() || ch == '=' || ch == '"' {
                    break;
                }
                w.push(ch);
                chars.next();
            }
            out.push(Token::Word(w));
        }
    }
    Ok(out)
}

/// Splits on `;` outside quotes; the text must end with one.
fn split(text: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !text[start..].trim().is_empty() || quoted {
        return Err(format!("{:?}: missing ';'", text[start..].trim()));
    }
    Ok(out)
}

/// An address as dhcpd writes it (colon hex) or a person does (dotted).
fn address(t: &Token) -> Option<Ipv4Addr> {
    let text = match t {
        Token::Word(w) | Token::Str(w) => w,
        Token::Eq => return None,
    };
    if let Ok(a) = text.parse() {
        return Some(a);
    }
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut o = [0u8; 4];
    for (b, p) in o.iter_mut().zip(parts) {
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    Some(Ipv4Addr::from(o))
}

fn string(t: &Token) -> Option<String> {
    match t {
        Token::Str(s) => Some(s.clone()),
        _ => None,
    }
}

/// Parses `text`; the error says which statement was not understood.
pub fn parse(text: &str) -> Result<Statements, String> {
    let mut out = Statements::default();
    for stmt in split(text)? {
        let toks = tokens(stmt)?;
        if toks.is_empty() {
            continue;
        }
        let words: Vec<&Token> = toks.iter().filter(|t| **t != Token::Eq).collect();
        let eqs = toks.len() - words.len();
        let bad = || format!("{:?}: not a statement stormboot can honour", stmt.trim());
        let head: Vec<&str> = words
            .iter()
            .map(|t| match t {
                Token::Word(w) => w.as_str(),
                _ => "",
            })
            .collect();
        // The name and its one value, in any of the spellings.
        let (name, value) = match head.as_slice() {
            ["option" | "supersede", name, _] => (*name, words[2]),
            [name, _] => (*name, words[1]),
            _ => return Err(bad()),
        };
        if eqs > 1 {
            return Err(bad());
        }
        match name {
            "filename" | "server.filename" | "bootfile-name" => {
                let f = string(value).ok_or_else(bad)?;
                if f.is_empty() || f.len() > 127 || f.contains('\0') {
                    return Err(format!("{f:?}: a boot file name of 1..=127 bytes"));
                }
                out.filename = Some(f);
            }
            "next-server" | "server.next-server" => {
                out.next_server = Some(address(value).ok_or_else(|| {
                    format!(
                        "{:?}: next-server must be an IPv4 address (stormboot does not resolve names)",
                        stmt.trim()
                    )
                })?);
            }
            "host-name" => out.hostname = Some(string(value).ok_or_else(bad)?),
            _ => return Err(bad()),
        }
        // `filename` and `next-server` are statements, `host-name` an
        // option: the other prefixes are errors in dhcpd too.
        let prefixed = head.len() == 3;
        let ok_prefix = match (name, prefixed, head.first().copied()) {
            ("host-name", true, _) => true,
            ("host-name", false, _) => false,
            ("server.filename" | "server.next-server", true, Some("supersede")) => true,
            ("filename" | "next-server", false, _) => true,
            ("bootfile-name", true, Some("option" | "supersede")) => true,
            _ => false,
        };
        if !ok_prefix {
            return Err(bad());
        }
    }
    Ok(out)
}

/// The statements as dhcpd writes them into dhcpd.leases.
pub fn render(s: &Statements) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(f) = &s.filename {
        out.push(format!("supersede server.filename = {};", quote(f)));
    }
    if let Some(n) = s.next_server {
        let o = n.octets();
        out.push(format!(
            "supersede server.next-server = {:02x}:{:02x}:{:02x}:{:02x};",
            o[0], o[1], o[2], o[3]
        ));
    }
    if let Some(h) = &s.hostname {
        out.push(format!("supersede host-name = {};", quote(h)));
    }
    out
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(a: u8) -> Option<Ipv4Addr> {
        Some(Ipv4Addr::new(192, 0, 2, a))
    }

    #[test]
    fn foremans_statements_parse() {
        let s = parse(
            r#"filename = "pxelinux.0"; next-server = c0:00:02:01; option host-name = "a-test-01";"#,
        )
        .unwrap();
        assert_eq!(
            s,
            Statements {
                filename: Some("pxelinux.0".into()),
                next_server: ns(1),
                hostname: Some("a-test-01".into()),
            }
        );
    }

    #[test]
    fn the_other_spellings_parse() {
        let s = parse(
            r#"supersede server.filename = "a b;c"; supersede server.next-server 192.0.2.7; supersede host-name "h";"#,
        )
        .unwrap();
        assert_eq!(s.filename.as_deref(), Some("a b;c"));
        assert_eq!(s.next_server, ns(7));
        assert_eq!(s.hostname.as_deref(), Some("h"));
        let s = parse(r#"filename "x"; next-server = "192.0.2.9";"#).unwrap();
        assert_eq!((s.filename.as_deref(), s.next_server), (Some("x"), ns(9)));
        assert_eq!(parse("").unwrap(), Statements::default());
    }

    #[test]
    fn what_stormboot_cannot_honour_is_an_error() {
        for bad in [
            "filename = \"x\"",
            "option routers 192.0.2.1;",
            "next-server = \"boot.example\";",
            "vendor-option-space SUNW;",
            "option SUNW.root-path \"x\";",
            "filename = pxelinux.0;",
            "garbage;",
            "filename = \"unterminated;",
            "host-name = \"x\";",
            "option filename = \"x\";",
            "filename = = \"x\";",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rendering_is_dhcpds_supersede_form_and_parses_back() {
        let s = Statements {
            filename: Some("pxe\"linux.0".into()),
            next_server: ns(1),
            hostname: Some("a-test-01".into()),
        };
        let lines = render(&s);
        assert_eq!(lines[1], "supersede server.next-server = c0:00:02:01;");
        assert_eq!(parse(&lines.join(" ")).unwrap(), s);
    }
}
