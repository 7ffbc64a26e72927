//! The functions a consul-template template may call: Go's built-ins (with a bound on the text
//! they build, and `printf "%T"`), consul-template's Vault functions, `scratch`, and the helpers.
//!
//! Errors never quote an argument: an argument may be computed from a secret.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use gotmpl::{FuncMap, Template, TemplateError, Value, ValueFunc};
use injector::consul_template::{SCRATCH_METHODS, scratch_function};

use super::{Context, json, key_values, string_arg, values};
use crate::template::{LimitedWriter, Request};

/// The most entries `scratch` may hold in one render, maps' entries included.
const MAX_SCRATCH_ENTRIES: usize = 100_000;

/// Every function, for one template.
pub(super) fn all(context: &Context) -> FuncMap {
    let mut map = FuncMap::new();
    // Go's built-ins that build text from any number of arguments: what they build is bounded
    // like an output, so that a loop cannot double a string until memory runs out.
    for name in ["print", "println"] {
        map.insert(name.into(), bounded_builtin(name, context.limit));
    }
    let printf = bounded_builtin("printf", context.limit);
    map.insert(
        "printf".into(),
        Arc::new(move |args: &[Value]| match type_verbs(args) {
            Some(args) => printf(&args),
            None => printf(args),
        }),
    );
    let c = context.clone();
    map.insert("secret".into(), Arc::new(move |args| secret(&c, args)));
    let c = context.clone();
    map.insert("secrets".into(), Arc::new(move |args| secrets(&c, args)));
    let c = context.clone();
    map.insert("pkiCert".into(), Arc::new(move |args| pki_cert(&c, args)));
    let c = context.clone();
    map.insert(
        "env".into(),
        Arc::new(move |args| {
            let name = one_string("env", args)?;
            Ok(Value::String(c.env.var(name).unwrap_or_default().into()))
        }),
    );
    let c = context.clone();
    map.insert(
        "mustEnv".into(),
        Arc::new(move |args| {
            let name = one_string("mustEnv", args)?;
            match c.env.var(name).filter(|v| !v.is_empty()) {
                Some(value) => Ok(Value::String(value.into())),
                None => Err(TemplateError::Exec(format!(
                    "required environment variable {name} is empty"
                ))),
            }
        }),
    );
    let c = context.clone();
    map.insert(
        "envOrDefault".into(),
        Arc::new(move |args| {
            let [name, default] = args else {
                return Err(TemplateError::Exec(
                    "envOrDefault takes two arguments, a name and a default".into(),
                ));
            };
            let name = string_arg("envOrDefault", name)?;
            let default = string_arg("envOrDefault", default)?;
            Ok(Value::String(
                c.env.var(name).unwrap_or_else(|| default.to_owned()).into(),
            ))
        }),
    );
    let c = context.clone();
    map.insert(
        "file".into(),
        Arc::new(move |args| {
            let path = one_string("file", args)?;
            let mut lookups = c.lock();
            crate::template::functions::read_watched(&mut lookups, path)
                .map(|text| Value::String(text.into()))
                .map_err(|message| TemplateError::Exec(format!("file: {message}")))
        }),
    );
    let c = context.clone();
    map.insert(
        "writeToFile".into(),
        Arc::new(move |args| write_to_file(&c, args)),
    );
    let c = context.clone();
    map.insert(
        "executeTemplate".into(),
        Arc::new(move |args| execute_template(&c, args)),
    );
    for (name, pretty, escape_html) in [
        ("toJSON", false, true),
        ("toJSONPretty", true, true),
        ("toUnescapedJSON", false, false),
        ("toUnescapedJSONPretty", true, false),
    ] {
        let limit = context.limit;
        map.insert(
            name.into(),
            Arc::new(move |args: &[Value]| {
                let [value] = args else {
                    return Err(TemplateError::Exec(format!("{name} takes one argument")));
                };
                let text = json::encode(name, value, pretty, escape_html)?;
                within(limit, name, Value::String(text.into()))
            }),
        );
    }
    map.insert(
        "scratch".into(),
        Arc::new(|_| {
            Err(TemplateError::Exec(
                "scratch is used through its methods, as in scratch.Set \"key\" value".into(),
            ))
        }),
    );
    super::helpers::register(&mut map, context);
    for method in SCRATCH_METHODS {
        let c = context.clone();
        map.insert(
            scratch_function(method),
            Arc::new(move |args| scratch(&c, method, args)),
        );
    }
    map
}

/// Go's built-in `name`, run through a template of its own so that what it builds is written
/// into a bounded buffer (gotmpl does not export its built-ins).
fn bounded_builtin(name: &'static str, limit: u64) -> ValueFunc {
    let by_arity: Mutex<HashMap<usize, Arc<Template>>> = Mutex::new(HashMap::new());
    Arc::new(move |args: &[Value]| {
        let template = {
            let mut cache = by_arity.lock().unwrap_or_else(|p| p.into_inner());
            match cache.get(&args.len()) {
                Some(template) => template.clone(),
                None => {
                    let call: String = (0..args.len())
                        .map(|i| format!(" (index .A {i})"))
                        .collect();
                    let template = Template::new("")
                        .parse(&format!("{{{{{name}{call}}}}}"))
                        .map(Arc::new)?;
                    cache.insert(args.len(), template.clone());
                    template
                }
            }
        };
        let data = values::map([("A", Value::List(args.iter().cloned().collect()))]);
        let mut out = LimitedWriter {
            buffer: Vec::new(),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            exceeded: false,
        };
        let result = template.execute(&mut out, &data);
        if out.exceeded {
            return Err(TemplateError::Exec(format!(
                "{name} built text longer than {limit} bytes, the limit of one file (limits.file_bytes)"
            )));
        }
        result?;
        let text = String::from_utf8(out.buffer)
            .map_err(|_| TemplateError::Exec(format!("{name} built text that is not UTF-8")))?;
        Ok(Value::String(text.into()))
    })
}

/// `printf`'s arguments with each `%T` (which gotmpl does not have) made a `%s` of the
/// argument's Go type name, as Go prints it; `None` when the format has no `%T`, or numbers its
/// arguments (`%[2]T`), which is left to gotmpl.
fn type_verbs(args: &[Value]) -> Option<Vec<Value>> {
    let (Value::String(format), rest) = args.split_first()? else {
        return None;
    };
    if !format.contains('T') {
        return None;
    }
    let mut out = String::with_capacity(format.len());
    let mut args: Vec<Value> = rest.to_vec();
    let mut next = 0;
    let mut changed = false;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '%' {
            continue;
        }
        while let Some(flag) = chars.next_if(|c| matches!(c, '+' | '-' | '#' | ' ' | '0')) {
            out.push(flag);
        }
        // A width or a precision of `*` takes an argument.
        for precision in [false, true] {
            if precision {
                match chars.next_if_eq(&'.') {
                    Some(dot) => out.push(dot),
                    None => break,
                }
            }
            if let Some(star) = chars.next_if_eq(&'*') {
                out.push(star);
                next += 1;
            }
            while let Some(digit) = chars.next_if(char::is_ascii_digit) {
                out.push(digit);
            }
        }
        match chars.next() {
            Some('[') => return None,
            Some('%') => out.push('%'),
            Some('T') => {
                match args.get_mut(next) {
                    Some(arg) => {
                        *arg = Value::String(super::helpers::go::type_name(arg).into());
                        out.push('s');
                        changed = true;
                    }
                    None => out.push('T'),
                }
                next += 1;
            }
            Some(verb) => {
                out.push(verb);
                next += 1;
            }
            None => {}
        }
    }
    changed.then(|| {
        args.insert(0, Value::String(out.into()));
        args
    })
}

/// Refuses text longer than an output may be.
pub(super) fn within(limit: u64, function: &str, value: Value) -> gotmpl::Result<Value> {
    match &value {
        Value::String(s) if s.len() as u64 > limit => Err(TemplateError::Exec(format!(
            "{function} built text longer than {limit} bytes, the limit of one file (limits.file_bytes)"
        ))),
        _ => Ok(value),
    }
}

/// The one string argument of `function`.
fn one_string<'a>(function: &str, args: &'a [Value]) -> gotmpl::Result<&'a str> {
    match args {
        [one] => string_arg(function, one),
        _ => Err(TemplateError::Exec(format!(
            "{function} takes one argument"
        ))),
    }
}

/// `secret PATH` reads, `secret PATH "k=v"...` writes.
fn secret(context: &Context, args: &[Value]) -> gotmpl::Result<Value> {
    let Some((path, rest)) = args.split_first() else {
        return Ok(Value::Nil);
    };
    let path = string_arg("secret", path)?;
    let params = key_values("secret", rest)?;
    if path.trim().trim_matches('/').is_empty() {
        return Err(TemplateError::Exec(
            "secret needs a Vault path, as in secret \"secret/data/app\"".into(),
        ));
    }
    let request = if rest.is_empty() {
        Request::read_consul(path)
    } else {
        Request::write(path, &params)
    };
    context.lookup(request, values::secret, Value::Nil)
}

/// `secrets PATH`: the keys under a path.
fn secrets(context: &Context, args: &[Value]) -> gotmpl::Result<Value> {
    let [path] = args else {
        return Err(TemplateError::Exec(
            "secrets takes one argument, the path to list".into(),
        ));
    };
    let path = string_arg("secrets", path)?;
    if path.is_empty() {
        return Ok(Value::List(Arc::from([])));
    }
    context.lookup(
        Request::list(path),
        values::keys,
        Value::List(Arc::from([])),
    )
}

/// `pkiCert PATH "k=v"...`: a certificate, from the destination while it is good.
fn pki_cert(context: &Context, args: &[Value]) -> gotmpl::Result<Value> {
    let Some((path, rest)) = args.split_first() else {
        return Ok(Value::Nil);
    };
    let path = string_arg("pkiCert", path)?;
    let params = key_values("pkiCert", rest)?;
    let destination = context.running().and_then(|r| r.destination);
    let request = Request::certificate(path, &params, destination.as_deref());
    context.lookup(request, values::certificate, Value::Nil)
}

/// The most files `writeToFile` may write in one render.
const MAX_WRITES: usize = 100;

/// The deepest `executeTemplate` may nest, and the most calls one render may make.
const MAX_EXECUTE_DEPTH: usize = 10;
const MAX_EXECUTE_CALLS: usize = 10_000;

/// `writeToFile PATH USER GROUP PERMS [FLAGS] CONTENT`: a file written beside the template's
/// destination. Unlike consul-template, which writes while rendering, the write waits until
/// the render is complete (an attempt without every secret writes nothing).
fn write_to_file(context: &Context, args: &[Value]) -> gotmpl::Result<Value> {
    let strings = args
        .iter()
        .map(|a| string_arg("writeToFile", a))
        .collect::<gotmpl::Result<Vec<&str>>>()?;
    let (path, user, group, perms, flags, content) = match strings.as_slice() {
        [path, user, group, perms, content] => (*path, *user, *group, *perms, "", *content),
        [path, user, group, perms, flags, content] => {
            (*path, *user, *group, *perms, *flags, *content)
        }
        _ => {
            return Err(TemplateError::Exec(
                "writeToFile takes a path, a user, a group, permissions, optional flags and the content".into(),
            ));
        }
    };
    let mode = u32::from_str_radix(perms, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            TemplateError::Exec(
                "writeToFile: the permissions are not an octal mode such as \"0640\"".into(),
            )
        })?;
    let target = std::path::Path::new(path);
    let destination = context.running().and_then(|r| r.destination);
    let Some(dir) = destination.as_deref().and_then(std::path::Path::parent) else {
        return Err(TemplateError::Exec(
            "writeToFile: this template has no destination, so no directory it may write in".into(),
        ));
    };
    let inside = target.is_absolute()
        && target.starts_with(dir)
        && target != dir
        && !target.components().any(|c| {
            matches!(
                c,
                std::path::Component::ParentDir | std::path::Component::CurDir
            )
        });
    if !inside {
        return Err(TemplateError::Exec(format!(
            "writeToFile: may write only under {} (the template's destination directory), by an absolute path without `..`",
            dir.display()
        )));
    }
    let mut lookups = context.lock();
    if lookups.writes.len() >= MAX_WRITES {
        return Err(TemplateError::Exec(format!(
            "writeToFile: at most {MAX_WRITES} files per render"
        )));
    }
    let mut content = content.as_bytes().to_vec();
    if flags.contains("newline") {
        content.push(b'\n');
    }
    lookups.writes.push(super::PendingWrite {
        path: target.to_owned(),
        allowed: dir.to_owned(),
        owner: (user.to_owned(), group.to_owned()),
        mode,
        append: flags.contains("append"),
        content,
    });
    Ok(Value::String("".into()))
}

/// `executeTemplate NAME [DATA]`: a named template's output, as text.
fn execute_template(context: &Context, args: &[Value]) -> gotmpl::Result<Value> {
    let (name, dot) = match args {
        [name] => (string_arg("executeTemplate", name)?, Value::Nil),
        [name, dot] => (string_arg("executeTemplate", name)?, dot.clone()),
        _ => {
            return Err(TemplateError::Exec(format!(
                "executeTemplate: wrong number of arguments, expected 1 or 2, but got {}",
                args.len()
            )));
        }
    };
    let Some(running) = context.running() else {
        return Err(TemplateError::Exec(
            "executeTemplate: no template is running".into(),
        ));
    };
    // The template's own definitions, under their names in the engine's set.
    let (template, name) = (running.template, format!("{}{name}", running.prefix));
    {
        let mut lookups = context.lock();
        lookups.executions += 1;
        if lookups.executions > MAX_EXECUTE_CALLS || lookups.execute_depth >= MAX_EXECUTE_DEPTH {
            return Err(TemplateError::Exec(format!(
                "executeTemplate: nested deeper than {MAX_EXECUTE_DEPTH} or called more than {MAX_EXECUTE_CALLS} times"
            )));
        }
        lookups.execute_depth += 1;
    }
    let mut out = LimitedWriter {
        buffer: Vec::new(),
        limit: usize::try_from(context.limit).unwrap_or(usize::MAX),
        exceeded: false,
    };
    let top = format!("{}{}", running.prefix, injector::consul_template::TOP_LEVEL);
    let result = if template.lookup(&name).is_some() && name != top {
        template.execute_template(&mut out, &name, &dot)
    } else {
        Err(TemplateError::Exec(
            "executeTemplate: no template of that name is defined".into(),
        ))
    };
    context.lock().execute_depth -= 1;
    if out.exceeded {
        return Err(TemplateError::Exec(format!(
            "executeTemplate built text longer than {} bytes, the limit of one file (limits.file_bytes)",
            context.limit
        )));
    }
    result?;
    String::from_utf8(out.buffer)
        .map(|text| Value::String(text.into()))
        .map_err(|_| TemplateError::Exec("executeTemplate built text that is not UTF-8".into()))
}

/// `scratch.<Method>`, consul-template's per-render scratch pad.
fn scratch(context: &Context, method: &str, args: &[Value]) -> gotmpl::Result<Value> {
    let mut lookups = context.lock();
    let pad = &mut lookups.scratch;
    let key = |i: usize| -> gotmpl::Result<String> {
        args.get(i)
            .map(|v| string_arg("scratch", v).map(str::to_owned))
            .unwrap_or_else(|| {
                Err(TemplateError::Exec(format!(
                    "scratch.{method}: too few arguments"
                )))
            })
    };
    let value = |i: usize| args.get(i).cloned().unwrap_or(Value::Nil);
    let entries: usize = pad
        .values()
        .map(|v| match v {
            Value::Map(m) => 1 + m.len(),
            _ => 1,
        })
        .sum();
    let full = || {
        TemplateError::Exec(format!(
            "scratch holds {MAX_SCRATCH_ENTRIES} entries, as many as one render may"
        ))
    };
    match method {
        "Key" => Ok(Value::Bool(pad.contains_key(&key(0)?))),
        "Get" => Ok(pad.get(&key(0)?).cloned().unwrap_or(Value::Nil)),
        "Set" | "SetX" => {
            let k = key(0)?;
            if method == "Set" || !pad.contains_key(&k) {
                if entries >= MAX_SCRATCH_ENTRIES {
                    return Err(full());
                }
                pad.insert(k, value(1));
            }
            Ok(Value::String("".into()))
        }
        "MapSet" | "MapSetX" => {
            let (k, mk) = (key(0)?, key(1)?);
            if entries >= MAX_SCRATCH_ENTRIES {
                return Err(full());
            }
            let slot = pad
                .entry(k)
                .or_insert_with(|| Value::Map(Arc::new(Default::default())));
            let Value::Map(map) = slot else {
                return Err(TemplateError::Exec(format!(
                    "scratch.{method}: the key holds a value that is not a map"
                )));
            };
            let map = Arc::make_mut(map);
            if method == "MapSet" || !map.contains_key(mk.as_str()) {
                map.insert(Arc::from(mk.as_str()), value(2));
            }
            Ok(Value::String("".into()))
        }
        "MapValues" => Ok(match pad.get(&key(0)?) {
            // A BTreeMap's values come sorted by key.
            Some(Value::Map(map)) => Value::List(map.values().cloned().collect()),
            _ => Value::List(Arc::from([])),
        }),
        _ => Err(TemplateError::Exec(format!(
            "scratch has no method {method}"
        ))),
    }
}
