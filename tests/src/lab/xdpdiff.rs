//! Mutated frames through the XDP program (BPF_PROG_TEST_RUN), each
//! checked against the userspace dataplane: whatever the program answers
//! must be a frame dhcproto decodes and byte for byte what the userspace
//! server sends for the same input; whatever it passes up must be
//! unchanged; it drops only a REQUEST that selected another server (the one
//! drop `bpf/xdp/src/reply.rs` documents), which userspace leaves
//! unanswered too ("other-server"); no other action.
//!
//! The frames are `mutate::mutate` of `mutate::seeds` (the fixtures'
//! requests) from a fixed seed, so a finding is reproduced by its index.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dhcproto::v4::{Message, Opcode};
use dhcproto::{Decodable, Decoder};
use stormboot::frame;
use stormboot_common::bucket::Limit;
use stormboot_common::counters::Counter;

use super::fixtures::{action_name, Loaded, Setup, XDP_DROP, XDP_PASS, XDP_TX};
use super::mutate::{self, Kind, Rng};

/// One frame on which the program and userspace disagree.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The frame's index in the run (with the run's seed, reproduces it).
    pub index: u64,
    pub kind: Kind,
    pub seed: &'static str,
    pub action: u32,
    pub problem: String,
    pub frame: Vec<u8>,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "frame #{} ({:?} of {}), action {}: {}\n  {}",
            self.index,
            self.kind,
            self.seed,
            self.action,
            self.problem,
            self.frame
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    pub frames: u64,
    /// Frames by the action the program returned.
    pub by_action: BTreeMap<&'static str, u64>,
    /// Replies (XDP_TX) by the mutation that made the frame.
    pub replies_by_kind: BTreeMap<String, u64>,
    /// The program's own counters after the run, by metric name.
    pub counters: BTreeMap<&'static str, u64>,
    pub findings: Vec<Finding>,
    /// Findings past the ones kept.
    pub more_findings: u64,
    /// Every finding, by its problem.
    pub problems: BTreeMap<String, u64>,
    pub elapsed: Duration,
}

impl Report {
    pub fn frames_per_second(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} mutated frames through the XDP program in {:.1} s ({:.0} frames/s)",
            self.frames,
            self.elapsed.as_secs_f64(),
            self.frames_per_second()
        )?;
        for (a, n) in &self.by_action {
            writeln!(f, "  {a:<12} {n:>10}")?;
        }
        writeln!(f, "  replies by first mutation:")?;
        for (k, n) in &self.replies_by_kind {
            writeln!(f, "    {k:<14} {n:>10}")?;
        }
        writeln!(f, "  program counters:")?;
        for (c, n) in &self.counters {
            if *n != 0 {
                writeln!(f, "    {c:<24} {n:>10}")?;
            }
        }
        write!(
            f,
            "  disagreements: {}",
            self.findings.len() as u64 + self.more_findings
        )?;
        for (p, n) in &self.problems {
            write!(f, "\n    {n:>8}  {p}")?;
        }
        Ok(())
    }
}

/// The program loaded with the fixtures' configuration, and the userspace
/// server for the same configuration.
pub struct Bench {
    loaded: Loaded,
}

impl Bench {
    pub fn load() -> anyhow::Result<Bench> {
        let loaded = Loaded::fixtures(Setup {
            log_level: 0,
            // Millions of requests from a few MACs in seconds: the slow-path
            // bucket would drop most of what is passed up. What is compared
            // here is the answer, so the limit is off (its own fixtures test it).
            slowpath_limit: Some(Limit::new(0, 0)),
            ..Default::default()
        })?;
        Ok(Bench { loaded })
    }

    /// What the userspace dataplane sends for `input`, and why, from a
    /// server with no leases (the program keeps no state either).
    pub fn userspace(&self, input: &[u8]) -> (Option<Vec<u8>>, String) {
        // The kernel flags a frame with an offload's partial checksum to
        // the slow path's socket, which then reads it as sent without one.
        let cleared;
        let input = if mutate::has_partial_checksum(input) {
            cleared = mutate::without_udp_checksum(input);
            &cleared[..]
        } else {
            input
        };
        self.loaded.userspace(input)
    }

    /// Runs one frame and says what is wrong with the result, if anything.
    pub fn check(&self, input: &[u8]) -> anyhow::Result<(u32, Option<String>)> {
        let (action, out) = self.loaded.dp.test_run(input)?;
        let problem = match action {
            XDP_TX => {
                let (expected, note) = self.userspace(input);
                if expected.as_deref() != Some(&out[..]) {
                    Some(match expected {
                        None => format!("the program answered; userspace did not ({note})"),
                        Some(e) => {
                            let at = e.iter().zip(&out).position(|(a, b)| a != b);
                            format!(
                                "the program's reply differs from userspace's \
                                 (lengths {} and {}, first difference at {at:?})",
                                out.len(),
                                e.len()
                            )
                        }
                    })
                } else {
                    decodes(&out).err()
                }
            }
            XDP_PASS => (out != input).then(|| "passed up a changed frame".into()),
            XDP_DROP => {
                let (expected, note) = self.userspace(input);
                (expected.is_some() || note != "other-server")
                    .then(|| format!("dropped a frame userspace answers as {note:?}"))
            }
            other => Some(format!("returned {}", action_name(other))),
        };
        Ok((action, problem))
    }

    /// Runs `frames` mutants from `seed` and checks each.
    pub fn run(&self, frames: u64, seed: u64) -> anyhow::Result<Report> {
        let seeds = mutate::seeds();
        let mut rng = Rng::new(seed);
        let mut report = Report::default();
        let start = Instant::now();
        for index in 0..frames {
            let s = &seeds[index as usize % seeds.len()];
            let (f, kind) = mutate::mutate(&mut rng, &s.frame);
            let (action, problem) = self.check(&f)?;
            *report.by_action.entry(action_name(action)).or_default() += 1;
            if action == XDP_TX {
                *report
                    .replies_by_kind
                    .entry(format!("{kind:?}"))
                    .or_default() += 1;
            }
            if let Some(problem) = problem {
                let seen = report.problems.entry(problem.clone()).or_default();
                *seen += 1;
                // A few examples of each kind of problem.
                if *seen <= 2 && report.findings.len() < 40 {
                    report.findings.push(Finding {
                        index,
                        kind,
                        seed: s.name,
                        action,
                        problem,
                        frame: f,
                    });
                } else {
                    report.more_findings += 1;
                }
            }
        }
        report.frames = frames;
        report.elapsed = start.elapsed();
        let counters = self.loaded.dp.counters()?;
        for c in Counter::ALL {
            report.counters.insert(c.name(), counters[c as usize]);
        }
        Ok(report)
    }
}

/// A reply frame: valid headers and checksums, a BOOTREPLY dhcproto
/// decodes.
fn decodes(out: &[u8]) -> Result<(), String> {
    let p = frame::parse(out).map_err(|e| format!("reply frame: {e}"))?;
    let m = Message::decode(&mut Decoder::new(p.payload)).map_err(|e| format!("reply: {e}"))?;
    if m.opcode() != Opcode::BootReply {
        return Err("reply is not a BOOTREPLY".into());
    }
    Ok(())
}
