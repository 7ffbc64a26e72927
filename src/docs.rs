//! `hydrant completions` and `hydrant man`: shell completions and man pages generated from the
//! clap definitions, so that they never disagree with `--help`.

use std::path::PathBuf;

use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::cli::Cli;

/// `hydrant completions`' arguments.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

/// `hydrant man`'s flags.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write hydrant.1 and a hydrant-<subcommand>.1 page for each subcommand into this directory
    /// instead of printing hydrant.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "hydrant", &mut out);
    out
}

/// hydrant(1), in roff.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    Ok(out)
}

/// Runs `hydrant completions`.
pub fn completions_command(args: &CompletionsArgs) -> anyhow::Result<()> {
    std::io::Write::write_all(&mut std::io::stdout(), &completions(args.shell))?;
    Ok(())
}

/// Runs `hydrant man`.
pub fn man_command(args: &ManArgs) -> anyhow::Result<()> {
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            clap_mangen::generate_to(Cli::command(), dir)?;
        }
        None => std::io::Write::write_all(&mut std::io::stdout(), &man_page()?)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_a_script_naming_every_subcommand() {
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::Elvish,
            Shell::PowerShell,
        ] {
            let script = String::from_utf8(completions(shell)).expect("utf-8");
            for subcommand in [
                "agent",
                "inject",
                "webhook",
                "policy",
                "check-webhook",
                "man",
            ] {
                assert!(script.contains(subcommand), "{shell}: {subcommand}");
            }
        }
    }

    #[test]
    fn the_man_page_lists_the_subcommands() {
        let page = String::from_utf8(man_page().expect("renders")).expect("utf-8");
        assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{page}");
        assert!(page.contains(".TH hydrant 1"), "{page}");
        for subcommand in [
            "agent",
            "render",
            "inject",
            "webhook",
            "controller",
            "policy",
        ] {
            assert!(page.contains(subcommand), "{subcommand}");
        }
    }
}
