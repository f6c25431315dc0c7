//! The `stormboot` a host installs is the operator's tool: its help lists
//! the daemon and the commands that manage it, and no load generator or
//! benchmark (those are `stormboot-lab`'s, in the tests crate).

use std::process::Command;

/// The subcommands `stormboot --help` lists, in its order.
fn listed_commands() -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_stormboot"))
        .arg("--help")
        .env_remove("STORMBOOT_LOG")
        .output()
        .expect("running stormboot --help");
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8(out.stdout).unwrap();
    let commands = help
        .split("Commands:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no Commands section in:\n{help}"));
    commands
        .lines()
        .take_while(|l| !l.trim().is_empty())
        // Entries are indented by two; wrapped descriptions by more.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn help_lists_the_operators_commands_and_no_load_generator() {
    let listed = listed_commands();
    for lab in ["storm", "bench-xdp", "bench-api", "bench-omapi", "xdp-pass"] {
        assert!(
            !listed.iter().any(|c| c == lab),
            "`stormboot --help` lists the lab's `{lab}`: {listed:?}"
        );
    }
    assert!(
        !listed
            .iter()
            .any(|c| c.starts_with("bench") || c.contains("storm")),
        "`stormboot --help` lists a benchmark or load generator: {listed:?}"
    );
    // The parse above found the real list: the daemon and its managers.
    for operator in [
        "serve",
        "check-config",
        "stats",
        "reservation",
        "import",
        "man",
    ] {
        assert!(
            listed.iter().any(|c| c == operator),
            "`stormboot --help` does not list `{operator}`: {listed:?}"
        );
    }
}
