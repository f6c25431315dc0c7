//! Shell completions and the man page, generated from the clap definitions
//! so they never drift from the parser.

use clap::CommandFactory;

use crate::cli::Cli;

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "stormboot", &mut out);
    out
}

/// The man page (roff): the top command, then a section per subcommand
/// with its synopsis, description and options as subsections.
pub fn man() -> std::io::Result<Vec<u8>> {
    let cmd = Cli::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = sub.get_name();
        let man = clap_mangen::Man::new(sub.clone().name(format!("stormboot {name}")));
        let mut section = Vec::new();
        man.render_synopsis_section(&mut section)?;
        man.render_description_section(&mut section)?;
        man.render_options_section(&mut section)?;
        out.extend_from_slice(format!(".SH \"STORMBOOT {}\"\n", name.to_uppercase()).as_bytes());
        // One level down: each subcommand's sections are subsections here.
        let section = String::from_utf8_lossy(&section).replace("\n.SH ", "\n.SS ");
        let section = section
            .strip_prefix(".SH ")
            .map_or(section.clone(), |s| format!(".SS {s}"));
        out.extend_from_slice(section.as_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subcommands() -> Vec<String> {
        Cli::command()
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect()
    }

    #[test]
    fn man_page_names_every_subcommand() {
        let man = String::from_utf8(man().unwrap()).unwrap();
        assert!(
            man.starts_with(".ie") || man.contains(".TH stormboot"),
            "{man:.200}"
        );
        let subs = subcommands();
        assert!(subs.iter().any(|s| s == "import"), "{subs:?}");
        for s in subs {
            // roff escapes '-' as '\-'.
            let roff = s.replace('-', "\\-");
            assert!(
                man.contains(&format!("stormboot {roff}"))
                    || man.contains(&format!("stormboot-{roff}")),
                "the man page does not mention `stormboot {s}`"
            );
        }
    }

    #[test]
    fn bash_completion_names_subcommands() {
        let bash = String::from_utf8(completions(clap_complete::Shell::Bash)).unwrap();
        assert!(bash.contains("complete -F"), "{bash:.300}");
        for s in subcommands() {
            assert!(bash.contains(&s), "bash completion lacks {s}");
        }
        assert!(
            bash.contains("--from"),
            "bash completion lacks import --from"
        );
        for shell in [clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
            let out = String::from_utf8(completions(shell)).unwrap();
            assert!(out.contains("check-config"), "{shell}: {out:.200}");
        }
    }

    /// Flags (not positionals, help or version) that have no `env`.
    fn flags_without_env(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_positional() || id == "help" || id == "version" {
                continue;
            }
            if arg.get_env().is_none() {
                missing.push(format!("{path} --{}", arg.get_long().unwrap_or(id)));
            }
        }
        for sub in cmd.get_subcommands() {
            flags_without_env(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }

    /// Every flag can come from the environment (containers and unit files
    /// configure through it); a flag without `env` fails here by name.
    #[test]
    fn every_flag_has_an_environment_variable() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        flags_without_env(&cmd, "stormboot", &mut missing);
        assert!(missing.is_empty(), "flags without env: {missing:#?}");
    }

    #[test]
    fn the_env_check_finds_a_flag_without_env() {
        let mut cmd = clap::Command::new("x")
            .arg(clap::Arg::new("file"))
            .subcommand(
                clap::Command::new("sub")
                    .arg(clap::Arg::new("with").long("with").env("X_WITH"))
                    .arg(clap::Arg::new("without").long("without")),
            );
        cmd.build();
        let mut missing = Vec::new();
        flags_without_env(&cmd, "x", &mut missing);
        assert_eq!(missing, ["x sub --without"]);
    }
}
