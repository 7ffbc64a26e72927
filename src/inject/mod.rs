//! `hydrant inject`: the webhook's mutation applied offline to manifests, for GitOps pipelines
//! and debugging.

use std::io::Read as _;

use injector::{Context, Images, InjectorSettings, images_to_read, mutate_in};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

/// `hydrant inject`'s flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The manifests: a file of YAML or JSON documents, or - for standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: std::path::PathBuf,
    /// The namespace of documents that name none.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// What the webhook decides for every pod.
    #[command(flatten)]
    pub injector: crate::cli::InjectorArgs,
    /// How images' commands are read from their registries, as the webhook reads them.
    #[command(flatten)]
    pub registry: crate::registry::RegistryArgs,
}

/// `hydrant inject`: mutates the manifests as the webhook would, prints them, and warns on
/// standard error.
pub fn command(args: &Args, env: &dyn crate::env::Env) -> anyhow::Result<()> {
    let settings = args.injector.settings(env)?;
    let registry = crate::registry::Registry::new(&args.registry);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| Error::Read {
            source_name: "the registry client's runtime".to_owned(),
            error,
        })?;
    let mut lookup = |images: &[String]| runtime.block_on(registry.commands(images));
    let injected = run_with(&args.file, &args.namespace, &settings, &mut lookup)?;
    for warning in &injected.warnings {
        eprintln!("hydrant: warning: {warning}");
    }
    std::io::Write::write_all(&mut std::io::stdout(), injected.yaml.as_bytes())?;
    Ok(())
}

/// Why `hydrant inject` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input cannot be read.
    #[error("cannot read {source_name}: {error}")]
    Read {
        /// The file, or standard input.
        source_name: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The input is not YAML or JSON documents.
    #[error("{source_name}: {message}")]
    Parse {
        /// The file, or standard input.
        source_name: String,
        /// What the parser said.
        message: String,
    },
    /// Pods the webhook would deny: one line each.
    #[error("{}", .0.join("\nhydrant: "))]
    Denied(Vec<String>),
}

/// The mutated documents, and what the user should know about them.
#[derive(Debug, PartialEq)]
pub struct Injected {
    /// The documents as YAML, separated by `---`.
    pub yaml: String,
    /// Warnings, each naming its document.
    pub warnings: Vec<String>,
}

/// Reads the commands of images from their registries: what [`run_with`] asks for the
/// containers that run under `hydrant exec` and set no command.
pub type Lookup<'a> = dyn FnMut(&[String]) -> Images + 'a;

/// Reads `path` (`-` for standard input) and mutates it, knowing no image's command.
pub fn run(
    path: &std::path::Path,
    namespace: &str,
    settings: &InjectorSettings,
) -> Result<Injected, Error> {
    run_with(path, namespace, settings, &mut |_| Images::new())
}

/// [`run`], reading images' commands through `lookup`.
pub fn run_with(
    path: &std::path::Path,
    namespace: &str,
    settings: &InjectorSettings,
    lookup: &mut Lookup<'_>,
) -> Result<Injected, Error> {
    let (source_name, text) = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|error| Error::Read {
                source_name: "standard input".to_owned(),
                error,
            })?;
        ("standard input".to_owned(), text)
    } else {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| Error::Read {
            source_name: name.clone(),
            error,
        })?;
        (name, text)
    };
    inject_with(&text, &source_name, namespace, settings, lookup)
}

/// Mutates every pod template in the documents of `text`, knowing no image's command.
pub fn inject(
    text: &str,
    source_name: &str,
    namespace: &str,
    settings: &InjectorSettings,
) -> Result<Injected, Error> {
    inject_with(text, source_name, namespace, settings, &mut |_| {
        Images::new()
    })
}

/// [`inject`], reading images' commands through `lookup`.
pub fn inject_with(
    text: &str,
    source_name: &str,
    namespace: &str,
    settings: &InjectorSettings,
    lookup: &mut Lookup<'_>,
) -> Result<Injected, Error> {
    let parse_error = |message: String| Error::Parse {
        source_name: source_name.to_owned(),
        message,
    };
    let mut documents: Vec<Value> = if text.trim_start().starts_with(['{', '[']) {
        vec![serde_json::from_str(text).map_err(|e| parse_error(format!("invalid JSON: {e}")))?]
    } else {
        // Manifests are the operator's files: a pipeline's may hold thousands of documents.
        let options = serde_saphyr::options! { budget: Some(crate::snapshot::yaml::file_budget()) };
        serde_saphyr::from_multiple_with_options(text, options).map_err(|e| {
            parse_error(format!(
                "invalid YAML: {}",
                crate::snapshot::yaml::describe(&e)
            ))
        })?
    };
    documents.retain(|d| !d.is_null());
    let mut warnings = Vec::new();
    let mut denials = Vec::new();
    for document in &mut documents {
        visit(
            document,
            namespace,
            settings,
            lookup,
            &mut warnings,
            &mut denials,
        );
    }
    if !denials.is_empty() {
        return Err(Error::Denied(denials));
    }
    let mut yaml = String::new();
    for (i, document) in documents.iter().enumerate() {
        if i > 0 {
            yaml.push_str("---\n");
        }
        yaml.push_str(
            &serde_saphyr::to_string(document)
                .map_err(|e| parse_error(format!("cannot write YAML: {e}")))?,
        );
    }
    Ok(Injected { yaml, warnings })
}

/// Where a kind keeps its pod template, and whether its pods run to completion.
fn template_of(kind: &str) -> Option<(&'static str, bool)> {
    match kind {
        "Pod" => Some(("", false)),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "ReplicationController" => {
            Some(("/spec/template", false))
        }
        "Job" => Some(("/spec/template", true)),
        "CronJob" => Some(("/spec/jobTemplate/spec/template", true)),
        _ => None,
    }
}

fn visit(
    document: &mut Value,
    namespace: &str,
    settings: &InjectorSettings,
    lookup: &mut Lookup<'_>,
    warnings: &mut Vec<String>,
    denials: &mut Vec<String>,
) {
    let kind = document["kind"].as_str().unwrap_or_default().to_owned();
    if kind.ends_with("List") {
        if let Some(items) = document.get_mut("items").and_then(Value::as_array_mut) {
            for item in items {
                visit(item, namespace, settings, lookup, warnings, denials);
            }
        }
        return;
    }
    let name = document["metadata"]["name"]
        .as_str()
        .unwrap_or("(unnamed)")
        .to_owned();
    let Some((pointer, batch)) = template_of(&kind) else {
        // An Argo Rollout, an OpenKruise CloneSet, a Knative Service...: a pod template this
        // command does not know where to find stays as it is, which must not go unnoticed.
        if let Some(found) = unknown_pod_template(document) {
            warnings.push(format!(
                "{kind}/{name}: hydrant inject does not know the kind {kind}, so its pod template ({found}) is left as it is; the webhook mutates its pods when they are created"
            ));
        }
        return;
    };
    let namespace = document["metadata"]["namespace"]
        .as_str()
        .unwrap_or(namespace)
        .to_owned();
    let label = format!("{kind}/{name}");
    let Some(template) = document.pointer_mut(pointer) else {
        return;
    };
    let pod_value = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": template.get("metadata").cloned().unwrap_or_else(|| serde_json::json!({})),
        "spec": template.get("spec").cloned().unwrap_or(Value::Null),
    });
    let pod: Pod = match serde_path_to_error::deserialize(pod_value) {
        Ok(pod) => pod,
        Err(e) => {
            denials.push(format!("{label}: {}", field_error(pointer, &e)));
            return;
        }
    };
    // A bare Pod carries its own owner references; a template's pods have no owner yet.
    let batch = batch
        || pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| injector::runs_to_completion(&o.kind, &o.api_version));
    let wanted = images_to_read(&pod);
    let images = if wanted.is_empty() {
        Images::new()
    } else {
        lookup(&wanted)
    };
    let context = Context {
        namespace: &namespace,
        batch,
        images: &images,
    };
    match mutate_in(&pod, &context, settings) {
        Ok(None) => {}
        Ok(Some(mutation)) => {
            if let Err(e) = json_patch::patch(template, &mutation.patch) {
                denials.push(format!(
                    "{label}: the patch does not apply (a bug in hydrant): {e}"
                ));
                return;
            }
            warnings.extend(
                mutation
                    .warnings
                    .into_iter()
                    .map(|w| format!("{label}: {w}")),
            );
        }
        Err(denial) => denials.push(format!("{label}: {}", denial.message)),
    }
}

/// Where a document of a kind [`template_of`] does not know holds what looks like a pod
/// template (a `spec` with `containers`), in Kubernetes' notation, if anywhere.
fn unknown_pod_template(document: &Value) -> Option<&'static str> {
    [
        ("/spec/template/spec/containers", "spec.template"),
        (
            "/spec/jobTemplate/spec/template/spec/containers",
            "spec.jobTemplate.spec.template",
        ),
        ("/spec/containers", "spec"),
    ]
    .into_iter()
    .find(|(pointer, _)| document.pointer(pointer).is_some_and(Value::is_array))
    .map(|(_, found)| found)
}

/// Where a pod template does not decode, in Kubernetes' notation
/// (`spec.template.metadata.annotations["vault.hashicorp.com/agent-inject"]`), and what is
/// wrong there. YAML reads `yes`, `true` and `8200` unquoted as a boolean or a number, where
/// Kubernetes wants strings: that gets the fix, to quote it.
fn field_error(template: &str, error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    use serde_path_to_error::Segment;
    let mut path: String = template
        .split('/')
        .filter(|t| !t.is_empty())
        .flat_map(|t| [".", t])
        .skip(1)
        .collect();
    for segment in error.path().iter() {
        match segment {
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Map { key } if is_field_name(key) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Segment::Map { key } => path.push_str(&format!("[{key:?}]")),
            Segment::Enum { variant } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(variant);
            }
            Segment::Unknown => path.push_str("[?]"),
        }
    }
    let inner = error.inner().to_string();
    let wants_string = inner.ends_with("expected a string");
    let message = if wants_string && inner.starts_with("invalid type: boolean") {
        "a boolean where Kubernetes wants a string; quote it".to_owned()
    } else if wants_string
        && (inner.starts_with("invalid type: integer")
            || inner.starts_with("invalid type: floating point"))
    {
        "a number where Kubernetes wants a string; quote it".to_owned()
    } else {
        inner
    };
    if path.is_empty() {
        message
    } else {
        format!("{path}: {message}")
    }
}

/// A key written as `.name` in a field path; others are written `["key"]`.
fn is_field_name(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> InjectorSettings {
        InjectorSettings::new("https://vault:8200", "hydrant:test")
    }

    const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations:
        vault.hashicorp.com/agent-inject: \"true\"
        vault.hashicorp.com/role: web
        vault.hashicorp.com/agent-inject-secret-db: secret/data/web/db
    spec:
      containers:
        - name: web
          image: web:1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
";

    #[test]
    fn pod_templates_are_mutated_and_other_kinds_left_alone() {
        let out = inject(DEPLOYMENT, "test", "team-a", &settings()).expect("injects");
        let docs: Vec<Value> = serde_saphyr::from_multiple(&out.yaml).expect("yaml");
        assert_eq!(docs.len(), 2);
        let template = &docs[0]["spec"]["template"];
        assert_eq!(
            template["metadata"]["annotations"]["vault.hashicorp.com/agent-inject-status"],
            "injected"
        );
        assert_eq!(template["spec"]["initContainers"][0]["name"], "vault-agent");
        assert_eq!(docs[1]["kind"], "Service");
        assert_eq!(docs[1]["spec"]["ports"][0]["port"], 80);
    }

    #[test]
    fn a_cronjob_template_gets_no_classic_sidecar() {
        let cron = "\
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: \"0 3 * * *\"
  jobTemplate:
    spec:
      template:
        metadata:
          annotations:
            hydrant.dev/inject: \"true\"
            hydrant.dev/role: nightly
            hydrant.dev/mode: init-and-sidecar
            hydrant.dev/secret-db: secret/data/db
        spec:
          restartPolicy: OnFailure
          containers: [{name: job, image: job:1}]
";
        let out = inject(cron, "test", "team-a", &settings()).expect("injects");
        let docs: Vec<Value> = serde_saphyr::from_multiple(&out.yaml).expect("yaml");
        let spec = &docs[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(spec["containers"].as_array().expect("containers").len(), 1);
        assert_eq!(spec["initContainers"][0]["restartPolicy"], "Always");
        assert!(
            out.warnings[0].starts_with("CronJob/nightly: the pod runs to completion"),
            "{:?}",
            out.warnings
        );
    }

    #[test]
    fn lists_and_json_are_read_too() {
        let list = serde_json::json!({
            "apiVersion": "v1", "kind": "List",
            "items": [{"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "annotations": {"hydrant.dev/inject": "true", "hydrant.dev/role": "r", "hydrant.dev/secret-a": "kv/a"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}]
        });
        let out = inject(&list.to_string(), "test", "team-a", &settings()).expect("injects");
        let docs: Vec<Value> = serde_saphyr::from_multiple(&out.yaml).expect("yaml");
        assert_eq!(
            docs[0]["items"][0]["metadata"]["annotations"]["hydrant.dev/status"],
            "injected"
        );
    }

    #[test]
    fn a_pod_the_webhook_would_deny_fails_the_run_naming_it() {
        let bad = DEPLOYMENT.replace(
            "vault.hashicorp.com/role: web",
            "vault.hashicorp.com/client-cert: /vault/tls/client.pem",
        );
        let err = inject(&bad, "test", "team-a", &settings()).expect_err("denied");
        let message = err.to_string();
        assert!(
            message.starts_with("Deployment/web: vault.hashicorp.com/client-cert: "),
            "{message}"
        );
    }

    #[test]
    fn a_yaml_type_error_names_the_field_in_kubernetes_notation_and_the_fix() {
        let cases = [
            (
                "vault.hashicorp.com/agent-inject: \"true\"",
                "vault.hashicorp.com/agent-inject: yes",
                "Deployment/web: spec.template.metadata.annotations[\"vault.hashicorp.com/agent-inject\"]: a boolean where Kubernetes wants a string; quote it",
            ),
            (
                "vault.hashicorp.com/role: web",
                "vault.hashicorp.com/agent-cache-listener-port: 8200",
                "Deployment/web: spec.template.metadata.annotations[\"vault.hashicorp.com/agent-cache-listener-port\"]: a number where Kubernetes wants a string; quote it",
            ),
            (
                "image: web:1",
                "image: 1.5",
                "Deployment/web: spec.template.spec.containers[0].image: a number where Kubernetes wants a string; quote it",
            ),
            (
                "image: web:1",
                "image: [web]",
                "Deployment/web: spec.template.spec.containers[0].image: invalid type: sequence, expected a string",
            ),
        ];
        for (from, to, expected) in cases {
            let manifest = DEPLOYMENT.replace(from, to);
            let err = inject(&manifest, "test", "team-a", &settings()).expect_err("refused");
            assert_eq!(err.to_string(), expected);
        }
        let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {hydrant.dev/inject: true}\nspec: {containers: [{name: c, image: i}]}\n";
        let err = inject(pod, "test", "team-a", &settings()).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "Pod/p: metadata.annotations[\"hydrant.dev/inject\"]: a boolean where Kubernetes wants a string; quote it"
        );
    }

    /// An Argo Rollout's pod template is not one `hydrant inject` knows: it says so, naming it,
    /// and leaves the document as it is; a kind without a pod template passes silently.
    #[test]
    fn a_pod_template_of_an_unknown_kind_is_left_alone_with_a_warning() {
        let rollout = DEPLOYMENT.replacen(
            "apiVersion: apps/v1\nkind: Deployment",
            "apiVersion: argoproj.io/v1alpha1\nkind: Rollout",
            1,
        );
        let out = inject(&rollout, "test", "team-a", &settings()).expect("passes");
        assert_eq!(
            out.warnings,
            [
                "Rollout/web: hydrant inject does not know the kind Rollout, so its pod template (spec.template) is left as it is; the webhook mutates its pods when they are created"
            ]
        );
        let docs: Vec<Value> = serde_saphyr::from_multiple(&out.yaml).expect("yaml");
        assert!(docs[0]["spec"]["template"]["spec"]["initContainers"].is_null());
        let out = inject(DEPLOYMENT, "test", "team-a", &settings()).expect("injects");
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    }

    #[test]
    fn a_manifest_file_may_hold_thousands_of_documents() {
        let many = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n"
            .repeat(5000);
        let out = inject(&many, "test", "team-a", &settings()).expect("injects");
        assert_eq!(out.yaml.matches("kind: ConfigMap").count(), 5000);
    }

    #[test]
    fn invalid_yaml_names_the_source() {
        let err = inject("kind: [unclosed", "manifests.yaml", "team-a", &settings())
            .expect_err("invalid");
        assert!(
            err.to_string().starts_with("manifests.yaml: invalid YAML"),
            "{err}"
        );
    }
}
