//! stormboot's own reservations file (`mac,ip[,hostname]`, see
//! `config::csv`), read leniently: a bad record is skipped with its reason
//! rather than failing the file, so a whole sheet can be moved inline.

use super::{Import, ParseError, Reservation};

pub fn parse(text: &str) -> Result<Import, ParseError> {
    let mut imp = Import::default();
    let mut seen_record = false;
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let record = raw.trim();
        if record.is_empty() || record.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = record.split(',').map(str::trim).collect();
        if !seen_record && is_header(&fields) {
            seen_record = true;
            continue;
        }
        seen_record = true;
        if !(2..=3).contains(&fields.len()) {
            imp.skip(
                line,
                format!(
                    "expected mac,ip[,hostname], found {} field(s)",
                    fields.len()
                ),
            );
            continue;
        }
        let Some(mac) = super::mac(fields[0]) else {
            imp.skip(line, format!("{:?} is not a MAC address", fields[0]));
            continue;
        };
        let Ok(ip) = fields[1].parse() else {
            imp.skip(line, format!("{:?} is not an IPv4 address", fields[1]));
            continue;
        };
        let mut r = Reservation::new(line, mac, ip);
        r.hostname = fields
            .get(2)
            .filter(|h| !h.is_empty())
            .map(|h| h.to_string());
        imp.reservations.push(r);
    }
    Ok(imp)
}

fn is_header(f: &[&str]) -> bool {
    (2..=3).contains(&f.len())
        && f[0].eq_ignore_ascii_case("mac")
        && f[1].eq_ignore_ascii_case("ip")
        && f.get(2).is_none_or(|h| h.eq_ignore_ascii_case("hostname"))
}
