//! ISC dhcpd.conf: `host` blocks (hardware ethernet, fixed-address,
//! option host-name) become reservations, `subnet` declarations (range,
//! routers, domain-name-servers, domain-name, default-lease-time) subnets.
//!
//! Options and lease times declared globally, in a `shared-network` or in a
//! `group` apply to the subnets inside, as dhcpd scopes them. Everything else
//! (classes, failover, DDNS, per-host boot files, `include`) is listed with
//! its line.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{Import, ParseError, Reservation, Subnet};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Punct(char),
}

/// One statement: its words up to `;`, or up to a `{ ... }` block.
#[derive(Debug)]
struct Stmt {
    line: usize,
    words: Vec<Tok>,
    block: Option<Vec<Stmt>>,
}

impl Stmt {
    fn word(&self, i: usize) -> Option<&str> {
        match self.words.get(i)? {
            Tok::Word(w) | Tok::Quoted(w) => Some(w),
            Tok::Punct(_) => None,
        }
    }

    /// The words from `i` on, commas dropped, as one value list.
    fn values(&self, from: usize) -> Vec<String> {
        self.words
            .iter()
            .skip(from)
            .filter_map(|t| match t {
                Tok::Word(w) | Tok::Quoted(w) => Some(w.clone()),
                Tok::Punct(_) => None,
            })
            .collect()
    }

    fn text(&self) -> String {
        let words: Vec<String> = self
            .words
            .iter()
            .map(|t| match t {
                Tok::Word(w) => w.clone(),
                Tok::Quoted(w) => format!("{w:?}"),
                Tok::Punct(c) => c.to_string(),
            })
            .collect();
        words.join(" ").replace(" ,", ",")
    }
}

fn tokenize(text: &str) -> Result<Vec<(usize, Tok)>, ParseError> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '"' => {
                let start = line;
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(ParseError::new(start, "unterminated string")),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some(e) => s.push(e),
                            None => return Err(ParseError::new(start, "unterminated string")),
                        },
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            s.push(c)
                        }
                    }
                }
                out.push((start, Tok::Quoted(s)));
            }
            '{' | '}' | ';' | ',' => out.push((line, Tok::Punct(c))),
            _ => {
                let mut w = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, '{' | '}' | ';' | ',' | '"' | '#') {
                        break;
                    }
                    w.push(n);
                    chars.next();
                }
                out.push((line, Tok::Word(w)));
            }
        }
    }
    Ok(out)
}

fn missing_semicolon(line: usize, words: Vec<Tok>) -> ParseError {
    let st = Stmt {
        line,
        words,
        block: None,
    };
    ParseError::new(line, format!("missing ';' after {:?}", st.text()))
}

/// Deeper nesting than any real dhcpd.conf has; a bound, so that hostile
/// input cannot exhaust the stack.
const MAX_DEPTH: usize = 32;

/// The statements up to the `}` closing the block opened on line `nested`
/// (or to the end of the text at the top level).
fn statements(
    toks: &mut std::iter::Peekable<std::vec::IntoIter<(usize, Tok)>>,
    nested: Option<usize>,
    depth: usize,
) -> Result<Vec<Stmt>, ParseError> {
    if depth > MAX_DEPTH {
        return Err(ParseError::new(
            nested.unwrap_or(1),
            format!("blocks nested deeper than {MAX_DEPTH}"),
        ));
    }
    let mut out = Vec::new();
    let mut words: Vec<Tok> = Vec::new();
    let mut first = 0;
    while let Some((line, t)) = toks.next() {
        if words.is_empty() {
            first = line;
        }
        match t {
            Tok::Punct(';') => {
                if !words.is_empty() {
                    out.push(Stmt {
                        line: first,
                        words: std::mem::take(&mut words),
                        block: None,
                    });
                }
            }
            Tok::Punct('{') => {
                let open = if words.is_empty() { line } else { first };
                let block = statements(toks, Some(line), depth + 1)?;
                out.push(Stmt {
                    line: open,
                    words: std::mem::take(&mut words),
                    block: Some(block),
                });
                // `host x { ... };` is accepted by dhcpd too.
                if toks.peek().is_some_and(|(_, t)| *t == Tok::Punct(';')) {
                    toks.next();
                }
            }
            Tok::Punct('}') => {
                if nested.is_none() {
                    return Err(ParseError::new(line, "'}' without a matching '{'"));
                }
                if !words.is_empty() {
                    return Err(missing_semicolon(first, words));
                }
                return Ok(out);
            }
            t => words.push(t),
        }
    }
    if let Some(open) = nested {
        return Err(ParseError::new(open, "'{' is never closed"));
    }
    if !words.is_empty() {
        return Err(missing_semicolon(first, words));
    }
    Ok(out)
}

/// Settings inherited from enclosing scopes.
#[derive(Clone, Default)]
struct Scope {
    routers: Option<Vec<Ipv4Addr>>,
    dns: Option<Vec<Ipv4Addr>>,
    domain: Option<String>,
    ntp: Option<Vec<Ipv4Addr>>,
    lease_time: Option<u64>,
    use_host_decl_names: bool,
    /// Other options stormboot can send, by code, as dhcpd wrote them.
    options: Vec<(usize, u8, String)>,
}

pub fn parse(text: &str) -> Result<Import, ParseError> {
    let toks = tokenize(text)?;
    let tree = statements(&mut toks.into_iter().peekable(), None, 0)?;
    let mut imp = Import::default();
    walk(&tree, &Scope::default(), false, &mut imp);
    Ok(imp)
}

/// Reads a scope's own settings (statements without a block) first, as
/// dhcpd's scoping is by nesting, not by order.
fn scope_of(stmts: &[Stmt], outer: &Scope, imp: &mut Import, reported: bool) -> Scope {
    let mut s = outer.clone();
    for st in stmts.iter().filter(|s| s.block.is_none()) {
        let r = setting(st, &mut s);
        if let Err(reason) = r {
            if reported {
                imp.skip(st.line, reason);
            }
        }
    }
    s
}

/// One scope setting. Ok(()) when it was understood (or belongs to a
/// host, which reads its own), Err(reason) otherwise.
fn setting(st: &Stmt, s: &mut Scope) -> Result<(), String> {
    let w0 = st.word(0).unwrap_or_default();
    let ips = |from| -> Result<Vec<Ipv4Addr>, String> {
        st.values(from)
            .iter()
            .map(|v| {
                v.parse().map_err(|_| {
                    format!("{}: {v:?} is not an IPv4 address (stormboot sends addresses, it does not resolve names)", st.text())
                })
            })
            .collect()
    };
    match (w0, st.word(1).unwrap_or_default()) {
        ("option", "routers") => s.routers = Some(ips(2)?),
        ("option", "domain-name-servers") => s.dns = Some(ips(2)?),
        ("option", "ntp-servers") => s.ntp = Some(ips(2)?),
        ("option", "broadcast-address" | "subnet-mask") => {
            return Err(format!(
                "{}: stormboot derives it from the subnet's cidr",
                st.text()
            ))
        }
        ("option", "domain-name") => s.domain = st.word(2).map(str::to_string),
        ("option", name) if super::option_code(name).is_some() => {
            let code = super::option_code(name).expect("checked");
            s.options.retain(|(_, c, _)| *c != code);
            s.options.push((st.line, code, st.values(2).join(",")));
        }
        ("default-lease-time", v) => {
            s.lease_time = Some(
                v.parse()
                    .map_err(|_| format!("{}: not a number of seconds", st.text()))?,
            )
        }
        ("use-host-decl-names", v) => s.use_host_decl_names = v == "on" || v == "true",
        // Read with the subnet it belongs to.
        ("range", _) => {}
        ("include", _) => {
            return Err(format!(
                "include {:?} is not followed: import that file on its own",
                st.word(1).unwrap_or_default()
            ))
        }
        ("filename" | "next-server" | "server-name", _) => {
            return Err(format!(
                "{}: stormboot boots a machine by its profile; set the reservations' profile (--profile) instead",
                st.text()
            ))
        }
        ("authoritative", _) => {
            return Err("authoritative: a stormboot subnet is authoritative unless it says authoritative = false".into())
        }
        _ => return Err(format!("{}: no stormboot counterpart", st.text())),
    }
    Ok(())
}

fn walk(stmts: &[Stmt], outer: &Scope, in_subnet: bool, imp: &mut Import) {
    let scope = scope_of(stmts, outer, imp, true);
    let mut shared_pools = Vec::new();
    for st in stmts {
        let Some(block) = &st.block else { continue };
        match st.word(0).unwrap_or_default() {
            "group" | "shared-network" => walk(block, &scope, in_subnet, imp),
            "subnet" => match declare_subnet(st, block, &scope, imp) {
                Ok(()) => walk(block, &scope, true, imp),
                Err(reason) => imp.skip(st.line, reason),
            },
            "pool" => {
                for p in block {
                    if p.block.is_some() || p.word(0) != Some("range") {
                        imp.skip(
                            p.line,
                            format!("{} (inside a pool): no stormboot counterpart", p.text()),
                        );
                    }
                }
                // Inside a subnet, the ranges were read with it; in a
                // shared network they go to the subnet holding them, once
                // all of its subnets are known.
                if !in_subnet {
                    shared_pools.extend(block.iter().filter(|p| p.word(0) == Some("range")));
                }
            }
            "host" => host(st, block, &scope, imp),
            _ => imp.skip(
                st.line,
                format!("{} {{ ... }}: no stormboot counterpart", st.text()),
            ),
        }
    }
    for r in shared_pools {
        match range_of(r) {
            Some((a, b)) => match imp.subnets.iter_mut().find(|s| s.cidr.contains(&a)) {
                Some(s) => s.pools.push((a, b)),
                None => imp.skip(r.line, format!("{}: in no declared subnet", r.text())),
            },
            None => imp.skip(
                r.line,
                format!("{}: not a range of IPv4 addresses", r.text()),
            ),
        }
    }
}

/// `range [dynamic-bootp] low [high]`
fn range_of(r: &Stmt) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let mut v = r.values(1);
    if v.first().is_some_and(|w| w == "dynamic-bootp") {
        v.remove(0);
    }
    let parsed: Result<Vec<Ipv4Addr>, _> = v.iter().map(|a| a.parse()).collect();
    match parsed.ok()?.as_slice() {
        [a] => Some((*a, *a)),
        [a, b] => Some((*a, *b)),
        _ => None,
    }
}

fn declare_subnet(
    st: &Stmt,
    block: &[Stmt],
    scope: &Scope,
    imp: &mut Import,
) -> Result<(), String> {
    let (Some(net), Some("netmask"), Some(mask)) = (st.word(1), st.word(2), st.word(3)) else {
        return Err(format!(
            "{}: expected subnet ADDRESS netmask MASK",
            st.text()
        ));
    };
    let net: Ipv4Addr = net
        .parse()
        .map_err(|_| format!("subnet {net:?} is not an IPv4 address"))?;
    let prefix = mask
        .parse()
        .ok()
        .and_then(super::prefix_of)
        .ok_or_else(|| format!("netmask {mask:?} is not a netmask"))?;
    let cidr = Ipv4Net::new(net, prefix).map_err(|e| e.to_string())?;
    let mut s = Subnet::new(st.line, cidr);
    let inner = scope_of(block, scope, &mut Import::default(), false);
    s.routers = inner.routers.unwrap_or_default();
    s.dns = inner.dns.unwrap_or_default();
    s.ntp = inner.ntp.unwrap_or_default();
    s.domain = inner.domain;
    s.lease_time = inner.lease_time;
    for (line, code, value) in &inner.options {
        if let Err(why) = super::subnet_option(&mut s, *code, value) {
            imp.skip(*line, format!("subnet {cidr}: {why}"));
        }
    }
    let ranges = block
        .iter()
        .filter(|b| b.block.is_none())
        .chain(
            block
                .iter()
                .filter(|b| b.word(0) == Some("pool"))
                .flat_map(|b| b.block.iter().flatten()),
        )
        .filter(|b| b.word(0) == Some("range"));
    for r in ranges {
        match range_of(r) {
            Some(p) => s.pools.push(p),
            None => imp.skip(
                r.line,
                format!("{}: not a range of IPv4 addresses", r.text()),
            ),
        }
    }
    imp.subnets.push(s);
    Ok(())
}

fn host(st: &Stmt, block: &[Stmt], scope: &Scope, imp: &mut Import) {
    let name = st.word(1).unwrap_or_default().to_string();
    let mut mac = None;
    let mut ips: Vec<String> = Vec::new();
    let mut hostname = None;
    let mut use_decl = scope.use_host_decl_names;
    let mut notes: Vec<(usize, String)> = Vec::new();
    let mut host_options: Vec<(usize, u8, String)> = Vec::new();
    for b in block {
        if b.block.is_some() {
            notes.push((
                b.line,
                format!(
                    "host {name}: {} {{ ... }}: no stormboot counterpart",
                    b.text()
                ),
            ));
            continue;
        }
        match (b.word(0).unwrap_or_default(), b.word(1).unwrap_or_default()) {
            ("hardware", "ethernet") => mac = b.word(2).map(str::to_string),
            ("hardware", kind) => notes.push((
                b.line,
                format!("host {name}: hardware {kind}: stormboot reserves by Ethernet MAC"),
            )),
            ("fixed-address", _) => ips = b.values(1),
            ("option", "host-name") => hostname = b.word(2).map(str::to_string),
            ("option", o) if super::option_code(o).is_some() => {
                host_options.push((b.line, super::option_code(o).expect("checked"), b.values(2).join(",")))
            }
            ("use-host-decl-names", v) => use_decl = v == "on" || v == "true",
            ("filename", _) | ("next-server", _) | ("server-name", _) => notes.push((
                b.line,
                format!(
                    "host {name}: {}: stormboot boots a machine by its profile; set the reservation's profile (--profile) instead",
                    b.text()
                ),
            )),
            _ => notes.push((b.line, format!("host {name}: {}: no stormboot counterpart", b.text()))),
        }
    }
    let Some(mac_text) = mac else {
        imp.skip(
            st.line,
            format!("host {name}: no hardware ethernet address (stormboot reserves by MAC)"),
        );
        imp.skipped.extend(
            notes
                .into_iter()
                .map(|(line, reason)| super::Skipped { line, reason }),
        );
        return;
    };
    let Some(m) = super::mac(&mac_text) else {
        imp.skip(
            st.line,
            format!("host {name}: {mac_text:?} is not a MAC address"),
        );
        return;
    };
    let mac_text = crate::frame::format_mac(&m);
    let Some(first) = ips.first() else {
        imp.skip(
            st.line,
            format!(
                "host {name} ({mac_text}): no fixed-address; dhcpd gives it a pool address, which a stormboot pool does too"
            ),
        );
        return;
    };
    let Ok(ip) = first.parse::<Ipv4Addr>() else {
        imp.skip(
            st.line,
            format!(
                "host {name} ({mac_text}): fixed-address {first:?} is a DNS name; stormboot needs the IPv4 address"
            ),
        );
        return;
    };
    for other in &ips[1..] {
        notes.push((
            st.line,
            format!("host {name}: fixed-address {other}: stormboot reserves one address per MAC ({ip} is kept)"),
        ));
    }
    let mut r = Reservation::new(st.line, m, ip);
    r.hostname = hostname.or_else(|| use_decl.then_some(name.clone()));
    for (line, code, value) in host_options {
        if let Err(why) = super::reservation_option(&mut r, code, &value) {
            notes.push((line, format!("host {name}: {why}")));
        }
    }
    imp.reservations.push(r);
    imp.skipped.extend(
        notes
            .into_iter()
            .map(|(line, reason)| super::Skipped { line, reason }),
    );
}
