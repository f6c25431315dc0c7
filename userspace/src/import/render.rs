//! The import as TOML: a `[[subnet]]` / `[[reservation]]` fragment to merge
//! into a stormboot config, with what was not translated as comments.

use std::fmt::Write;

use super::{Import, OptionValue};

/// A TOML basic string: quotes, backslashes and control characters escaped.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| q(&i.to_string())).collect();
    format!("[{}]", quoted.join(", "))
}

/// `file:line: reason`, one per line, as printed on stderr.
pub fn skipped(imp: &Import, file: &str) -> String {
    let mut out = String::new();
    for s in &imp.skipped {
        let _ = writeln!(out, "{file}:{}: {}", s.line, s.reason);
    }
    out
}

fn options(out: &mut String, table: &str, opts: &[OptionValue]) {
    for o in opts {
        let _ = writeln!(
            out,
            "\n[[{table}.option]]\ncode = {}\ntype = {}\nvalue = {}",
            o.code,
            q(o.kind),
            q(&o.value)
        );
    }
}

pub fn toml(imp: &Import, file: &str, from: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# stormboot import --from {from} {file}: {} subnet(s), {} reservation(s), {} not translated",
        imp.subnets.len(),
        imp.reservations.len(),
        imp.skipped.len()
    );
    if !imp.skipped.is_empty() {
        out.push_str("#\n# Not translated:\n");
        for s in &imp.skipped {
            // A reason quotes input text, which may hold a newline.
            let reason = s.reason.replace(['\n', '\r'], " ");
            let _ = writeln!(out, "#   {file}:{}: {reason}", s.line);
        }
    }
    for s in &imp.subnets {
        let _ = writeln!(out, "\n[[subnet]]  # {file}:{}", s.line);
        let _ = writeln!(out, "cidr = {}", q(&s.cidr.to_string()));
        if !s.routers.is_empty() {
            let _ = writeln!(out, "routers = {}", list(&s.routers));
        }
        if !s.dns.is_empty() {
            let _ = writeln!(out, "dns = {}", list(&s.dns));
        }
        if let Some(d) = &s.domain {
            let _ = writeln!(out, "domain = {}", q(d));
        }
        if let Some(t) = s.lease_time {
            let _ = writeln!(out, "lease_time = {t}");
        }
        if !s.pools.is_empty() {
            let pools: Vec<String> = s
                .pools
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect();
            let _ = writeln!(out, "pool = {}", list(&pools));
        }
        if !s.ntp.is_empty() {
            let _ = writeln!(out, "ntp = {}", list(&s.ntp));
        }
        if let Some(m) = s.mtu {
            let _ = writeln!(out, "mtu = {m}");
        }
        options(&mut out, "subnet", &s.options);
    }
    for r in &imp.reservations {
        let _ = writeln!(out, "\n[[reservation]]  # {file}:{}", r.line);
        let _ = writeln!(out, "mac = {}", q(&crate::frame::format_mac(&r.mac)));
        let _ = writeln!(out, "ip = {}", q(&r.ip.to_string()));
        if let Some(h) = &r.hostname {
            let _ = writeln!(out, "hostname = {}", q(h));
        }
        if let Some(p) = &r.profile {
            let _ = writeln!(out, "profile = {}", q(p));
        }
        if !r.allow_pxe {
            let _ = writeln!(out, "allow_pxe = false");
        }
        options(&mut out, "reservation", &r.options);
    }
    out
}
