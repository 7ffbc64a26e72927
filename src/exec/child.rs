//! The supervisor: runs the command with its environment, forwards signals to it, reaps it
//! (and, as PID 1 of a container, every orphan handed to it), restarts it when a value changed
//! (stop signal, grace, then SIGKILL), and ends with its exit status.

use std::ffi::OsString;
use std::process::Command;
use std::time::Duration;

use injector::agent_config::RestartOnSecretChanges;
use rustix::process::{Pid, Signal, WaitOptions, WaitStatus};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::Error;
use super::environment::{self, Values};

/// The signals passed on to the command: the ones a container runtime, a terminal or an operator
/// sends to ask something of a process.
const FORWARDED: [(&str, i32); 7] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("USR1", 10),
    ("USR2", 12),
    ("TERM", 15),
    ("WINCH", 28),
];

/// How long values must stay put before the command is restarted with them: several secrets
/// changing in one rotation restart it once (Vault Agent waits 2 s too).
pub(crate) const RESTART_SETTLE: Duration = Duration::from_secs(2);

/// How the command is run.
#[derive(Debug)]
pub(crate) struct Settings {
    /// The program and its arguments.
    pub(crate) argv: Vec<OsString>,
    /// The environment it inherits, before the values are set over it.
    pub(crate) inherited: Vec<(OsString, OsString)>,
    /// Whether a change restarts it.
    pub(crate) restart: RestartOnSecretChanges,
    /// The signal that stops it for a restart, and its name.
    pub(crate) stop_signal: (Signal, &'static str),
    /// How long it may take to stop.
    pub(crate) grace: Duration,
}

/// How the command ended, as a shell reports it: its exit code, or 128 + the signal that
/// killed it.
pub(crate) fn exit_code(status: WaitStatus) -> u8 {
    code_of(status.exit_status(), status.terminating_signal())
}

fn code_of(exit: Option<i32>, signal: Option<i32>) -> u8 {
    match (exit, signal) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + (signal & 0x7f)).unwrap_or(1),
        (None, None) => 1,
    }
}

/// The signal named `name` (`TERM`, as `injector::commands::signal_name` gives it).
pub(crate) fn signal_of(name: &'static str) -> Option<(Signal, &'static str)> {
    let number = injector::commands::SIGNALS
        .iter()
        .find(|(n, _)| *n == name)?
        .1;
    Some((Signal::from_named_raw(number)?, name))
}

/// A running command.
struct Running {
    pid: Pid,
    program: String,
}

/// Runs the command with `values` until it ends on its own (or after a forwarded signal), and
/// returns its exit code. A change of `values` restarts it unless restarts are off; `give_up`
/// stops it (the stop signal, the grace, then SIGKILL) and returns how it ended.
pub(crate) async fn supervise(
    settings: Settings,
    mut values: watch::Receiver<Values>,
    mut give_up: oneshot::Receiver<()>,
) -> Result<u8, Error> {
    // Installed before the first start: no exit and no signal can come unnoticed.
    let mut children = signal(SignalKind::child()).map_err(Error::Signals)?;
    let mut forwarded = Vec::new();
    for (name, number) in FORWARDED {
        let stream = signal(SignalKind::from_raw(number)).map_err(Error::Signals)?;
        let signal = Signal::from_named_raw(number)
            .ok_or_else(|| Error::Signals(std::io::Error::other(format!("no signal {name}"))))?;
        forwarded.push((name, signal, stream));
    }
    let current = values.borrow_and_update().clone();
    let mut child = start(&settings, &current)?;
    let mut restart_at: Option<Instant> = None;
    let mut stopping = false;
    let mut asked_to_stop = false;
    loop {
        let received = next_signal(&mut forwarded);
        tokio::select! {
            _ = children.recv() => {
                if let Some(status) = reap(child.pid) {
                    return Ok(ended(&child, status));
                }
            }
            (name, signal) = received => {
                debug!(signal = name, pid = child.pid.as_raw_nonzero().get(), "passing the signal on to the command");
                if let Err(error) = rustix::process::kill_process(child.pid, signal) {
                    warn!(signal = name, %error, "cannot pass the signal on to the command");
                }
                if matches!(name, "TERM" | "INT" | "QUIT") {
                    // The command decides when it is done; a restart would start it again.
                    stopping = true;
                    restart_at = None;
                }
            }
            changed = values.changed(), if !stopping => {
                if changed.is_err() {
                    // The sidecar is gone: nothing changes any more.
                    stopping = true;
                    continue;
                }
                match settings.restart {
                    RestartOnSecretChanges::Always => {
                        restart_at = Some(Instant::now() + RESTART_SETTLE);
                    }
                    RestartOnSecretChanges::Never => {
                        values.borrow_and_update();
                        info!("a value changed; the command keeps the values it started with (restart_on_secret_changes: never)");
                    }
                }
            }
            () = sleep_until(restart_at), if restart_at.is_some() && !stopping => {
                restart_at = None;
                let next = values.borrow_and_update().clone();
                info!(
                    signal = settings.stop_signal.1,
                    grace_s = crate::telemetry::seconds(settings.grace),
                    "a value changed; restarting the command"
                );
                if let Some(status) = stop(&settings, &child, &mut children).await {
                    debug!(code = exit_code(status), "the command stopped for the restart");
                }
                child = start(&settings, &next)?;
            }
            asked = &mut give_up, if !asked_to_stop => {
                asked_to_stop = true;
                if asked.is_err() {
                    continue;
                }
                info!(signal = settings.stop_signal.1, "stopping the command");
                return Ok(match stop(&settings, &child, &mut children).await {
                    Some(status) => ended(&child, status),
                    None => {
                        warn!(program = child.program, "the command does not end even killed");
                        crate::EXIT_FAILURE
                    }
                });
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The next forwarded signal to arrive.
async fn next_signal(
    streams: &mut [(&'static str, Signal, tokio::signal::unix::Signal)],
) -> (&'static str, Signal) {
    let waits = streams.iter_mut().map(|(name, signal, stream)| {
        let (name, signal) = (*name, *signal);
        Box::pin(async move {
            stream.recv().await;
            (name, signal)
        })
    });
    futures_util::future::select_all(waits).await.0
}

/// Starts the command with `values` over the inherited environment.
fn start(settings: &Settings, values: &Values) -> Result<Running, Error> {
    let program = settings.argv[0].to_string_lossy().into_owned();
    let child = Command::new(&settings.argv[0])
        .args(&settings.argv[1..])
        .env_clear()
        .envs(environment::compose(
            settings.inherited.iter().cloned(),
            values,
        ))
        .spawn()
        .map_err(|error| Error::Start {
            program: program.clone(),
            error,
        })?;
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| Error::Start {
            program: program.clone(),
            error: std::io::Error::other("the process has no ID"),
        })?;
    info!(program, pid = pid.as_raw_nonzero().get(), variables = ?values, "started the command");
    Ok(Running { pid, program })
}

/// Stops the command: the stop signal, the grace, then SIGKILL. How it ended, if it did.
async fn stop(
    settings: &Settings,
    child: &Running,
    children: &mut tokio::signal::unix::Signal,
) -> Option<WaitStatus> {
    if let Some(status) = reap(child.pid) {
        return Some(status);
    }
    let _ = rustix::process::kill_process(child.pid, settings.stop_signal.0);
    if let Some(status) = wait(child.pid, children, settings.grace).await {
        return Some(status);
    }
    warn!(
        grace_s = crate::telemetry::seconds(settings.grace),
        "the command did not stop within its grace; killing it"
    );
    let _ = rustix::process::kill_process(child.pid, Signal::KILL);
    wait(child.pid, children, Duration::from_secs(10)).await
}

/// Waits up to `limit` for `pid` to end.
async fn wait(
    pid: Pid,
    children: &mut tokio::signal::unix::Signal,
    limit: Duration,
) -> Option<WaitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = reap(pid) {
            return Some(status);
        }
        tokio::select! {
            _ = children.recv() => {}
            () = tokio::time::sleep_until(deadline) => return reap(pid),
        }
    }
}

/// Reaps every child that ended (orphans included, when hydrant is PID 1); how `pid` ended, if
/// it did.
fn reap(pid: Pid) -> Option<WaitStatus> {
    let mut ours = None;
    while let Ok(Some((reaped, status))) = rustix::process::waitpid(None, WaitOptions::NOHANG) {
        if reaped == pid {
            ours = Some(status);
        } else {
            debug!(pid = reaped.as_raw_nonzero().get(), "reaped an orphan");
        }
    }
    ours
}

fn ended(child: &Running, status: WaitStatus) -> u8 {
    let code = exit_code(status);
    info!(program = child.program, code, "the command ended");
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_is_the_commands_code_or_128_plus_its_signal() {
        assert_eq!(code_of(Some(0), None), 0);
        assert_eq!(code_of(Some(3), None), 3);
        assert_eq!(code_of(None, Some(15)), 143);
        assert_eq!(code_of(None, Some(9)), 137);
        assert_eq!(code_of(None, None), 1);
    }

    #[test]
    fn stop_signals_are_found_by_name() {
        assert_eq!(signal_of("TERM").map(|s| s.1), Some("TERM"));
        assert_eq!(signal_of("INT").map(|s| s.0), Some(Signal::INT));
        assert!(signal_of("NOPE").is_none());
    }
}
