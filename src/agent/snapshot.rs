//! The config snapshot as the agent sees it: composed from the agent config's containers and
//! labels and checked against its schema, shown to templates, and recomposed when one of its
//! inputs changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use injector::agent_config::{LabelConflict, SnapshotConfig};

use crate::template::Engine;

/// Composes the config snapshot the agent config asks for and checks it against its schema.
/// The error lists every problem, one per line.
pub(super) fn compose(settings: &SnapshotConfig) -> Result<Arc<crate::snapshot::Snapshot>, String> {
    use crate::snapshot::{self, Labels, Schema};
    let lines = |errors: Vec<snapshot::Error>| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut labels = Labels::default();
    labels
        .add("config.labels", settings.labels.clone())
        .map_err(|e| e.to_string())?;
    if let Some(path) = &settings.labels_file {
        let on_conflict = match settings.label_conflict {
            LabelConflict::Error => snapshot::OnConflict::Error,
            LabelConflict::HostWins => snapshot::OnConflict::Keep,
            LabelConflict::AppWins => snapshot::OnConflict::Replace,
        };
        labels
            .add_file_with(path, on_conflict)
            .map_err(|e| e.to_string())?;
    }
    let levels: Vec<String> = match &settings.levels {
        Some(levels) => levels.clone(),
        None => snapshot::DEFAULT_LEVELS
            .iter()
            .map(|l| l.to_string())
            .collect(),
    };
    let snapshot = snapshot::compose_from(&settings.containers, &labels, &levels).map_err(lines)?;
    if let Some(path) = &settings.schema {
        let schema = Schema::load(path).map_err(|e| e.to_string())?;
        schema.check(&snapshot).map_err(|e| e.to_string())?;
    }
    Ok(Arc::new(snapshot))
}

/// Makes a snapshot what templates see as `config`, `snapshot` and `config_as`.
pub(super) fn show(engine: &mut Engine, snapshot: &Arc<crate::snapshot::Snapshot>) {
    for (name, value) in crate::snapshot::template_globals(snapshot) {
        engine.set_global(name, value);
    }
}

/// What templates see of a snapshot, in one string: a change to it re-renders them.
pub(super) fn fingerprint(snapshot: &crate::snapshot::Snapshot) -> String {
    serde_json::to_string(&snapshot.info()).unwrap_or_default()
}

/// Whether a changed path is one the config snapshot is composed from.
pub(super) fn is_input(settings: &SnapshotConfig, path: &Path) -> bool {
    let related = |input: &PathBuf| {
        path.starts_with(input)
            || input.starts_with(path)
            || input.parent().is_some_and(|parent| parent == path)
    };
    settings.containers.iter().any(related)
        || settings
            .labels_file
            .iter()
            .chain(&settings.schema)
            .any(related)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use injector::agent_config::{LabelConflict, SnapshotConfig};

    /// The host says site a, the pod says site b: the policy decides which container applies.
    #[test]
    fn the_label_conflict_policy_decides_between_the_host_and_the_pod() {
        let dir = tempfile::tempdir().expect("tempdir");
        let containers = dir.path().join("containers");
        std::fs::create_dir(&containers).expect("dir");
        for site in ["a", "b"] {
            std::fs::write(
                containers.join(format!("{site}.yaml")),
                format!("kind: ConfigContainer\nmetadata: {{name: site-{site}}}\nspec:\n  selector: {{matchLabels: {{site: {site}}}}}\n  values: {{SITE: {site}}}\n"),
            )
            .expect("container");
        }
        let labels_file = dir.path().join("labels");
        std::fs::write(&labels_file, "site=\"b\"\n").expect("labels");
        let settings = |label_conflict| SnapshotConfig {
            containers: vec![containers.clone()],
            labels: BTreeMap::from([("site".to_owned(), "a".to_owned())]),
            labels_file: Some(labels_file.clone()),
            label_conflict,
            ..SnapshotConfig::default()
        };
        let error = super::compose(&settings(LabelConflict::Error)).expect_err("conflict");
        assert!(
            error.starts_with("label site is \"a\" in config.labels and \"b\" in "),
            "{error}"
        );
        let site = |policy| {
            super::compose(&settings(policy))
                .expect("composes")
                .values()["SITE"]
                .clone()
        };
        assert_eq!(site(LabelConflict::HostWins), "a");
        assert_eq!(site(LabelConflict::AppWins), "b");
    }
}
