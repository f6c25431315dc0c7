//! The XDP program under BPF_PROG_TEST_RUN fed mutated requests (see
//! `stormboot_testbed::lab::xdpdiff`): every reply must equal the userspace
//! dataplane's byte for byte, every pass must leave the frame unchanged,
//! and the only drop is the documented one.
//!
//! STORMBOOT_XDP_MUTATIONS sets the number of frames: by default 500,000,
//! 30 to 45 s of an unoptimised build on two cores; `cargo xtask fuzz`
//! runs 20,000,000 optimised (about 200,000 frames a second).
//!
//! Privileged: loading BPF needs root (CI is root). Without it this fails.

use stormboot_testbed::lab::xdpdiff::Bench;

#[test]
fn mutated_frames_get_the_userspace_answer_or_pass_unchanged() {
    stormboot_testbed::require_root();
    let frames: u64 = std::env::var("STORMBOOT_XDP_MUTATIONS")
        .ok()
        .map(|v| v.parse().expect("STORMBOOT_XDP_MUTATIONS is a number"))
        .unwrap_or(500_000);
    let seed: u64 = std::env::var("STORMBOOT_XDP_MUTATION_SEED")
        .ok()
        .map(|v| v.parse().expect("STORMBOOT_XDP_MUTATION_SEED is a number"))
        .unwrap_or(0x00c0_ffee);
    let bench = Bench::load().expect("the XDP program loads with the fixtures' config");
    let report = bench.run(frames, seed).expect("BPF_PROG_TEST_RUN works");
    println!("seed {seed}: {report}");
    for f in &report.findings {
        println!("{f}");
    }
    assert!(
        report.findings.is_empty(),
        "the XDP program and userspace disagree on {} frames (listed above)",
        report.findings.len() as u64 + report.more_findings
    );
    assert_eq!(
        report.counters["tx_error"], 0,
        "the program failed mid-reply"
    );
    // The run must reach every reply the program makes, not only its
    // refusals: a mutator that broke every frame would test nothing.
    for c in ["offer", "ack", "nak", "drop_other_server"] {
        assert!(
            report.counters[c] * 100 >= frames,
            "only {} frames got {c} from the program",
            report.counters[c]
        );
    }
}
