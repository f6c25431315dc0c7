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

/// The man page (roff): the top command, then a section per subcommand.
pub fn man() -> std::io::Result<Vec<u8>> {
    let cmd = Cli::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = sub.get_name();
        out.extend_from_slice(format!(".SH \"STORMBOOT {}\"\n", name.to_uppercase()).as_bytes());
        let sub = sub.clone().name(format!("stormboot {name}"));
        let man = clap_mangen::Man::new(sub);
        man.render_name_section(&mut out)?;
        man.render_synopsis_section(&mut out)?;
        man.render_description_section(&mut out)?;
        man.render_options_section(&mut out)?;
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

    /// Every flag can come from the environment (containers and unit files
    /// configure through it); a flag without `env` fails here by name.
    #[test]
    fn every_flag_has_an_environment_variable() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
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
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "stormboot", &mut missing);
        assert!(missing.is_empty(), "flags without env: {missing:#?}");
    }
}
