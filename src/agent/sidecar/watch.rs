//! Watching template sources, the config's watch list and the config snapshot's inputs, and
//! re-rendering what read a file that changed.

use std::path::{Path, PathBuf};

use injector::AgentConfig;
use tracing::{info, warn};

use super::Sidecar;
use crate::agent::compile::SourceFile;
use crate::agent::snapshot;

impl Sidecar<'_> {
    /// Template sources and watched files changed: reload and re-render what read them.
    pub(super) async fn files_changed(&mut self, paths: &[PathBuf]) {
        let mut which = Vec::new();
        for (i, source, text) in &mut self.sources {
            if !paths.iter().any(|p| {
                source.starts_with(p) || p.starts_with(source.parent().unwrap_or(Path::new("/")))
            }) {
                continue;
            }
            match std::fs::read_to_string(&*source) {
                Ok(fresh) if fresh != *text => match self.engine.set_template(*i, &fresh) {
                    Ok(()) => {
                        *text = fresh;
                        which.push(*i);
                    }
                    Err(error) => {
                        warn!(%error, "the changed template does not compile; the file keeps its last good content")
                    }
                },
                Ok(_) => {}
                Err(error) => {
                    warn!(%error, source = %source.display(), "cannot read the changed template")
                }
            }
        }
        if let Some(settings) = &self.config.snapshot
            && paths.iter().any(|p| snapshot::is_input(settings, p))
        {
            self.recompose(&mut which);
        }
        for path in paths {
            for watched in &self.config.watch {
                if path.starts_with(watched) || watched.starts_with(path) {
                    which.extend(self.engine.using_file(watched));
                }
            }
        }
        which.sort_unstable();
        which.dedup();
        if !which.is_empty() {
            self.render(which).await;
        }
    }

    /// The config snapshot's inputs changed: compose it again. A valid new snapshot re-renders
    /// every output (the unchanged ones are not written); an invalid one is reported and the
    /// files keep what the last good one gave them.
    pub(super) fn recompose(&mut self, which: &mut Vec<usize>) {
        let Some(settings) = &self.config.snapshot else {
            return;
        };
        match snapshot::compose(settings) {
            Ok(snapshot) => {
                self.status.snapshot(true);
                // Templates see the labels and containers too, not only the values.
                let seen = snapshot::fingerprint(&snapshot);
                if self.snapshot.as_ref() == Some(&seen) {
                    return;
                }
                info!(version = snapshot.version(), "config snapshot changed");
                snapshot::show(&mut self.engine, &snapshot);
                self.snapshot = Some(seen);
                which.extend(0..self.rendered.len());
            }
            Err(error) => {
                self.status.snapshot(false);
                warn!(%error, "the changed config snapshot is invalid; the files keep the last good one");
            }
        }
    }
}

/// Watches template sources and the config's watch list (their directories: a ConfigMap volume
/// changes by swapping a symlink beside the files). Access events are ignored: reading the files
/// raises them.
pub(super) fn watch(
    config: &AgentConfig,
    sources: &[SourceFile],
    events: tokio::sync::mpsc::UnboundedSender<PathBuf>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let mut dirs: Vec<PathBuf> = sources
        .iter()
        .filter_map(|(_, p, _)| p.parent().map(Path::to_owned))
        .collect();
    let mut recursive: Vec<&PathBuf> = config.watch.iter().collect();
    let mut inputs: Vec<&PathBuf> = config.watch.iter().collect();
    if let Some(settings) = &config.snapshot {
        recursive.extend(&settings.containers);
        inputs.extend(&settings.containers);
        inputs.extend(settings.labels_file.iter().chain(&settings.schema));
    }
    for path in inputs {
        if path.is_dir() {
            dirs.push(path.clone());
        } else if let Some(parent) = path.parent() {
            dirs.push(parent.to_owned());
        }
    }
    dirs.sort();
    dirs.dedup();
    if dirs.is_empty() {
        return None;
    }
    let watched = dirs.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else {
            return;
        };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        for path in event.paths {
            let dir = watched
                .iter()
                .find(|d| path.starts_with(d))
                .cloned()
                .unwrap_or(path);
            let _ = events.send(dir);
        }
    })
    .map_err(|error| warn!(%error, "cannot watch files; changes to them are not picked up"))
    .ok()?;
    for dir in &dirs {
        let mode = if recursive.contains(&dir) {
            notify::RecursiveMode::Recursive
        } else {
            notify::RecursiveMode::NonRecursive
        };
        if let Err(error) = watcher.watch(dir, mode) {
            warn!(%error, dir = %dir.display(), "cannot watch");
        }
    }
    Some(watcher)
}
