//! The config-snapshot annotations, `hydrant.dev/config-*`: which ConfigMaps, schema, format,
//! file and levels make the snapshot file.

use std::collections::BTreeMap;

use super::fields::{file_name, no_control};
use super::keys::hydrant as h;
use crate::Denial;
use crate::values::parse_list;

/// A config snapshot asked for with `hydrant.dev/config-*`: composed by the agent from config
/// containers held in ConfigMaps, for the pod's labels and the host's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotRequest {
    /// ConfigMaps in the pod's namespace holding config containers, mounted into the agent.
    pub config_maps: Vec<String>,
    /// The schema: a ConfigMap and its key.
    pub schema: Option<(String, String)>,
    /// json, yaml, properties or env.
    pub format: String,
    /// The file's name under the mount path.
    pub file: String,
    /// The levels, lowest precedence first, when not the default.
    pub levels: Option<Vec<String>>,
}

/// The formats a snapshot file can have through annotations.
pub const SNAPSHOT_FORMATS: [&str; 4] = ["json", "yaml", "properties", "env"];

/// The name of the output that holds the snapshot.
pub const SNAPSHOT_OUTPUT: &str = "platform-config";

/// `hydrant.dev/config-containers`, `-schema`, `-format`, `-file` and `-levels`, by key.
pub(super) fn snapshot_request(given: &BTreeMap<&str, &str>) -> Result<SnapshotRequest, Denial> {
    for &key in given.keys() {
        if !h::CONFIG_KEYS.contains(&key) {
            return Err(Denial::bad(
                key,
                "is not a hydrant annotation; the config annotations are config-containers, config-schema, config-format, config-file and config-levels".to_owned(),
            ));
        }
    }
    let given_at = |key: &'static str| given.get(key).map(|value| (*value, key));
    let Some((containers, k)) = given_at(h::CONFIG_CONTAINERS) else {
        let k = given
            .keys()
            .next()
            .copied()
            .unwrap_or("hydrant.dev/config-*");
        return Err(Denial::new(
            crate::Reason::MissingAnnotation,
            format!(
                "{k} needs {}: the ConfigMaps that hold the config containers",
                h::CONFIG_CONTAINERS
            ),
        ));
    };
    let mut config_maps = parse_list(containers);
    // Named twice, mounted once: two mounts at one path would be refused by the API server.
    let mut seen = std::collections::BTreeSet::new();
    config_maps.retain(|m| seen.insert(m.clone()));
    if config_maps.is_empty() {
        return Err(Denial::bad(
            k,
            "names no ConfigMap; list them: platform-global,platform-site".to_owned(),
        ));
    }
    for name in &config_maps {
        config_map_name(k, name)?;
    }
    let schema = match given_at(h::CONFIG_SCHEMA) {
        None => None,
        Some((value, k)) => {
            let (map, item) = value
                .trim()
                .split_once('/')
                .unwrap_or((value.trim(), "schema.json"));
            config_map_name(k, map)?;
            no_control(k, item)?;
            if item.is_empty() || item.contains('/') || item.starts_with('.') {
                return Err(Denial::bad(
                    k,
                    format!(
                        "{item:?} is not a ConfigMap key; write configmap/key, such as app-schema/schema.json"
                    ),
                ));
            }
            Some((map.to_owned(), item.to_owned()))
        }
    };
    let format = match given_at(h::CONFIG_FORMAT) {
        None => "json".to_owned(),
        Some((value, k)) => {
            let f = value.trim();
            if !SNAPSHOT_FORMATS.contains(&f) {
                return Err(Denial::bad(
                    k,
                    format!("{f:?} is not a format; use {}", SNAPSHOT_FORMATS.join(", ")),
                ));
            }
            f.to_owned()
        }
    };
    let file = match given_at(h::CONFIG_FILE) {
        None => format!("{SNAPSHOT_OUTPUT}.{format}"),
        Some((value, k)) => file_name(k, value)?,
    };
    let levels = match given_at(h::CONFIG_LEVELS) {
        None => None,
        Some((value, k)) => {
            let levels = parse_list(value);
            if levels.is_empty() {
                return Err(Denial::bad(
                    k,
                    "names no level; leave it out for the default levels".to_owned(),
                ));
            }
            Some(levels)
        }
    };
    Ok(SnapshotRequest {
        config_maps,
        schema,
        format,
        file,
        levels,
    })
}

/// A ConfigMap's name: a DNS subdomain.
fn config_map_name(key: &str, name: &str) -> Result<(), Denial> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Denial::bad(
            key,
            format!("{name:?} is not a ConfigMap name (lower-case letters, digits, '-' and '.')"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::OutputSource;
    use super::super::tests::parse_hydrant;
    use super::*;

    #[test]
    fn config_annotations_ask_for_a_snapshot_file() {
        let r = parse_hydrant(&[
            ("hydrant.dev/inject", "true"),
            ("hydrant.dev/role", "app"),
            (
                "hydrant.dev/config-containers",
                " platform-global , platform-site ",
            ),
            ("hydrant.dev/config-schema", "app-schema"),
            ("hydrant.dev/config-format", "env"),
            ("hydrant.dev/config-levels", "global,site"),
        ])
        .expect("allowed");
        let snapshot = r.snapshot.expect("a snapshot");
        assert_eq!(snapshot.config_maps, ["platform-global", "platform-site"]);
        assert_eq!(
            snapshot.schema,
            Some(("app-schema".to_owned(), "schema.json".to_owned()))
        );
        assert_eq!(snapshot.file, "platform-config.env");
        assert_eq!(
            snapshot.levels,
            Some(vec!["global".to_owned(), "site".to_owned()])
        );
        assert_eq!(r.outputs.len(), 1);
        assert_eq!(r.outputs[0].name, SNAPSHOT_OUTPUT);
        assert_eq!(
            r.outputs[0].source,
            OutputSource::Template("{{ config_as('env') }}".to_owned())
        );
    }

    #[test]
    fn config_annotations_are_refused_with_the_fix() {
        let refused = |pairs: &[(&str, &str)]| -> String {
            let mut all = vec![("hydrant.dev/inject", "true"), ("hydrant.dev/role", "app")];
            all.extend_from_slice(pairs);
            parse_hydrant(&all).expect_err("refused").message
        };
        assert_eq!(
            refused(&[("hydrant.dev/config-format", "yaml")]),
            "hydrant.dev/config-format needs hydrant.dev/config-containers: the ConfigMaps that hold the config containers"
        );
        assert!(
            refused(&[("hydrant.dev/config-containers", "Platform_Global")])
                .contains("\"Platform_Global\" is not a ConfigMap name"),
        );
        assert!(
            refused(&[
                ("hydrant.dev/config-containers", "p"),
                ("hydrant.dev/config-format", "toml")
            ])
            .contains("\"toml\" is not a format; use json, yaml, properties, env"),
        );
        assert!(
            refused(&[
                ("hydrant.dev/config-containers", "p"),
                ("hydrant.dev/config-sheme", "s")
            ])
            .contains("the config annotations are config-containers, config-schema"),
        );
        assert!(
            refused(&[
                ("hydrant.dev/config-containers", "p"),
                ("hydrant.dev/config-schema", "s/../x")
            ])
            .contains("is not a ConfigMap key"),
        );
        assert!(
            refused(&[
                ("hydrant.dev/config-containers", "p"),
                ("hydrant.dev/secret-platform-config", "secret/data/x"),
            ])
            .contains("platform-config is the config snapshot's name"),
        );
    }
}
