//! Kea's perfdhcp's report read back, for the tests and the benchmarks: the
//! counts, drop ratio and delay of each DORA exchange and, with `-x l`, the
//! addresses it was given.

use std::net::Ipv4Addr;

/// perfdhcp's figures for one kind of exchange.
#[derive(Debug, Default, Clone, Copy)]
pub struct Exchanges {
    pub sent: u64,
    pub received: u64,
    pub drops: u64,
    pub non_unique: u64,
    /// "drops ratio"; 100 when perfdhcp prints "nan %" (nothing sent).
    pub drops_percent: f64,
    /// "avg delay", in milliseconds; 0 when perfdhcp prints none.
    pub avg_delay_ms: f64,
}

/// What perfdhcp reported: the two exchanges of DORA, the rate it
/// states, and (with `-x l`) the addresses it was acknowledged.
#[derive(Debug, Default)]
pub struct PerfReport {
    pub rate: String,
    pub discover_offer: Exchanges,
    pub request_ack: Exchanges,
    pub acked: Vec<Ipv4Addr>,
    /// Whether the report had REQUEST-ACK statistics at all: perfdhcp
    /// prints none when it failed before its run.
    pub has_request_ack: bool,
}

/// Reads perfdhcp's standard output.
pub fn parse(text: &str) -> PerfReport {
    #[derive(PartialEq)]
    enum In {
        Nothing,
        DiscoverOffer,
        RequestAck,
        AckLeases,
    }
    let mut report = PerfReport::default();
    let mut section = In::Nothing;
    for line in text.lines() {
        if line.starts_with("***") {
            section = match line {
                l if l.contains("Statistics for: DISCOVER-OFFER") => In::DiscoverOffer,
                l if l.contains("Statistics for: REQUEST-ACK") => {
                    report.has_request_ack = true;
                    In::RequestAck
                }
                l if l.contains("Leases for REQUEST-ACK") => In::AckLeases,
                _ => In::Nothing,
            };
            continue;
        }
        if let Some(rate) = line.strip_prefix("Rate: ") {
            report.rate = rate.to_owned();
        }
        if section == In::AckLeases {
            // "client_id,address,prefix", client_id and prefix empty in v4.
            if let Some(ip) = line.split(',').nth(1).and_then(|a| a.parse().ok()) {
                report.acked.push(ip);
            }
            continue;
        }
        let counts = match section {
            In::DiscoverOffer => &mut report.discover_offer,
            In::RequestAck => &mut report.request_ack,
            _ => continue,
        };
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        let value = value.trim();
        // "0.025 %", "1.155 ms"; perfdhcp prints "nan" for nothing.
        let measure = |unit: &str| value.trim_end_matches(unit).trim().parse::<f64>().ok();
        match key {
            "drops ratio" => {
                counts.drops_percent = measure("%").filter(|p| !p.is_nan()).unwrap_or(100.0)
            }
            "avg delay" => {
                counts.avg_delay_ms = measure("ms").filter(|d| !d.is_nan()).unwrap_or(0.0)
            }
            _ => {}
        }
        let Ok(n) = value.parse::<u64>() else {
            continue;
        };
        match key {
            "sent packets" => counts.sent = n,
            "received packets" => counts.received = n,
            "drops" => counts.drops = n,
            "non unique addresses" => counts.non_unique = n,
            _ => {}
        }
    }
    report
}

/// perfdhcp's report without the lease lists, for the test's output.
pub fn summary(text: &str) -> String {
    text.lines()
        .take_while(|l| !l.starts_with("***Leases"))
        .filter(|l| !l.trim().is_empty() && *l != "Interrupted")
        .collect::<Vec<_>>()
        .join("\n")
}
