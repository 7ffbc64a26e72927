//! `hydrant signal`: sends a signal to a process of the pod by ID, by name (as `pidof` finds it)
//! or by pattern (as `pkill` does), reading `/proc`; what `agent-inject-command-*` signalling
//! commands become, since hydrant's image has no shell, `kill` or `pkill`.

use std::path::{Path, PathBuf};

use injector::commands::signal_name;

/// `hydrant signal`'s flags.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["pid", "name", "pattern"])))]
pub struct Args {
    /// The process ID to signal.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Signal every process with this name (its comm, or its program's file name), as pidof
    /// finds them.
    #[arg(long)]
    pub name: Option<String>,
    /// Signal every process whose name matches this regular expression, as pkill does.
    #[arg(long)]
    pub pattern: Option<String>,
    /// With --pattern: match the whole command line, as pkill -f does.
    #[arg(long, requires = "pattern")]
    pub full: bool,
    /// Where the processes are listed.
    #[arg(long, default_value = "/proc", hide = true)]
    pub proc: PathBuf,
    /// The signal: HUP, SIGHUP or 1; USR1, USR2, TERM, INT, QUIT, KILL, ...
    pub signal: String,
}

/// Why `hydrant signal` signalled nothing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The signal is not one hydrant sends.
    #[error("{0:?} is not a signal; use HUP, USR1, USR2, TERM, INT, QUIT or KILL")]
    Signal(String),
    /// The pattern is not a regular expression.
    #[error("--pattern {pattern:?}: {error}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// What the parser said.
        error: regex::Error,
    },
    /// No process matches.
    #[error(
        "no process {0}; the agent sees the app's processes only when the pod shares its process namespace (shareProcessNamespace: true)"
    )]
    NoProcess(String),
    /// A process could not be signalled.
    #[error("cannot send {signal} to process {pid}: {error}")]
    Kill {
        /// The signal.
        signal: &'static str,
        /// The process.
        pid: u32,
        /// What the kernel said.
        error: std::io::Error,
    },
}

/// `hydrant signal`: signals the matching processes; fails when there is none.
pub fn command(args: &Args) -> Result<(), Error> {
    let signal = signal_name(&args.signal).ok_or_else(|| Error::Signal(args.signal.clone()))?;
    let number = injector::commands::SIGNALS
        .iter()
        .find(|(name, _)| *name == signal)
        .map(|(_, number)| *number)
        .ok_or_else(|| Error::Signal(args.signal.clone()))?;
    let (pids, what) = if let Some(pid) = args.pid {
        (vec![pid], format!("with ID {pid}"))
    } else if let Some(name) = &args.name {
        let found = processes(&args.proc)
            .filter(|p| p.named(name))
            .map(|p| p.pid)
            .collect();
        (found, format!("named {name:?}"))
    } else {
        let pattern = args.pattern.clone().unwrap_or_default();
        let regex = regex::Regex::new(&pattern).map_err(|error| Error::Pattern {
            pattern: pattern.clone(),
            error,
        })?;
        let found = processes(&args.proc)
            .filter(|p| {
                if args.full {
                    regex.is_match(&p.cmdline.join(" "))
                } else {
                    regex.is_match(&p.comm)
                }
            })
            .map(|p| p.pid)
            .collect();
        (found, format!("matching {pattern:?}"))
    };
    if pids.is_empty() {
        return Err(Error::NoProcess(what));
    }
    let sig = rustix::process::Signal::from_named_raw(number)
        .ok_or_else(|| Error::Signal(args.signal.clone()))?;
    for pid in pids {
        let target = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .ok_or_else(|| Error::NoProcess(what.clone()))?;
        rustix::process::kill_process(target, sig).map_err(|e| Error::Kill {
            signal,
            pid,
            error: e.into(),
        })?;
        tracing::info!(pid, signal, "signalled");
    }
    Ok(())
}

/// A process as `/proc` shows it.
struct Process {
    pid: u32,
    comm: String,
    cmdline: Vec<String>,
}

impl Process {
    /// Whether `pidof name` finds it: its comm (which the kernel cuts to 15 bytes) or its
    /// program's file name is `name`.
    fn named(&self, name: &str) -> bool {
        let cut = name.get(..15).unwrap_or(name);
        self.comm == name
            || (name.len() > 15 && self.comm == cut)
            || self
                .cmdline
                .first()
                .is_some_and(|argv0| Path::new(argv0).file_name().is_some_and(|f| f == name))
    }
}

/// Every process but this one, skipping those that end while being read.
fn processes(proc: &Path) -> impl Iterator<Item = Process> {
    let me = std::process::id();
    std::fs::read_dir(proc)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(move |entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            if pid == me {
                return None;
            }
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            Some(Process {
                pid,
                comm: comm.trim_end_matches('\n').to_owned(),
                cmdline: cmdline
                    .split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect(),
            })
        })
}
