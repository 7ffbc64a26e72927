//! Composing config snapshots at a platform's scale: 10,000 containers (a global one, 10
//! regions, 200 sites, 2,000 lines, 5 environments, and 7,784 app-and-site containers, each
//! with a handful of typed values and some list strategies), 1,000 app instances, each
//! selected by five to seven of them (5.5 on average, printed at the start). One iteration
//! composes and versions all 1,000 snapshots.
//! Goal: under one second.

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hydrant::snapshot::container::{Selector, Term};
use hydrant::snapshot::{Composer, Container, DEFAULT_LEVELS, Strategy};
use serde_json::{Map, Value as Json, json};

const REGIONS: usize = 10;
const SITES: usize = 200;
const LINES: usize = 2_000;
const ENVS: [&str; 5] = ["dev", "qa", "stage", "prod", "lab"];
const APPS: usize = 40;
const CONTAINERS: usize = 10_000;
const INSTANCES: usize = 1_000;

fn container(
    name: String,
    level: &str,
    terms: Vec<Term>,
    values: Json,
    merge: &[(&str, Strategy)],
) -> Container {
    let Json::Object(values) = values else {
        unreachable!("values are maps")
    };
    Container {
        origin: format!("{name}.yaml"),
        name: name.into(),
        level: Some(level.to_owned()),
        weight: 0,
        selector: Selector { terms },
        values,
        merge: merge
            .iter()
            .map(|(p, s)| (p.to_string(), s.clone()))
            .collect(),
    }
}

fn eq(k: &str, v: String) -> Term {
    Term::Equals(k.to_owned(), v)
}

fn world() -> (Vec<Container>, Vec<BTreeMap<String, String>>) {
    let mut containers = vec![container(
        "global".into(),
        "global",
        vec![],
        json!({"QueryIntervalSec": 60, "TimeWindowShift": 0, "module": {"drop-threshold": 0.2, "retries": 3},
               "telemetry": {"endpoints": ["https://telemetry.example.com"]}, "features": ["base"]}),
        &[
            ("/telemetry/endpoints", Strategy::Append),
            ("/features", Strategy::Unique),
        ],
    )];
    for r in 0..REGIONS {
        containers.push(container(
            format!("region-{r}"),
            "region",
            vec![eq("region", format!("r{r}"))],
            json!({"REGION": format!("r{r}"), "telemetry": {"endpoints": [format!("https://telemetry.r{r}.example.com")]}}),
            &[],
        ));
    }
    for s in 0..SITES {
        containers.push(container(
            format!("site-{s}"),
            "site",
            vec![eq("site", format!("s{s}"))],
            json!({"FACTORY_NAME": format!("Factory {s}"), "QueryIntervalSec": 100 + s, "module": {"drop-threshold": 0.5},
                   "features": ["site", format!("s{s}")]}),
            &[],
        ));
    }
    for l in 0..LINES {
        containers.push(container(
            format!("line-{l}"),
            "line",
            vec![eq("site", format!("s{}", l % SITES)), eq("line", format!("l{l}"))],
            json!({"LINE_NAME_LOWER": format!("l{l}"), "LINE_NAME_UPPER": format!("L{l}"), "plc": {"address": format!("10.{}.{}.1", l / 250, l % 250), "port": 502}}),
            &[],
        ));
    }
    for e in ENVS {
        containers.push(container(
            format!("env-{e}"),
            "environment",
            vec![eq("env", e.to_owned())],
            json!({"ENVIRONMENT": e, "module": {"retries": null}}),
            &[],
        ));
    }
    let mut i = 0;
    while containers.len() < CONTAINERS {
        let (app, site) = (i % APPS, (i / APPS) % SITES);
        let envs: BTreeSet<String> = ENVS[..2 + i % 3].iter().map(|e| e.to_string()).collect();
        containers.push(container(
            format!("app-{app}-site-{site}-{i}"),
            "site",
            vec![eq("app", format!("a{app}")), eq("site", format!("s{site}")), Term::In("env".into(), envs)],
            json!({"app": {"replicas": 1 + i % 5, "endpoint": format!("https://a{app}.s{site}.example.com")},
                   "features": [format!("a{app}")]}),
            &[],
        ));
        i += 1;
    }
    let instances = (0..INSTANCES)
        .map(|n| {
            let line = (n * 7) % LINES;
            let site = line % SITES;
            BTreeMap::from([
                ("app".to_owned(), format!("a{}", n % APPS)),
                ("region".to_owned(), format!("r{}", site % REGIONS)),
                ("site".to_owned(), format!("s{site}")),
                ("line".to_owned(), format!("l{line}")),
                ("env".to_owned(), ENVS[n % 2 + 2].to_owned()),
            ])
        })
        .collect();
    (containers, instances)
}

fn bench(c: &mut Criterion) {
    let (containers, instances) = world();
    assert_eq!(containers.len(), CONTAINERS);
    let levels: Vec<String> = DEFAULT_LEVELS.iter().map(|l| l.to_string()).collect();
    let composer = Composer::new(containers.clone(), &levels).expect("valid world");
    let selected: usize = instances.iter().map(|l| composer.selecting(l).len()).sum();
    eprintln!(
        "{CONTAINERS} containers, {INSTANCES} instances, {:.1} containers per instance",
        selected as f64 / INSTANCES as f64
    );
    let mut group = c.benchmark_group("compose");
    group.sample_size(20);
    group.bench_function("order and index 10,000 containers", |b| {
        b.iter(|| Composer::new(black_box(containers.clone()), &levels).expect("valid"))
    });
    group.bench_function("1,000 snapshots over 10,000 containers", |b| {
        b.iter(|| {
            let mut versions = Map::new();
            for labels in &instances {
                let snapshot = composer.compose(black_box(labels)).expect("composes");
                versions.insert(snapshot.version().to_owned(), Json::Null);
            }
            versions
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
