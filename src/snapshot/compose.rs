//! Composition: the containers that select an instance, in one total order, merged into a
//! snapshot whose every value knows the container that set it and the ones it overrode.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use super::container::{Container, Strategy};
use super::{Error, Snapshot};

/// The levels when none are given, lowest precedence first.
pub const DEFAULT_LEVELS: [&str; 5] = ["global", "region", "site", "line", "environment"];

/// Containers ready to compose: checked, ordered and indexed by the labels they require.
#[derive(Debug)]
pub struct Composer {
    /// In precedence order: a later container wins.
    containers: Vec<Container>,
    /// Containers (by position) that need a label pair, by that pair.
    index: HashMap<(String, String), Vec<usize>>,
    /// Containers that need no particular pair: looked at for every instance.
    unindexed: Vec<usize>,
}

impl Composer {
    /// Orders the containers by (level rank, weight, specificity, name), later winning, and
    /// indexes them. Unknown levels and duplicate names are errors, all reported.
    pub fn new(mut containers: Vec<Container>, levels: &[String]) -> Result<Composer, Vec<Error>> {
        let mut errors = Vec::new();
        let rank = |level: &Option<String>| -> Option<usize> {
            match level {
                None => Some(0),
                Some(l) => levels.iter().position(|x| x == l).map(|p| p + 1),
            }
        };
        for c in &containers {
            if let Some(level) = &c.level
                && rank(&c.level).is_none()
            {
                errors.push(Error::Container {
                    origin: c.origin.clone(),
                    message: format!(
                        "spec.level: {level:?} is not one of the levels [{}] (container {}); fix the level or pass --levels",
                        levels.join(", "),
                        c.name
                    ),
                });
            }
        }
        let mut by_name: BTreeMap<&str, &str> = BTreeMap::new();
        for c in &containers {
            if let Some(first) = by_name.insert(&c.name, &c.origin) {
                errors.push(Error::Container {
                    origin: c.origin.clone(),
                    message: format!(
                        "metadata.name: {} is also the name of the container in {first}; names must be unique",
                        c.name
                    ),
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        containers.sort_by(|a, b| {
            (rank(&a.level), a.weight, a.selector.specificity(), &a.name).cmp(&(
                rank(&b.level),
                b.weight,
                b.selector.specificity(),
                &b.name,
            ))
        });
        let mut index: HashMap<(String, String), Vec<usize>> = HashMap::new();
        let mut unindexed = Vec::new();
        for (i, c) in containers.iter().enumerate() {
            match c.selector.required_pairs() {
                Some(pairs) => {
                    for (k, v) in pairs {
                        index
                            .entry((k.to_owned(), v.to_owned()))
                            .or_default()
                            .push(i);
                    }
                }
                None => unindexed.push(i),
            }
        }
        Ok(Composer {
            containers,
            index,
            unindexed,
        })
    }

    /// The containers in precedence order.
    pub fn containers(&self) -> &[Container] {
        &self.containers
    }

    /// The containers that select an instance with these labels, in precedence order.
    pub fn selecting(&self, labels: &BTreeMap<String, String>) -> Vec<&Container> {
        let mut candidates: Vec<usize> = self.unindexed.clone();
        for (k, v) in labels {
            // The lookup key is owned: a map keyed by (String, String) cannot be probed with
            // borrowed halves.
            if let Some(found) = self.index.get(&(k.clone(), v.clone())) {
                candidates.extend_from_slice(found);
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates
            .into_iter()
            .map(|i| &self.containers[i])
            .filter(|c| c.selector.matches(labels))
            .collect()
    }

    /// Composes the snapshot of an instance with these labels.
    pub fn compose(&self, labels: &BTreeMap<String, String>) -> Result<Snapshot, Error> {
        let selected = self.selecting(labels);
        let mut root = Node::new_map(Origin::new(None));
        let mut strategies: HashMap<&str, (&Strategy, &Arc<str>)> = HashMap::new();
        for c in &selected {
            for (pointer, strategy) in &c.merge {
                strategies.insert(pointer, (strategy, &c.name));
            }
            let mut merge = Merge {
                container: &c.name,
                strategies: &strategies,
            };
            let Value::Map(map) = &mut root.value else {
                unreachable!("the root is a map");
            };
            merge.map(map, &c.values, &mut String::new())?;
        }
        Ok(Snapshot::new(
            root,
            labels.clone(),
            selected.iter().map(|c| c.name.clone()).collect(),
        ))
    }
}

/// A value of the snapshot with its provenance.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Who set it.
    pub origin: Origin,
}

/// A node's value: maps and lists hold nodes, so every element keeps its own provenance.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string, number, boolean or null (in a list).
    Scalar(Json),
    /// A map.
    Map(BTreeMap<String, Node>),
    /// A list.
    List(Vec<Node>),
}

/// Which container set a value, and which containers' values it replaced, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The container; `None` only for the snapshot's root.
    pub set_by: Option<Arc<str>>,
    /// The containers whose values at this place it overrode.
    pub overrode: Vec<Arc<str>>,
}

impl Origin {
    fn new(set_by: Option<&Arc<str>>) -> Origin {
        Origin {
            set_by: set_by.cloned(),
            overrode: Vec::new(),
        }
    }
}

impl Node {
    fn new_map(origin: Origin) -> Node {
        Node {
            value: Value::Map(BTreeMap::new()),
            origin,
        }
    }

    /// A node for a value a container sets where nothing was: a `null` in a map deletes
    /// nothing, so it is left out.
    fn from_json(json: &Json, by: &Arc<str>) -> Node {
        let value = match json {
            Json::Object(map) => Value::Map(
                map.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), Node::from_json(v, by)))
                    .collect(),
            ),
            Json::Array(items) => {
                Value::List(items.iter().map(|v| Node::from_json(v, by)).collect())
            }
            scalar => Value::Scalar(scalar.clone()),
        };
        Node {
            value,
            origin: Origin::new(Some(by)),
        }
    }

    /// The plain JSON value.
    pub fn to_json(&self) -> Json {
        match &self.value {
            Value::Scalar(v) => v.clone(),
            Value::Map(map) => {
                Json::Object(map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
            Value::List(items) => Json::Array(items.iter().map(Node::to_json).collect()),
        }
    }

    /// Every container that set something at or under this node, each once.
    pub fn contributors(&self) -> Vec<Arc<str>> {
        let mut set: Vec<Arc<str>> = Vec::new();
        self.walk(&mut |node| {
            if let Some(by) = &node.origin.set_by
                && !set.contains(by)
            {
                set.push(by.clone());
            }
        });
        set
    }

    /// The history a value replacing this node inherits: everything it held, oldest first.
    fn history(&self) -> Vec<Arc<str>> {
        let mut all = Vec::new();
        self.walk(&mut |node| {
            for c in node
                .origin
                .overrode
                .iter()
                .chain(node.origin.set_by.as_ref())
            {
                if !all.contains(c) {
                    all.push(c.clone());
                }
            }
        });
        all
    }

    fn walk(&self, f: &mut impl FnMut(&Node)) {
        f(self);
        match &self.value {
            Value::Scalar(_) => {}
            Value::Map(map) => map.values().for_each(|n| n.walk(f)),
            Value::List(items) => items.iter().for_each(|n| n.walk(f)),
        }
    }

    /// The node at a JSON pointer.
    pub fn at(&self, pointer: &str) -> Option<&Node> {
        let mut node = self;
        if pointer.is_empty() {
            return Some(node);
        }
        for token in pointer.strip_prefix('/')?.split('/') {
            let token = token.replace("~1", "/").replace("~0", "~");
            node = match &node.value {
                Value::Map(map) => map.get(&token)?,
                Value::List(items) => items.get(token.parse::<usize>().ok()?)?,
                Value::Scalar(_) => return None,
            };
        }
        Some(node)
    }

    fn kind(&self) -> &'static str {
        match &self.value {
            Value::Map(_) => "a map",
            Value::List(_) => "a list",
            Value::Scalar(v) => kind_of(v),
        }
    }
}

/// The name of a JSON value's type, for errors.
pub fn kind_of(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a map",
    }
}

/// One container's values being merged in.
struct Merge<'a> {
    container: &'a Arc<str>,
    /// The strategy in force at each pointer, and the container that declared it.
    strategies: &'a HashMap<&'a str, (&'a Strategy, &'a Arc<str>)>,
}

impl Merge<'_> {
    fn map(
        &mut self,
        base: &mut BTreeMap<String, Node>,
        overlay: &Map<String, Json>,
        pointer: &mut String,
    ) -> Result<(), Error> {
        for (key, value) in overlay {
            let len = pointer.len();
            pointer.push('/');
            pointer.push_str(&super::pointer_token(key));
            if value.is_null() {
                base.remove(key);
            } else if let Some(old) = base.get_mut(key) {
                self.value(old, value, pointer)?;
            } else {
                base.insert(key.clone(), Node::from_json(value, self.container));
            }
            pointer.truncate(len);
        }
        Ok(())
    }

    fn value(&mut self, old: &mut Node, new: &Json, pointer: &mut String) -> Result<(), Error> {
        let strategy = self.strategies.get(pointer.as_str()).copied();
        let same_kind = matches!(
            (&old.value, new),
            (Value::Map(_), Json::Object(_))
                | (Value::List(_), Json::Array(_))
                | (Value::Scalar(Json::Bool(_)), Json::Bool(_))
                | (Value::Scalar(Json::Number(_)), Json::Number(_))
                | (Value::Scalar(Json::String(_)), Json::String(_))
                | (Value::Scalar(Json::Null), _)
        );
        if !same_kind && !matches!(strategy, Some((Strategy::Replace, _))) {
            return Err(Error::TypeChange {
                pointer: pointer.clone(),
                from: old.kind(),
                set_by: old.origin.set_by.as_deref().unwrap_or("?").to_owned(),
                to: kind_of(new),
                container: self.container.to_string(),
            });
        }
        let mismatch =
            |strategy: &Strategy, declared_by: &Arc<str>, is: &'static str| Error::Strategy {
                pointer: pointer.clone(),
                strategy: strategy.to_string(),
                declared_by: declared_by.to_string(),
                is,
                container: self.container.to_string(),
            };
        match (&mut old.value, new) {
            (Value::Map(map), Json::Object(overlay)) => match strategy {
                None | Some((Strategy::Deep, _)) => self.map(map, overlay, pointer),
                Some((Strategy::Replace, _)) => {
                    self.replace(old, new);
                    Ok(())
                }
                Some((s, by)) => Err(mismatch(s, by, "a map")),
            },
            (Value::List(items), Json::Array(overlay)) => match strategy {
                None | Some((Strategy::Replace, _)) => {
                    self.replace(old, new);
                    Ok(())
                }
                Some((Strategy::Append, _)) => {
                    items.extend(overlay.iter().map(|v| Node::from_json(v, self.container)));
                    Ok(())
                }
                Some((Strategy::Unique, _)) => {
                    for v in overlay {
                        if !items.iter().any(|n| n.to_json() == *v) {
                            items.push(Node::from_json(v, self.container));
                        }
                    }
                    Ok(())
                }
                Some((Strategy::MergeByKey(field), _)) => {
                    for v in overlay {
                        let key = v.as_object().and_then(|o| o.get(field.as_str()));
                        let found = key.and_then(|key| {
                            items.iter().position(|n| match &n.value {
                                Value::Map(m) => {
                                    m.get(field.as_str()).is_some_and(|k| k.to_json() == *key)
                                }
                                _ => false,
                            })
                        });
                        match (found, v) {
                            (Some(i), Json::Object(element)) => {
                                let len = pointer.len();
                                pointer.push_str(&format!("/{i}"));
                                let Value::Map(target) = &mut items[i].value else {
                                    unreachable!("found among maps");
                                };
                                self.map(target, element, pointer)?;
                                pointer.truncate(len);
                            }
                            _ => items.push(Node::from_json(v, self.container)),
                        }
                    }
                    Ok(())
                }
                Some((s, by)) => Err(mismatch(s, by, "a list")),
            },
            _ => {
                if let Some((s, by)) = strategy
                    && *s != Strategy::Replace
                {
                    return Err(mismatch(s, by, old.kind()));
                }
                self.replace(old, new);
                Ok(())
            }
        }
    }

    fn replace(&self, old: &mut Node, new: &Json) {
        let history = old.history();
        let mut node = Node::from_json(new, self.container);
        // Every value under the replacement inherits the history of what was there.
        fn inherit(node: &mut Node, history: &[Arc<str>]) {
            node.origin.overrode = history.to_vec();
            match &mut node.value {
                Value::Scalar(_) => {}
                Value::Map(map) => map.values_mut().for_each(|n| inherit(n, history)),
                Value::List(items) => items.iter_mut().for_each(|n| inherit(n, history)),
            }
        }
        inherit(&mut node, &history);
        *old = node;
    }
}
