//! Composition, validation and output of config snapshots.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::{Strategy as _, any, prop, prop_assert_eq, proptest};
use serde_json::{Value as Json, json};

use super::output::{self, Format, Target};
use super::*;

fn parse(yaml: &str) -> Vec<Container> {
    container::parse(yaml, "test.yaml").unwrap_or_else(|e| panic!("{e:?}"))
}

fn composer(yaml: &str) -> Composer {
    let levels: Vec<String> = DEFAULT_LEVELS.iter().map(|l| l.to_string()).collect();
    Composer::new(parse(yaml), &levels).unwrap_or_else(|e| panic!("{e:?}"))
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn compose(yaml: &str, pairs: &[(&str, &str)]) -> Json {
    composer(yaml)
        .compose(&labels(pairs))
        .unwrap_or_else(|e| panic!("{e}"))
        .values()
        .clone()
}

fn compose_err(yaml: &str) -> String {
    composer(yaml)
        .compose(&BTreeMap::new())
        .expect_err("refused")
        .to_string()
}

/// A container document; `spec` is the YAML under `spec:` indented by four spaces.
fn doc(name: &str, spec: &str) -> String {
    format!("kind: ConfigContainer\nmetadata:\n  name: {name}\nspec:\n{spec}\n---\n")
}

#[test]
fn later_levels_win_whatever_the_names() {
    let yaml = [
        doc("aa-site", "  level: site\n  values: {A: site, S: 1}"),
        doc("zz-global", "  level: global\n  values: {A: global, G: 1}"),
        doc("mm-region", "  level: region\n  values: {A: region}"),
    ]
    .concat();
    assert_eq!(compose(&yaml, &[]), json!({"A": "site", "G": 1, "S": 1}));
}

#[test]
fn within_a_level_weight_then_specificity_then_name_decide() {
    let weight = [
        doc("b", "  level: site\n  weight: 10\n  values: {A: heavy}"),
        doc("a", "  level: site\n  weight: 5\n  values: {A: light}"),
    ]
    .concat();
    assert_eq!(compose(&weight, &[])["A"], "heavy");

    let specificity = [
        doc("b", "  level: site\n  values: {A: broad}"),
        doc(
            "a",
            "  level: site\n  selector: {matchLabels: {site: x}}\n  values: {A: specific}",
        ),
    ]
    .concat();
    assert_eq!(compose(&specificity, &[("site", "x")])["A"], "specific");

    let name = [
        doc("b", "  level: site\n  values: {A: b}"),
        doc("a", "  level: site\n  values: {A: a}"),
    ]
    .concat();
    assert_eq!(compose(&name, &[])["A"], "b");
}

#[test]
fn maps_merge_deep_by_default_and_replace_when_asked() {
    let deep = [
        doc(
            "g",
            "  level: global\n  values: {limits: {cpu: 1, memory: 2}}",
        ),
        doc("s", "  level: site\n  values: {limits: {cpu: 4}}"),
    ]
    .concat();
    assert_eq!(
        compose(&deep, &[])["limits"],
        json!({"cpu": 4, "memory": 2})
    );
    let replace = [
        doc(
            "g",
            "  level: global\n  values: {limits: {cpu: 1, memory: 2}}",
        ),
        doc(
            "s",
            "  level: site\n  merge: {/limits: replace}\n  values: {limits: {cpu: 4}}",
        ),
    ]
    .concat();
    assert_eq!(compose(&replace, &[])["limits"], json!({"cpu": 4}));
}

#[test]
fn lists_replace_by_default_and_append_unique_or_merge_by_key_when_asked() {
    let base = doc(
        "g",
        "  level: global\n  values: {servers: [a, b], hosts: [{name: x, port: 1}, {name: y, port: 2}, {port: 9}]}",
    );
    let site = |merge: &str| {
        doc(
            "s",
            &format!(
                "  level: site\n  merge: {{{merge}}}\n  values: {{servers: [b, c], hosts: [{{name: y, port: 3}}, {{name: z, port: 4}}, {{port: 8}}]}}"
            ),
        )
    };
    let replaced = compose(&[base.clone(), site("")].concat(), &[]);
    assert_eq!(replaced["servers"], json!(["b", "c"]));
    let appended = compose(&[base.clone(), site("/servers: append")].concat(), &[]);
    assert_eq!(appended["servers"], json!(["a", "b", "b", "c"]));
    let unique = compose(&[base.clone(), site("/servers: unique")].concat(), &[]);
    assert_eq!(unique["servers"], json!(["a", "b", "c"]));
    let by_key = compose(&[base, site("/hosts: merge-by-key:name")].concat(), &[]);
    assert_eq!(
        by_key["hosts"],
        json!([{"name": "x", "port": 1}, {"name": "y", "port": 3}, {"port": 9}, {"name": "z", "port": 4}, {"port": 8}]),
        "a match merges; no key or no match appends, never merges key-less elements together"
    );
}

#[test]
fn a_strategy_holds_for_the_containers_after_the_one_that_declared_it() {
    let yaml = [
        doc(
            "g",
            "  level: global\n  merge: {/servers: append}\n  values: {servers: [a]}",
        ),
        doc("r", "  level: region\n  values: {servers: [b]}"),
        doc(
            "s",
            "  level: site\n  merge: {/servers: replace}\n  values: {servers: [c]}",
        ),
        doc("l", "  level: line\n  values: {servers: [d]}"),
    ]
    .concat();
    assert_eq!(compose(&yaml, &[])["servers"], json!(["d"]));
    let first_two = [
        doc(
            "g",
            "  level: global\n  merge: {/servers: append}\n  values: {servers: [a]}",
        ),
        doc("r", "  level: region\n  values: {servers: [b]}"),
    ]
    .concat();
    let first_two = compose(&first_two, &[]);
    assert_eq!(first_two["servers"], json!(["a", "b"]));
}

#[test]
fn a_strategy_that_does_not_fit_the_value_is_an_error_naming_both_containers() {
    let yaml = [
        doc(
            "g",
            "  level: global\n  merge: {/limits: append}\n  values: {limits: {cpu: 1}}",
        ),
        doc("s", "  level: site\n  values: {limits: {cpu: 2}}"),
    ]
    .concat();
    assert_eq!(
        compose_err(&yaml),
        "/limits: strategy append (declared by container g) does not apply to a map, which container s merges there; maps take deep or replace, lists replace, append, unique or merge-by-key"
    );
}

#[test]
fn null_deletes_a_key_and_sets_nothing_where_nothing_was() {
    let yaml = [
        doc(
            "g",
            "  level: global\n  values: {A: 1, module: {x: 1, y: 2}}",
        ),
        doc(
            "s",
            "  level: site\n  values: {A: null, module: {y: null}, B: null, C: {d: null}}",
        ),
    ]
    .concat();
    assert_eq!(compose(&yaml, &[]), json!({"module": {"x": 1}, "C": {}}));
}

#[test]
fn a_type_change_is_an_error_unless_the_pointer_is_declared_replace() {
    let yaml = [
        doc("g", "  level: global\n  values: {port: 8080}"),
        doc("s", "  level: site\n  values: {port: \"8080\"}"),
    ]
    .concat();
    assert_eq!(
        compose_err(&yaml),
        "/port: container s sets a string where container g set a number; a value keeps its type unless a container declares `/port: replace` under spec.merge"
    );
    let allowed = [
        doc("g", "  level: global\n  values: {port: 8080}"),
        doc(
            "s",
            "  level: site\n  merge: {/port: replace}\n  values: {port: \"8080\"}",
        ),
    ]
    .concat();
    assert_eq!(compose(&allowed, &[])["port"], "8080");
}

#[test]
fn selectors_follow_kubernetes_semantics() {
    let yaml = [
        doc(
            "in",
            "  selector: {matchExpressions: [{key: env, operator: In, values: [qa, prod]}]}\n  values: {in: true}",
        ),
        doc(
            "notin",
            "  selector: {matchExpressions: [{key: env, operator: NotIn, values: [prod]}]}\n  values: {notin: true}",
        ),
        doc(
            "exists",
            "  selector: {matchExpressions: [{key: line, operator: Exists}]}\n  values: {exists: true}",
        ),
        doc(
            "absent",
            "  selector: {matchExpressions: [{key: line, operator: DoesNotExist}]}\n  values: {absent: true}",
        ),
        doc(
            "labels",
            "  selector: {matchLabels: {site: atlantida, env: prod}}\n  values: {labels: true}",
        ),
        doc(
            "empty-value",
            "  selector: {matchLabels: {tier: \"\"}}\n  values: {empty: true}",
        ),
        doc("global", "  values: {global: true}"),
    ]
    .concat();
    let keys = |pairs: &[(&str, &str)]| -> Vec<String> {
        compose(&yaml, pairs)
            .as_object()
            .expect("map")
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(
        keys(&[("env", "prod"), ("site", "atlantida")]),
        ["absent", "global", "in", "labels"]
    );
    assert_eq!(
        keys(&[("env", "dev"), ("line", "1")]),
        ["exists", "global", "notin"]
    );
    assert_eq!(
        keys(&[]),
        ["absent", "global", "notin"],
        "an empty value never matches an absent label; NotIn matches an absent one"
    );
    assert_eq!(
        keys(&[("tier", "")]),
        ["absent", "empty", "global", "notin"]
    );
}

#[test]
fn bad_containers_are_refused_with_the_field_and_the_fix() {
    let err = |yaml: &str| -> String {
        container::parse(yaml, "c.yaml")
            .expect_err("refused")
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        err("kind: ConfigContainer\nmetadata: {name: a}\nspec: {valeus: {}}\n"),
        "config container c.yaml: spec.valeus: unknown field `valeus`, expected one of `selector`, `level`, `weight`, `values`, `merge`"
    );
    assert_eq!(
        err("kind: ConfigMap\nmetadata: {name: a}\nspec: {}\n"),
        "config container c.yaml: kind: \"ConfigMap\" is not ConfigContainer; only config containers belong in these directories"
    );
    assert_eq!(
        err(
            "kind: ConfigContainer\nmetadata: {name: a}\nspec: {selector: {matchExpressions: [{key: env, operator: in, values: [a]}]}}\n"
        ),
        "config container c.yaml: spec.selector.matchExpressions[0]: operator \"in\" is not In, NotIn, Exists or DoesNotExist (container a)"
    );
    assert_eq!(
        err(
            "kind: ConfigContainer\nmetadata: {name: a}\nspec: {selector: {matchExpressions: [{key: env, operator: In}]}}\n"
        ),
        "config container c.yaml: spec.selector.matchExpressions[0]: operator In needs at least one value (container a)"
    );
    assert_eq!(
        err("kind: ConfigContainer\nmetadata: {name: a}\nspec: {merge: {/x: concat}}\n"),
        "config container c.yaml: spec.merge./x: \"concat\" is not a strategy; use deep or replace (maps), replace, append, unique or merge-by-key:<field> (lists) (container a)"
    );
    let levels = vec!["global".to_owned(), "site".to_owned()];
    let errors = Composer::new(
        parse(&[doc("a", "  level: plant"), doc("a", "  level: site")].concat()),
        &levels,
    )
    .expect_err("refused");
    let messages: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        messages,
        [
            "config container test.yaml#1: spec.level: \"plant\" is not one of the levels [global, site] (container a); fix the level or pass --levels",
            "config container test.yaml#2: metadata.name: a is also the name of the container in test.yaml#1; names must be unique",
        ]
    );
}

#[test]
fn labels_from_two_sources_must_agree() {
    let mut l = Labels::default();
    l.add("the pod's labels", [("app".to_owned(), "shop".to_owned())])
        .expect("first");
    l.add(
        "the host's labels",
        [
            ("app".to_owned(), "shop".to_owned()),
            ("site".to_owned(), "a".to_owned()),
        ],
    )
    .expect("agreeing");
    let err = l
        .add("--labels", [("site".to_owned(), "b".to_owned())])
        .expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "label site is \"a\" in the host's labels and \"b\" in --labels; an instance's labels must agree"
    );
    assert_eq!(
        parse_labels("--labels", " app=shop , env=qa,").expect("parses"),
        [("app".into(), "shop".into()), ("env".into(), "qa".into())]
    );
    assert!(parse_labels("--labels", "app").is_err());
    assert_eq!(
        parse_labels_file("labels", "app=\"shop\"\nteam=\"a \\\"b\\\"\"\n").expect("downward API"),
        [
            ("app".into(), "shop".into()),
            ("team".into(), "a \"b\"".into())
        ]
    );
    assert_eq!(
        parse_labels_file("labels", "app: shop\nline: 1\n").expect("yaml"),
        [("app".into(), "shop".into()), ("line".into(), "1".into())]
    );
}

#[test]
fn a_label_conflict_is_an_error_unless_a_side_is_chosen_to_win() {
    let host = || [("site".to_owned(), "a".to_owned())];
    let app = || {
        [
            ("site".to_owned(), "b".to_owned()),
            ("app".to_owned(), "x".to_owned()),
        ]
    };
    let mut refuse = Labels::default();
    refuse.add("host", host()).expect("host");
    assert!(refuse.add_with("pod", app(), OnConflict::Error).is_err());
    let mut keep = Labels::default();
    keep.add("host", host()).expect("host");
    keep.add_with("pod", app(), OnConflict::Keep)
        .expect("host wins");
    assert_eq!(keep.map(), &labels(&[("app", "x"), ("site", "a")]));
    let mut replace = Labels::default();
    replace.add("host", host()).expect("host");
    replace
        .add_with("pod", app(), OnConflict::Replace)
        .expect("pod wins");
    assert_eq!(replace.map(), &labels(&[("app", "x"), ("site", "b")]));
}

#[test]
fn every_value_knows_who_set_it_and_whom_it_overrode() {
    let yaml = [
        doc("global", "  level: global\n  values: {A: 1, B: {x: 1}}"),
        doc("region", "  level: region\n  values: {A: 2}"),
        doc("site", "  level: site\n  values: {A: 3, B: {y: 2}}"),
    ]
    .concat();
    let snapshot = composer(&yaml).compose(&BTreeMap::new()).expect("composes");
    let lines: Vec<String> = snapshot.explain().iter().map(|e| e.to_string()).collect();
    assert_eq!(
        lines,
        [
            "/A = 3  (set by site; overrode global, region)",
            "/B/x = 1  (set by global)",
            "/B/y = 2  (set by site)",
        ]
    );
}

#[test]
fn schema_violations_name_the_pointer_the_keyword_and_the_container() {
    let yaml = [
        doc(
            "global",
            "  level: global\n  values: {QueryIntervalSec: 30, module: {}}",
        ),
        doc(
            "site-atlantida",
            "  level: site\n  values: {QueryIntervalSec: \"911\"}\n  merge: {/QueryIntervalSec: replace}",
        ),
    ]
    .concat();
    let snapshot = composer(&yaml).compose(&BTreeMap::new()).expect("composes");
    let schema = Schema::compile(
        Path::new("schema.json"),
        &json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "QueryIntervalSec": {"type": "integer"},
                "module": {"type": "object", "required": ["drop-threshold"]}
            },
            "required": ["ENVIRONMENT", "module"]
        }),
    )
    .expect("compiles");
    let lines: Vec<String> = schema
        .violations(&snapshot)
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert_eq!(
        lines,
        [
            "/ENVIRONMENT: \"ENVIRONMENT\" is a required property (required; required by the schema, set by no container)",
            "/QueryIntervalSec: \"911\" is not of type \"integer\" (type; set by site-atlantida)",
            "/module/drop-threshold: \"drop-threshold\" is a required property (required; required by the schema, set by no container)",
        ]
    );
    let err = schema.check(&snapshot).expect_err("invalid").to_string();
    assert!(
        err.starts_with("the snapshot does not satisfy the schema schema.json:\n  /ENVIRONMENT"),
        "{err}"
    );
}

#[test]
fn a_2020_12_schema_is_read_as_one() {
    let schema = Schema::compile(
        Path::new("s.json"),
        &json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"servers": {"type": "array", "prefixItems": [{"type": "string"}]}}
        }),
    )
    .expect("compiles");
    let snapshot = composer(&doc("g", "  values: {servers: [1]}"))
        .compose(&BTreeMap::new())
        .expect("composes");
    let violations = schema.violations(&snapshot);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].pointer, "/servers/0");
    assert_eq!(violations[0].keyword, "type");
    assert_eq!(violations[0].containers, ["g"]);
    assert!(Schema::compile(Path::new("bad.json"), &json!({"type": "nope"})).is_err());
}

#[test]
fn the_version_is_the_sha256_of_the_canonical_json() {
    // RFC 8785: keys sorted, no whitespace, numbers in their shortest form.
    let value = json!({"b": 1.0, "a": [true, "x"]});
    assert_eq!(
        version_of(&value),
        version_of(&json!({"a": [true, "x"], "b": 1}))
    );
    // sha256 of `{"a":[true,"x"],"b":1}`, computed with coreutils' sha256sum.
    assert_eq!(
        version_of(&value),
        "f15ef113d6e0c876b9ea9e90ebc36ad3f8b350d44634ba2fc407e978fb8cebeb"
    );
}

#[test]
fn a_container_changes_the_version_of_exactly_the_snapshots_it_applies_to() {
    let base = [
        doc("global", "  level: global\n  values: {A: 1}"),
        doc(
            "site-a",
            "  level: site\n  selector: {matchLabels: {site: a}}\n  values: {S: a}",
        ),
        doc(
            "site-b",
            "  level: site\n  selector: {matchLabels: {site: b}}\n  values: {S: b}",
        ),
    ]
    .concat();
    let changed = base.replace("values: {S: a}", "values: {S: a2}");
    let versions = |yaml: &str| -> Vec<String> {
        let c = composer(yaml);
        ["a", "b", "c"]
            .iter()
            .map(|s| {
                c.compose(&labels(&[("site", s)]))
                    .expect("composes")
                    .version()
                    .to_owned()
            })
            .collect()
    };
    let (before, after) = (versions(&base), versions(&changed));
    assert_ne!(before[0], after[0], "site a's snapshot changed");
    assert_eq!(before[1..], after[1..], "the others did not");
}

#[test]
fn the_formats_write_what_apps_read() {
    let yaml = doc(
        "g",
        "  values: {FACTORY_NAME: Atlantida, QueryIntervalSec: 911, module: {drop-threshold: 0.5}, servers: [a, b]}",
    );
    let snapshot = composer(&yaml).compose(&BTreeMap::new()).expect("composes");
    let out = |format| {
        output::write(
            &snapshot,
            format,
            &Target {
                name: Some("platform-config"),
                namespace: Some("line1"),
            },
        )
        .expect("writes")
    };
    assert_eq!(
        out(Format::Properties),
        "FACTORY_NAME=Atlantida\nQueryIntervalSec=911\nmodule.drop-threshold=0.5\nservers[0]=a\nservers[1]=b\n"
    );
    assert_eq!(
        out(Format::Env),
        "FACTORY_NAME='Atlantida'\nQueryIntervalSec='911'\nmodule_drop_threshold='0.5'\nservers_0='a'\nservers_1='b'\n"
    );
    let cm = out(Format::ConfigMap);
    assert!(cm.contains("kind: ConfigMap\n"), "{cm}");
    assert!(cm.contains("  QueryIntervalSec: \"911\"\n"), "{cm}");
    assert!(
        cm.contains("  module: \"{\\\"drop-threshold\\\":0.5}\"\n"),
        "{cm}"
    );
    assert!(
        cm.contains(&format!(
            "hydrant.dev/config-version: {}",
            snapshot.version()
        )),
        "{cm}"
    );
    let collide = composer(&doc("g", "  values: {a-b: 1, a_b: 2}"))
        .compose(&BTreeMap::new())
        .expect("composes");
    let err = output::write(&collide, Format::Env, &Target::default()).expect_err("collision");
    assert_eq!(
        err.to_string(),
        "cannot write the snapshot as env: two values become variable a_b (values 1 and 2 in order); rename one of the keys"
    );
    let dotted = composer(&doc("g", "  values: {a.b: 1, a: {b: 2}}"))
        .compose(&BTreeMap::new())
        .expect("composes");
    let err =
        output::write(&dotted, Format::Properties, &Target::default()).expect_err("one key twice");
    assert!(
        err.to_string().contains("two values become property a.b"),
        "{err}"
    );
    let err = output::write(&snapshot, Format::ConfigMap, &Target::default()).expect_err("no name");
    assert_eq!(
        err.to_string(),
        "cannot write the snapshot as configmap: a ConfigMap needs a name: pass --name"
    );
}

/// A small random world of containers: levels, weights, selectors on two labels, values on
/// three keys with lists under strategies.
fn world() -> impl proptest::strategy::Strategy<Value = Vec<String>> {
    let one = (
        0usize..3,
        -2i64..3,
        prop::option::of(prop::sample::select(vec!["a", "b"])),
        0u8..4,
        prop::option::of(prop::sample::select(vec!["append", "unique", "replace"])),
    );
    prop::collection::vec(one, 1..8).prop_map(|items| {
        items
            .into_iter()
            .enumerate()
            .map(|(i, (level, weight, site, value, strategy))| {
                let level = ["global", "region", "site"][level];
                let selector = site.map_or(String::new(), |s| format!("  selector: {{matchLabels: {{site: {s}}}}}\n"));
                let merge = strategy.map_or(String::new(), |s| format!("  merge: {{/list: {s}}}\n"));
                format!(
                    "kind: ConfigContainer\nmetadata:\n  name: c{i}\nspec:\n  level: {level}\n  weight: {weight}\n{selector}{merge}  values: {{k{}: {value}, list: [{value}], m: {{x{value}: {i}}}}}\n",
                    value % 3
                )
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn the_snapshot_does_not_depend_on_the_order_of_documents(docs in world(), seed in any::<u64>()) {
        let mut shuffled = docs.clone();
        let mut rng = fastrand::Rng::with_seed(seed);
        rng.shuffle(&mut shuffled);
        for site in ["a", "b", "c"] {
            let l = labels(&[("site", site)]);
            let one = composer(&docs.join("---\n")).compose(&l).map(|s| (s.values().clone(), s.version().to_owned(), s.explain()));
            let two = composer(&shuffled.join("---\n")).compose(&l).map(|s| (s.values().clone(), s.version().to_owned(), s.explain()));
            prop_assert_eq!(one.map_err(|e| e.to_string()), two.map_err(|e| e.to_string()));
        }
    }
}
