//! The reservations file: one `mac,ip[,hostname[,label]]` per line, for
//! sites with more machines than are pleasant to list in TOML.

use super::validate::{accept, Alone, Place, ReservationSet, Written};
use super::{ConfigError, Location, OriginName, Reservation};

/// Files smaller than this are checked on one thread: starting threads
/// would cost more than it saves.
const PARALLEL_FROM: usize = 1 << 20;

/// About how much of the file one thread checks at a time. Small enough
/// that the records checked but not yet in the set (all of them, until
/// the threads are done) are held twice only a chunk at a time.
const CHUNK_BYTES: usize = 1 << 21;

/// Adds every record of `text` to `set`. Blank lines and `#` comments are
/// skipped, and a `mac,ip[,hostname[,label]]` header is allowed before the first
/// record because spreadsheets export one.
///
/// A large file is checked in two passes. Threads check each line on its
/// own (its fields, and the reservation rule against nothing else),
/// chunk by chunk; then the records are added in file order, each looked
/// up by MAC and by address among those before it. A line either pass
/// refuses is checked again as the one-thread parse checks it, with the
/// set as it is at that line, so the error, and the line it names, is
/// the one a parse from the top would stop at.
pub fn parse(text: &str, file: &str, set: &mut ReservationSet) -> Result<(), ConfigError> {
    parse_split(
        text,
        file,
        set,
        crate::parallel::threads(),
        PARALLEL_FROM,
        CHUNK_BYTES,
    )
}

/// How many lines `text` has: at least as many as its records.
pub fn lines(text: &str) -> usize {
    text.bytes().filter(|&b| b == b'\n').count() + 1
}

/// `parse` on `threads` threads for files of `from` bytes and more, in
/// chunks of about `chunk` bytes.
fn parse_split(
    text: &str,
    file: &str,
    set: &mut ReservationSet,
    threads: usize,
    from: usize,
    chunk: usize,
) -> Result<(), ConfigError> {
    // Spreadsheet exports often start with a byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    set.reserve(lines(text));
    if text.len() < from || threads == 1 {
        return parse_lines(text, 1, file, set, true);
    }
    let (body, first_line) = after_header(text);
    let chunks = split(body, first_line, chunk);
    let name = set.file_name(file);
    let checked = crate::parallel::map(&chunks, threads, |c| check_alone(c, set, name, file));
    for (chunk, checked) in chunks.iter().zip(checked) {
        let mut from = checked.failed;
        for r in checked.accepted {
            if let Err(line) = set.push_new(r) {
                // The rule refuses it for a MAC or address taken above.
                from = Some(line);
                break;
            }
        }
        if let Some(line) = from {
            // The rest of the chunk is the one-thread parse's: it stops
            // at the same line with the same message.
            parse_lines(rest_from(chunk, line), line, file, set, false)?;
        }
    }
    Ok(())
}

/// A run of whole lines of the file, and the number of its first line.
struct Chunk<'t> {
    text: &'t str,
    first_line: usize,
}

/// What a thread made of one chunk: the records it accepted, in order, up
/// to the first line it refused (if any).
struct Checked {
    accepted: Vec<Reservation>,
    failed: Option<usize>,
}

/// The file after its header (if its first record is one), and the
/// number of the line that starts there.
fn after_header(text: &str) -> (&str, usize) {
    let mut at = 0;
    for (i, raw) in text.split('\n').enumerate() {
        let record = raw.trim();
        if record.is_empty() || record.starts_with('#') {
            at += raw.len() + 1;
            continue;
        }
        if is_header(record) {
            let next = (at + raw.len() + 1).min(text.len());
            return (&text[next..], i + 2);
        }
        return (&text[at..], i + 1);
    }
    ("", 1)
}

/// `text` cut at line ends into chunks of about `size` bytes.
fn split(text: &str, first_line: usize, size: usize) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::with_capacity(text.len() / size + 1);
    let (mut rest, mut line) = (text, first_line);
    while !rest.is_empty() {
        let cut = match rest.get(size..).and_then(|t| t.find('\n')) {
            Some(nl) => size + nl + 1,
            None => rest.len(),
        };
        let (head, tail) = rest.split_at(cut);
        chunks.push(Chunk {
            text: head,
            first_line: line,
        });
        line += head.bytes().filter(|&b| b == b'\n').count();
        rest = tail;
    }
    chunks
}

/// The text of `chunk` from line `line` on.
fn rest_from<'t>(chunk: &Chunk<'t>, line: usize) -> &'t str {
    let skip = line - chunk.first_line;
    let start = match skip {
        0 => 0,
        n => chunk
            .text
            .match_indices('\n')
            .nth(n - 1)
            .map_or(chunk.text.len(), |(i, _)| i + 1),
    };
    &chunk.text[start..]
}

/// The records of `chunk`, each checked by the rule against nothing, up
/// to the first line refused.
fn check_alone(chunk: &Chunk, set: &ReservationSet, name: OriginName, file: &str) -> Checked {
    let mut out = Checked {
        accepted: Vec::with_capacity(chunk.text.len() / 32),
        failed: None,
    };
    for (i, raw) in chunk.text.split('\n').enumerate() {
        let record = raw.trim();
        if record.is_empty() || record.starts_with('#') {
            continue;
        }
        let line = chunk.first_line + i;
        match parse_record(record, line, file, |w, p| {
            accept(set.network(), &Alone, w, p, name)
        }) {
            Ok(r) => out.accepted.push(r),
            Err(_) => {
                out.failed = Some(line);
                break;
            }
        }
    }
    out.accepted.shrink_to_fit();
    out
}

/// Adds the records of `text`, whose first line is `first_line`, one by
/// one; `header`: the first record may be the header.
fn parse_lines(
    text: &str,
    first_line: usize,
    file: &str,
    set: &mut ReservationSet,
    header: bool,
) -> Result<(), ConfigError> {
    let name = set.file_name(file);
    let mut seen_record = !header;
    for (i, raw) in text.split('\n').enumerate() {
        let line = first_line + i;
        let record = raw.trim();
        if record.is_empty() || record.starts_with('#') {
            continue;
        }
        if !seen_record && is_header(record) {
            seen_record = true;
            continue;
        }
        seen_record = true;
        let r = parse_record(record, line, file, |w, p| {
            accept(set.network(), &*set, w, p, name)
        })?;
        set.push(r);
    }
    Ok(())
}

/// One record, `mac,ip[,hostname[,label]]`, as a reservation `check`
/// accepts.
fn parse_record(
    record: &str,
    line: usize,
    file: &str,
    check: impl FnOnce(&Written, &Place) -> Result<Reservation, ConfigError>,
) -> Result<Reservation, ConfigError> {
    let mut fields = record.split(',').map(str::trim);
    let (Some(mac), Some(ip)) = (fields.next(), fields.next()) else {
        return Err(count_error(file, line, 1));
    };
    let hostname = fields.next().filter(|h| !h.is_empty());
    let label = fields.next().filter(|l| !l.is_empty());
    if fields.next().is_some() {
        return Err(count_error(file, line, record.split(',').count()));
    }
    let place = Place {
        file,
        key_prefix: "",
        mac_line: line,
        ip_line: line,
        hostname_line: line,
        profile_line: line,
        option_lines: Vec::new(),
    };
    let written = Written {
        mac,
        ip,
        hostname,
        profile: None,
        options: &[],
    };
    let mut r = check(&written, &place)?;
    if let Some(l) = label {
        r.label = Some(
            super::validate::reservation_label(l)
                .map(Into::into)
                .map_err(|message| ConfigError::Invalid {
                    at: Location {
                        file: file.to_owned(),
                        line: Some(line),
                    },
                    key: "label".into(),
                    message,
                })?,
        );
    }
    Ok(r)
}

fn is_header(record: &str) -> bool {
    let mut f = record.split(',').map(str::trim);
    f.next().is_some_and(|s| s.eq_ignore_ascii_case("mac"))
        && f.next().is_some_and(|s| s.eq_ignore_ascii_case("ip"))
        && f.next().is_none_or(|s| s.eq_ignore_ascii_case("hostname"))
        && f.next().is_none_or(|s| s.eq_ignore_ascii_case("label"))
        && f.next().is_none()
}

fn count_error(file: &str, line: usize, found: usize) -> ConfigError {
    ConfigError::Invalid {
        at: Location {
            file: file.to_owned(),
            line: Some(line),
        },
        key: "record".into(),
        message: format!("expected mac,ip[,hostname[,label]], found {found} field(s)"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::config::Subnet;

    fn subnets(cidr: &str) -> Vec<Subnet> {
        vec![Subnet {
            profile: None,
            net: cidr.parse().unwrap(),
            routers: vec![],
            dns: vec![],
            domain: None,
            lease_time: Duration::from_secs(3600),
            renew_time: Duration::from_secs(1800),
            rebind_time: Duration::from_secs(3150),
            boot_lease_time: None,
            renewal_cache: Duration::ZERO,
            pools: vec![],
            exclude: vec![],
            authoritative: true,
            interface: None,
            ntp: vec![],
            mtu: None,
            domain_search: vec![],
            routes: vec![],
            options: vec![],
        }]
    }

    fn run(text: &str) -> Result<usize, String> {
        let subnets = subnets("10.50.0.0/24");
        let mut set = ReservationSet::new(&subnets, Ipv4Addr::new(10, 50, 0, 1), &[]);
        parse(text, "hosts.csv", &mut set).map_err(|e| e.to_string())?;
        Ok(set.list.len())
    }

    #[test]
    fn header_comments_blank_lines_and_crlf() {
        let text = "\u{feff}mac,ip,hostname\r\n\
                    # rack 1\r\n\
                    \r\n\
                    52:54:00:00:00:01, 10.50.0.11 ,node1\r\n\
                    52-54-00-00-00-02,10.50.0.12\r\n\
                    52:54:00:00:00:03,10.50.0.13,\n\
                    \n";
        let subnets = subnets("10.50.0.0/24");
        let mut set = ReservationSet::new(&subnets, Ipv4Addr::new(10, 50, 0, 1), &[]);
        parse(text, "hosts.csv", &mut set).unwrap();
        let r = &set.list;
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].mac, [0x52, 0x54, 0, 0, 0, 1]);
        assert_eq!(r[0].ip, Ipv4Addr::new(10, 50, 0, 11));
        assert_eq!(r[0].hostname.as_deref(), Some("node1"));
        assert_eq!(r[0].origin, "hosts.csv:4");
        assert_eq!(r[1].hostname, None);
        assert_eq!(r[1].origin, "hosts.csv:5");
        assert_eq!(r[2].hostname, None);
    }

    #[test]
    fn a_fourth_column_is_the_label() {
        let text = "mac,ip,hostname,label\n\
                    52:54:00:00:00:01,10.50.0.11,node1, rack 1 \n\
                    52:54:00:00:00:02,10.50.0.12,,rack 2\n\
                    52:54:00:00:00:03,10.50.0.13,node3,\n";
        let subnets = subnets("10.50.0.0/24");
        let mut set = ReservationSet::new(&subnets, Ipv4Addr::new(10, 50, 0, 1), &[]);
        parse(text, "hosts.csv", &mut set).unwrap();
        let labels: Vec<_> = set.list.iter().map(|r| r.label.as_deref()).collect();
        assert_eq!(labels, [Some("rack 1"), Some("rack 2"), None]);
        assert_eq!(set.list[1].hostname, None);
        let long = "x".repeat(65);
        let e = run(&format!("52:54:00:00:00:01,10.50.0.11,n1,{long}\n")).unwrap_err();
        assert!(e.starts_with("hosts.csv:1: label:"), "{e}");
    }

    #[test]
    fn header_without_hostname_column() {
        assert_eq!(run("mac,ip\n52:54:00:00:00:01,10.50.0.11\n"), Ok(1));
    }

    #[test]
    fn header_only_allowed_first() {
        let e = run("52:54:00:00:00:01,10.50.0.11\nmac,ip,hostname\n").unwrap_err();
        assert!(
            e.starts_with("hosts.csv:2: mac: \"mac\" is not a MAC"),
            "{e}"
        );
    }

    #[test]
    fn wrong_field_count() {
        let e = run("# c\n52:54:00:00:00:01\n").unwrap_err();
        assert_eq!(
            e,
            "hosts.csv:2: record: expected mac,ip[,hostname[,label]], found 1 field(s)"
        );
        let e = run("52:54:00:00:00:01,10.50.0.11,a,b,c\n").unwrap_err();
        assert!(e.starts_with("hosts.csv:1: record:"), "{e}");
        assert!(e.contains("found 5"), "{e}");
    }

    #[test]
    fn bad_values_name_file_line_and_column() {
        let cases = [
            ("zz:54:00:00:00:01,10.50.0.11", "hosts.csv:3: mac:"),
            ("52:54:00:00:00:01,10.50.0.300", "hosts.csv:3: ip:"),
            (
                "52:54:00:00:00:01,10.60.0.5",
                "hosts.csv:3: ip: 10.60.0.5 is outside every subnet",
            ),
            (
                "52:54:00:00:00:01,10.50.0.11,bad_name",
                "hosts.csv:3: hostname:",
            ),
        ];
        for (record, want) in cases {
            let e = run(&format!("mac,ip,hostname\n\n{record}\n")).unwrap_err();
            assert!(e.starts_with(want), "{record}: {e}");
        }
    }

    #[test]
    fn duplicates_within_file() {
        let e = run("52:54:00:00:00:01,10.50.0.11\n52:54:00:00:00:01,10.50.0.12\n").unwrap_err();
        assert_eq!(
            e,
            "hosts.csv:2: mac: duplicate MAC 52:54:00:00:00:01 (also hosts.csv:1)"
        );
        let e = run("52:54:00:00:00:01,10.50.0.11\n52:54:00:00:00:02,10.50.0.11\n").unwrap_err();
        assert_eq!(
            e,
            "hosts.csv:2: ip: duplicate IP 10.50.0.11 (also hosts.csv:1)"
        );
    }

    /// A change to line `i` of `big`.
    type Edit = dyn Fn(u32, String) -> String;

    /// A file of `n` records numbered from 1 (a header, comments and blank
    /// lines among them), with `edit` applied to the lines.
    fn big(n: u32, edit: impl Fn(u32, String) -> String) -> String {
        let mut text = String::from("\u{feff}# machines\n\nmac,ip,hostname,label\n");
        for i in 1..=n {
            let [_, a, b, c] = i.to_be_bytes();
            let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 1)) + i);
            let line = format!("52:54:00:{a:02x}:{b:02x}:{c:02x},{ip},n{i},r{}", i % 7);
            text.push_str(&edit(i, line));
            text.push_str(if i % 100 == 0 { "\r\n# rack\n\n" } else { "\n" });
        }
        text
    }

    /// The line of record `i` of `big`.
    fn line_of(i: u32) -> usize {
        (3 + i + 2 * ((i - 1) / 100)) as usize
    }

    /// The records, or the error, of `text` parsed on one thread and in
    /// parallel in small chunks.
    fn both(text: &str) -> [Result<Vec<Reservation>, String>; 2] {
        let subnets = subnets("10.0.0.0/16");
        [(1, usize::MAX), (3, 0)].map(|(threads, from)| {
            let mut set = ReservationSet::new(&subnets, Ipv4Addr::new(10, 0, 255, 254), &[]);
            parse_split(text, "hosts.csv", &mut set, threads, from, 997)
                .map(|()| set.list)
                .map_err(|e| e.to_string())
        })
    }

    #[test]
    fn a_parallel_parse_reads_what_one_thread_reads() {
        let [one, many] = both(&big(3000, |_, l| l));
        let one = one.unwrap();
        assert_eq!(one.len(), 3000);
        assert_eq!(one[2999].origin.line(), line_of(3000));
        assert_eq!(one[2999].label.as_deref(), Some("r4"));
        assert_eq!(many.unwrap(), one);
    }

    #[test]
    fn a_parallel_parse_stops_where_one_thread_stops() {
        let dup_mac = |i: u32, l: String| match i {
            2500 => l.replacen("52:54:00:00:09:c4", "52:54:00:00:00:07", 1),
            _ => l,
        };
        // A later chunk's own error comes after an earlier line's clash
        // with a record in yet another chunk.
        let clash_first = |i: u32, l: String| match i {
            1200 => l.replacen(",n1200", ",n_bad", 1),
            1100 => l.replacen("10.0.4.77", "10.0.0.9", 1),
            _ => l,
        };
        // The same line's clash is named before its bad host name.
        let clash_and_bad = |i: u32, l: String| match i {
            2000 => l
                .replacen("10.0.7.209", "10.0.0.30", 1)
                .replacen(",n2000", ",-x", 1),
            _ => l,
        };
        let too_many = |i: u32, l: String| if i == 2999 { l + ",x" } else { l };
        let cases: [(&Edit, String); 4] = [
            (
                &dup_mac,
                format!(
                    "hosts.csv:{}: mac: duplicate MAC 52:54:00:00:00:07 (also hosts.csv:{})",
                    line_of(2500),
                    line_of(7)
                ),
            ),
            (
                &clash_first,
                format!(
                    "hosts.csv:{}: ip: duplicate IP 10.0.0.9 (also hosts.csv:{})",
                    line_of(1100),
                    line_of(8)
                ),
            ),
            (
                &clash_and_bad,
                format!(
                    "hosts.csv:{}: ip: duplicate IP 10.0.0.30 (also hosts.csv:{})",
                    line_of(2000),
                    line_of(29)
                ),
            ),
            (
                &too_many,
                format!(
                    "hosts.csv:{}: record: expected mac,ip[,hostname[,label]], found 5 field(s)",
                    line_of(2999)
                ),
            ),
        ];
        for (edit, want) in cases {
            let [one, many] = both(&big(3000, edit));
            assert_eq!(one.as_ref().unwrap_err(), &want);
            assert_eq!(many, one);
        }
    }

    /// A million records: run with `cargo test --release -- --ignored` to
    /// check the "a couple of seconds" budget.
    #[test]
    #[ignore = "slow in debug builds; a release-mode performance check"]
    fn million_lines() {
        let mut text = String::from("mac,ip,hostname\n");
        for i in 0u32..1_000_000 {
            let [_, a, b, c] = i.to_be_bytes();
            let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 1)) + i);
            text.push_str(&format!("52:54:00:{a:02x}:{b:02x}:{c:02x},{ip},n{i}\n"));
        }
        let subnets = subnets("10.0.0.0/12");
        let mut set = ReservationSet::new(&subnets, Ipv4Addr::new(10, 15, 255, 254), &[]);
        let start = Instant::now();
        parse(&text, "hosts.csv", &mut set).unwrap();
        let took = start.elapsed();
        assert_eq!(set.list.len(), 1_000_000);
        eprintln!("1,000,000 records in {took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
}
