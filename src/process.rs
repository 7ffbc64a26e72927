//! Process-wide protections set first thing at start, for every subcommand: no core dumps
//! (hardening issue, item 10: one held a KV password and the service-account JWT), and every
//! file descriptor the hard limit allows (item 4: a soft limit of 256 made every review time out).

use rustix::process::{DumpableBehavior, Resource, Rlimit};

/// The open files limit asked for when the hard limit is unlimited: the kernel refuses more
/// than `fs.nr_open`, whose default this is.
const NR_OPEN_DEFAULT: u64 = 1 << 20;

/// A protection that could not be set; the process runs on without it, and says so.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `prctl(PR_SET_DUMPABLE, 0)` failed.
    #[error("cannot make the process non-dumpable: {0}")]
    Dumpable(rustix::io::Errno),
    /// `setrlimit(RLIMIT_CORE, 0)` failed.
    #[error("cannot set the core file size limit to 0: {0}")]
    CoreLimit(rustix::io::Errno),
    /// `setrlimit(RLIMIT_NOFILE)` failed.
    #[error("cannot raise the open files limit to {wanted}: {error}")]
    OpenFiles {
        /// The soft limit asked for.
        wanted: u64,
        /// Why not.
        error: rustix::io::Errno,
    },
}

/// Makes the process non-dumpable (no core file; its `/proc/PID` files owned by root and
/// closed to ptrace by the same user), sets the core file size limit to 0 (also for children),
/// and raises the soft open files limit to the hard one. Call it before anything reads a
/// secret. Returns what failed, for the log.
pub fn harden() -> Vec<Error> {
    let mut failed = Vec::new();
    if let Err(e) = rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        failed.push(Error::Dumpable(e));
    }
    let no_core = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    if let Err(e) = rustix::process::setrlimit(Resource::Core, no_core) {
        failed.push(Error::CoreLimit(e));
    }
    if let Some(raised) = raised_open_files(rustix::process::getrlimit(Resource::Nofile))
        && let Err(error) = rustix::process::setrlimit(Resource::Nofile, raised)
    {
        failed.push(Error::OpenFiles {
            wanted: raised.current.unwrap_or(NR_OPEN_DEFAULT),
            error,
        });
    }
    failed
}

/// The soft open files limit now (`None`: unlimited).
pub fn open_files_limit() -> Option<u64> {
    rustix::process::getrlimit(Resource::Nofile).current
}

/// The open files limit to set: the soft limit raised to the hard one, `None` when it is there.
fn raised_open_files(limit: Rlimit) -> Option<Rlimit> {
    let wanted = limit.maximum.unwrap_or(NR_OPEN_DEFAULT);
    match limit.current {
        Some(current) if current < wanted => Some(Rlimit {
            current: Some(wanted),
            maximum: limit.maximum,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
        let limit = |current, maximum| Rlimit { current, maximum };
        let cases = [
            (
                limit(Some(256), Some(20_000)),
                Some(limit(Some(20_000), Some(20_000))),
            ),
            (limit(Some(1024), Some(1024)), None),
            // Unlimited hard limit: asking for infinity fails, nr_open's default does not.
            (
                limit(Some(1024), None),
                Some(limit(Some(NR_OPEN_DEFAULT), None)),
            ),
            (limit(None, None), None),
            (limit(Some(2 << 20), None), None),
        ];
        for (now, want) in cases {
            assert_eq!(raised_open_files(now), want, "{now:?}");
        }
    }
}
