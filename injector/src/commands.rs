//! The commands run after a file changes (`agent-inject-command-*`, `hydrant.dev/command-*`):
//! hydrant's image has no shell, no `kill` and no `pkill`, so the usual ways of signalling an
//! app's process are recognised here and turned into `hydrant signal`, which the agent runs.

use crate::AGENT_BINARY;

/// The signals `hydrant signal` sends, by name (without `SIG`) and Linux number.
pub const SIGNALS: [(&str, i32); 12] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("KILL", 9),
    ("USR1", 10),
    ("USR2", 12),
    ("ALRM", 14),
    ("TERM", 15),
    ("CONT", 18),
    ("STOP", 19),
    ("WINCH", 28),
    ("PWR", 30),
];

/// A signal's name (`HUP`), from `HUP`, `SIGHUP`, `hup` or `1`.
pub fn signal_name(spec: &str) -> Option<&'static str> {
    let upper = spec.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS
        .iter()
        .find(|(name, number)| *name == bare || bare.parse::<i32>() == Ok(*number))
        .map(|(name, _)| *name)
}

/// Which processes `hydrant signal` signals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// One process ID.
    Pid(u32),
    /// Every process whose name (`comm`, or `argv[0]`'s file name) is this, as `pidof` finds.
    Name(String),
    /// Every process whose name, or with `full` whose whole command line, matches this regular
    /// expression, as `pkill` finds.
    Pattern {
        /// The regular expression.
        pattern: String,
        /// Match the whole command line (`pkill -f`).
        full: bool,
    },
}

impl Target {
    /// Whether the target is found by looking at the pod's processes, which needs them in the
    /// agent's view: the pod's process namespace shared.
    pub fn needs_shared_processes(&self) -> bool {
        !matches!(self, Target::Pid(_))
    }
}

/// `hydrant signal`'s command line for `target` and `signal`.
pub fn signal_argv(signal: &str, target: &Target) -> Vec<String> {
    let mut argv = vec![AGENT_BINARY.to_owned(), "signal".to_owned()];
    match target {
        Target::Pid(pid) => argv.extend(["--pid".to_owned(), pid.to_string()]),
        Target::Name(name) => argv.extend(["--name".to_owned(), name.clone()]),
        Target::Pattern { pattern, full } => {
            argv.extend(["--pattern".to_owned(), pattern.clone()]);
            if *full {
                argv.push("--full".to_owned());
            }
        }
    }
    argv.push(signal.to_owned());
    argv
}

/// The target and signal of a `hydrant signal` command line, if `argv` is one
/// ([`signal_argv`]'s inverse).
pub fn as_signal(argv: &[String]) -> Option<(String, Target)> {
    let rest = argv.strip_prefix(&[AGENT_BINARY.to_owned(), "signal".to_owned()])?;
    let signal = rest.last()?.clone();
    let target = match &rest[..rest.len() - 1] {
        [flag, pid] if flag == "--pid" => Target::Pid(pid.parse().ok()?),
        [flag, name] if flag == "--name" => Target::Name(name.clone()),
        [flag, pattern] if flag == "--pattern" => Target::Pattern {
            pattern: pattern.clone(),
            full: false,
        },
        [flag, pattern, full] if flag == "--pattern" && full == "--full" => Target::Pattern {
            pattern: pattern.clone(),
            full: true,
        },
        _ => return None,
    };
    Some((signal, target))
}

/// Why hydrant's default image cannot run a command: it holds hydrant's binary and nothing
/// else, no shell and no other program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotInImage {
    /// Shell syntax (pipes, `&&`, redirections, variables) or a shell of its own.
    NeedsShell,
    /// A program named without a path, or by a path in the image's own directories.
    Program(String),
    /// A program by an absolute path under no volume the agent container mounts.
    Unmounted(String),
}

/// Whether hydrant's default image can run `argv` in an agent container that mounts volumes at
/// `mounts`: hydrant itself (what signalling commands become), or a program given by an absolute
/// path under one of `mounts`, which the pod may have filled (`agent-extra-secret`,
/// `agent-copy-volume-mounts`, a volume added by `agent-json-patch`). Any other program is not
/// there: the image has no `/bin`, and a program named without a path has nowhere to be found.
pub fn runnable(argv: &[String], mounts: &[&str]) -> Result<(), NotInImage> {
    let Some(first) = argv.first() else {
        return Ok(());
    };
    if first == crate::annotations::SHELL {
        return Err(NotInImage::NeedsShell);
    }
    if first == AGENT_BINARY || first == "hydrant" {
        return Ok(());
    }
    let path = std::path::Path::new(first);
    if !path.is_absolute() {
        return Err(NotInImage::Program(first.clone()));
    }
    // A `..` could climb out of the volume it names.
    let plain = path.components().all(|c| {
        matches!(
            c,
            std::path::Component::RootDir | std::path::Component::Normal(_)
        )
    });
    if plain
        && mounts
            .iter()
            .any(|m| path.starts_with(m) && path != std::path::Path::new(m))
    {
        Ok(())
    } else {
        Err(NotInImage::Unmounted(first.clone()))
    }
}

fn program(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// A signal option (`-HUP`, `-SIGHUP`, `-1`, `-s HUP`, `--signal HUP`, `--signal=HUP`) at the
/// start of `args`: the signal and the arguments after it. `None` when the first argument is
/// an option that is not a signal.
fn signal_option(args: &[String]) -> Option<(&'static str, &[String])> {
    match args {
        [flag, spec, rest @ ..] if flag == "-s" || flag == "--signal" || flag == "-n" => {
            Some((signal_name(spec)?, rest))
        }
        [first, rest @ ..] if first.starts_with("--signal=") => {
            Some((signal_name(&first["--signal=".len()..])?, rest))
        }
        [first, rest @ ..] if first.starts_with('-') && first.len() > 1 => {
            Some((signal_name(&first[1..])?, rest))
        }
        _ => Some(("TERM", args)),
    }
}

/// `$(pidof NAME)`, `` `pidof NAME` ``, `$(pgrep NAME)`, `$(pgrep -x NAME)`, `$(pgrep -f PAT)`,
/// written over one or more words: the target they find.
fn substitution(words: &[String]) -> Option<Target> {
    let text = words.join(" ");
    let inner = text
        .strip_prefix("$(")
        .and_then(|t| t.strip_suffix(')'))
        .or_else(|| text.strip_prefix('`').and_then(|t| t.strip_suffix('`')))?;
    let inner: Vec<String> = shlex::split(inner)?;
    match inner.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [pidof, "-s", name] | [pidof, name] if program(pidof) == "pidof" => {
            Some(Target::Name(name.to_owned()))
        }
        [pgrep, "-x", name] if program(pgrep) == "pgrep" => Some(Target::Name(name.to_owned())),
        [pgrep, "-f", pattern] if program(pgrep) == "pgrep" => Some(Target::Pattern {
            pattern: pattern.to_owned(),
            full: true,
        }),
        [pgrep, pattern] if program(pgrep) == "pgrep" => Some(Target::Pattern {
            pattern: pattern.to_owned(),
            full: false,
        }),
        _ => None,
    }
}

/// The `hydrant signal` command a signalling command means: `kill -HUP 1`, `kill -s HUP 7`,
/// `kill -HUP $(pidof nginx)`, `pkill -HUP nginx`, `pkill -x -HUP nginx`, `pkill -f 'my app'`,
/// `killall -HUP nginx`, and each of them inside `sh -c '...'` (with or without `exec`, or a
/// trailing `|| true`). `None`: not one of these.
pub fn translate(argv: &[String]) -> Option<(String, Target)> {
    let (first, args) = argv.split_first()?;
    match program(first) {
        "sh" | "bash" | "ash" | "dash" => {
            let [flag, script] = args else { return None };
            if flag != "-c" && flag != "-ec" {
                return None;
            }
            let script = script.trim();
            let script = script
                .strip_suffix("|| true")
                .or_else(|| script.strip_suffix("|| :"))
                .unwrap_or(script)
                .trim();
            let inner = shlex::split(script)?;
            let inner = match inner.split_first() {
                Some((exec, rest)) if exec == "exec" => rest.to_vec(),
                _ => inner,
            };
            translate(&inner)
        }
        "kill" => {
            let (signal, targets) = signal_option(args)?;
            let target = match targets {
                [pid] if pid.parse::<u32>().is_ok_and(|p| p > 0) => Target::Pid(pid.parse().ok()?),
                words if !words.is_empty() => substitution(words)?,
                _ => return None,
            };
            Some((signal.to_owned(), target))
        }
        "pkill" | "killall" => {
            let killall = program(first) == "killall";
            let mut exact = killall;
            let mut full = false;
            let mut signal = "TERM";
            let mut rest = args;
            loop {
                match rest {
                    [flag, tail @ ..] if flag == "-x" || flag == "--exact" => {
                        exact = true;
                        rest = tail;
                    }
                    [flag, tail @ ..] if flag == "-f" || flag == "--full" => {
                        full = true;
                        rest = tail;
                    }
                    [flag, ..] if flag.starts_with('-') => {
                        let (found, tail) = signal_option(rest)?;
                        signal = found;
                        rest = tail;
                    }
                    _ => break,
                }
            }
            let [pattern] = rest else { return None };
            let target = if exact && !full {
                Target::Name(pattern.clone())
            } else {
                Target::Pattern {
                    pattern: pattern.clone(),
                    full,
                }
            };
            Some((signal.to_owned(), target))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        shlex::split(text).expect("words")
    }

    #[test]
    fn the_usual_signalling_commands_become_hydrant_signal() {
        let name = |n: &str| Target::Name(n.to_owned());
        let pattern = |p: &str, full| Target::Pattern {
            pattern: p.to_owned(),
            full,
        };
        let cases: [(&str, &str, Target); 16] = [
            ("kill -HUP 1", "HUP", Target::Pid(1)),
            ("kill -s HUP 1", "HUP", Target::Pid(1)),
            ("/bin/kill -SIGUSR1 42", "USR1", Target::Pid(42)),
            ("kill -1 7", "HUP", Target::Pid(7)),
            ("kill 7", "TERM", Target::Pid(7)),
            ("kill -HUP $(pidof nginx)", "HUP", name("nginx")),
            ("kill -HUP `pidof nginx`", "HUP", name("nginx")),
            ("kill -s USR2 $(pgrep -x app)", "USR2", name("app")),
            ("pkill -HUP nginx", "HUP", pattern("nginx", false)),
            ("pkill -x -HUP nginx", "HUP", name("nginx")),
            (
                "pkill --signal HUP -f 'my app'",
                "HUP",
                pattern("my app", true),
            ),
            (
                "/usr/bin/pkill -HUP -f 'my app'",
                "HUP",
                pattern("my app", true),
            ),
            ("killall -HUP nginx", "HUP", name("nginx")),
            ("sh -c \"kill -HUP $(pidof x)\"", "HUP", name("x")),
            (
                "/bin/sh -c 'pkill -HUP nginx || true'",
                "HUP",
                pattern("nginx", false),
            ),
            ("sh -c 'exec kill -s HUP 1'", "HUP", Target::Pid(1)),
        ];
        for (command, signal, target) in cases {
            assert_eq!(
                translate(&words(command)),
                Some((signal.to_owned(), target)),
                "{command}"
            );
        }
    }

    #[test]
    fn other_commands_are_not_signals() {
        for command in [
            "touch /tmp/x",
            "kill -HUP $(cat /run/app.pid)",
            "kill -BOGUS 1",
            "kill -HUP 0",
            "kill -HUP -1",
            "pkill -HUP",
            "sh -c 'kill -HUP 1 && touch /x'",
            "sh script.sh",
        ] {
            assert_eq!(translate(&words(command)), None, "{command}");
        }
    }

    #[test]
    fn the_default_image_runs_hydrant_and_programs_under_the_agents_mounts_only() {
        let mounts = ["/vault/secrets", "/vault/custom", "/opt/tools/"];
        let check = |command: &str| runnable(&words(command), &mounts);
        for ok in [
            "/usr/local/bin/hydrant signal --name nginx HUP",
            "hydrant signal --pid 1 HUP",
            "/vault/custom/reload --now",
            "/opt/tools/bin/reload",
            "/vault/secrets/reload.sh",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        let program = |p: &str| Err(NotInImage::Program(p.to_owned()));
        let unmounted = |p: &str| Err(NotInImage::Unmounted(p.to_owned()));
        assert_eq!(check("touch /x"), program("touch"));
        assert_eq!(check("nginx -s reload"), program("nginx"));
        assert_eq!(check("./reload"), program("./reload"));
        assert_eq!(
            check("/usr/sbin/nginx -s reload"),
            unmounted("/usr/sbin/nginx")
        );
        assert_eq!(check("/bin/touch /x"), unmounted("/bin/touch"));
        assert_eq!(check("/vault/custom"), unmounted("/vault/custom"));
        assert_eq!(
            check("/vault/custom/../../bin/sh"),
            unmounted("/vault/custom/../../bin/sh")
        );
        assert_eq!(check("/vault/customer/x"), unmounted("/vault/customer/x"));
        assert_eq!(
            runnable(&words("/bin/sh -c 'a | b'"), &mounts),
            Err(NotInImage::NeedsShell)
        );
    }

    #[test]
    fn signal_names_and_numbers_are_one_signal() {
        for spec in ["HUP", "SIGHUP", "hup", "1", " sighup "] {
            assert_eq!(signal_name(spec), Some("HUP"), "{spec}");
        }
        assert_eq!(signal_name("BOGUS"), None);
        assert_eq!(signal_name("99"), None);
    }

    #[test]
    fn a_signal_command_line_reads_back() {
        for target in [
            Target::Pid(1),
            Target::Name("nginx".into()),
            Target::Pattern {
                pattern: "my app".into(),
                full: true,
            },
        ] {
            let argv = signal_argv("HUP", &target);
            assert_eq!(as_signal(&argv), Some(("HUP".to_owned(), target)));
        }
        assert_eq!(as_signal(&words("kill -HUP 1")), None);
    }
}
