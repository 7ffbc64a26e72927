//! consul-template templates (Go's text/template with consul-template's functions), as the
//! webhook checks them at admission and the agent prepares them: the one list of functions
//! hydrant runs, the ones it refuses and why, and the checks that bound what a template may cost.
//!
//! A template is parsed with Go's rules (the `gotmpl` crate); then every function it names must
//! be one hydrant runs, `{{template}}` calls must name defined templates and never form a cycle,
//! and the template fully expanded (each call replaced by what it calls) must stay small. The
//! pod author writes these templates, so these bounds are what keeps a 2 KB template from
//! costing 2^200 steps.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use gotmpl::parse::{
    ActionNode, BranchNode, CommandNode, Expr, ListNode, Node, Parser, PipeNode, SmolStr,
};

/// Go's text/template built-in functions.
pub const GO_BUILTINS: &[&str] = &[
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
    "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
];

/// consul-template's functions that hydrant runs, besides the `sprig_*` ones.
pub const FUNCTIONS: &[&str] = &[
    "secret",
    "secrets",
    "pkiCert",
    "scratch",
    "env",
    "mustEnv",
    "envOrDefault",
    "file",
    "writeToFile",
    "executeTemplate",
    "toJSON",
    "toJSONPretty",
    "toUnescapedJSON",
    "toUnescapedJSONPretty",
    "base64Decode",
    "base64Encode",
    "base64URLDecode",
    "base64URLEncode",
    "contains",
    "containsAll",
    "containsAny",
    "containsNone",
    "containsNotAll",
    "explodeMap",
    "mergeMap",
    "mergeMapWithOverride",
    "in",
    "indent",
    "loop",
    "join",
    "trim",
    "trimPrefix",
    "trimSuffix",
    "trimSpace",
    "parseBool",
    "parseFloat",
    "parseInt",
    "parseJSON",
    "parseUint",
    "parseYAML",
    "regexReplaceAll",
    "regexMatch",
    "replaceAll",
    "sha256Hex",
    "md5sum",
    "hmacSHA256Hex",
    "timestamp",
    "toLower",
    "toTitle",
    "toUpper",
    "toYAML",
    "toTOML",
    "split",
    "splitToMap",
    "add",
    "subtract",
    "multiply",
    "divide",
    "modulo",
    "minimum",
    "maximum",
];

/// The Sprig functions hydrant runs, each called as `sprig_<name>`.
pub const SPRIG_FUNCTIONS: &[&str] = &[
    // Strings.
    "hello",
    "trim",
    "upper",
    "lower",
    "title",
    "untitle",
    "substr",
    "trunc",
    "repeat",
    "trimAll",
    "trimall",
    "trimSuffix",
    "trimPrefix",
    "nospace",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "quote",
    "squote",
    "cat",
    "indent",
    "nindent",
    "replace",
    "plural",
    "toString",
    "split",
    "splitn",
    "splitList",
    "toStrings",
    "join",
    "sortAlpha",
    "abbrev",
    "abbrevboth",
    "initials",
    "wrap",
    "wrapWith",
    "swapcase",
    "camelcase",
    "snakecase",
    "kebabcase",
    // Lists.
    "list",
    "tuple",
    "append",
    "push",
    "mustAppend",
    "mustPush",
    "prepend",
    "mustPrepend",
    "first",
    "mustFirst",
    "last",
    "mustLast",
    "rest",
    "mustRest",
    "initial",
    "mustInitial",
    "reverse",
    "mustReverse",
    "uniq",
    "mustUniq",
    "compact",
    "mustCompact",
    "without",
    "mustWithout",
    "has",
    "mustHas",
    "concat",
    "chunk",
    "mustChunk",
    "until",
    "untilStep",
    "slice",
    "mustSlice",
    "seq",
    // Dicts.
    "dict",
    "get",
    "hasKey",
    "pluck",
    "keys",
    "values",
    "pick",
    "omit",
    "merge",
    "mustMerge",
    "mergeOverwrite",
    "mustMergeOverwrite",
    "dig",
    "deepCopy",
    "mustDeepCopy",
    // Defaults and flow.
    "default",
    "empty",
    "coalesce",
    "all",
    "any",
    "ternary",
    "fail",
    // Encodings.
    "b64enc",
    "b64dec",
    "b32enc",
    "b32dec",
    "toJson",
    "mustToJson",
    "toPrettyJson",
    "mustToPrettyJson",
    "toRawJson",
    "mustToRawJson",
    "fromJson",
    "mustFromJson",
    // Math.
    "add",
    "add1",
    "sub",
    "mul",
    "div",
    "mod",
    "max",
    "biggest",
    "min",
    "maxf",
    "minf",
    "int",
    "int64",
    "float64",
    "atoi",
    "floor",
    "ceil",
    "round",
    "addf",
    "add1f",
    "subf",
    "mulf",
    "divf",
    // Hashes.
    "sha1sum",
    "sha256sum",
    "adler32sum",
    // Crypto.
    "bcrypt",
    "htpasswd",
    "derivePassword",
    "encryptAES",
    "decryptAES",
    "genPrivateKey",
    "genCA",
    "genCAWithKey",
    "genSelfSignedCert",
    "genSelfSignedCertWithKey",
    "genSignedCert",
    "genSignedCertWithKey",
    "buildCustomCert",
    // Network.
    "getHostByName",
    // Regular expressions.
    "regexMatch",
    "mustRegexMatch",
    "regexFind",
    "mustRegexFind",
    "regexFindAll",
    "mustRegexFindAll",
    "regexReplaceAll",
    "mustRegexReplaceAll",
    "regexReplaceAllLiteral",
    "mustRegexReplaceAllLiteral",
    "regexSplit",
    "mustRegexSplit",
    "regexQuoteMeta",
    // URLs.
    "urlParse",
    "urlJoin",
    // Paths.
    "base",
    "dir",
    "clean",
    "ext",
    "isAbs",
    "osBase",
    "osDir",
    "osClean",
    "osExt",
    "osIsAbs",
    // Dates.
    "now",
    "date",
    "dateInZone",
    "date_in_zone",
    "htmlDate",
    "htmlDateInZone",
    "dateModify",
    "date_modify",
    "mustDateModify",
    "must_date_modify",
    "toDate",
    "mustToDate",
    "unixEpoch",
    "ago",
    "duration",
    "durationRound",
    // Types.
    "typeOf",
    "typeIs",
    "typeIsLike",
    "kindOf",
    "kindIs",
    "deepEqual",
    // Versions.
    "semver",
    "semverCompare",
    // Random values and the environment.
    "randAlphaNum",
    "randAlpha",
    "randNumeric",
    "randAscii",
    "uuidv4",
    "randInt",
    "randBytes",
    "shuffle",
    "env",
    "expandenv",
];

/// The methods of consul-template's `scratch`.
pub const SCRATCH_METHODS: &[&str] = &[
    "Key",
    "Get",
    "Set",
    "SetX",
    "MapSet",
    "MapSetX",
    "MapValues",
];

/// consul-template's functions that read Consul or Nomad, which have no meaning for a Vault
/// agent (OpenBao's agent does not have them either).
pub const CONSUL_ONLY: &[&str] = &[
    "byKey",
    "byMeta",
    "byPort",
    "byTag",
    "caLeaf",
    "caRoots",
    "connect",
    "datacenters",
    "explode",
    "exportedServices",
    "importedServices",
    "key",
    "keyExists",
    "keyOrDefault",
    "ls",
    "node",
    "nodes",
    "nomadService",
    "nomadServices",
    "nomadVar",
    "nomadVarExists",
    "nomadVarList",
    "nomadVarListSafe",
    "partitions",
    "peerings",
    "safeLs",
    "safeTree",
    "service",
    "services",
    "tree",
];

/// consul-template's functions that hydrant refuses for another reason, with that reason.
pub const REFUSED: &[(&str, &str)] = &[
    (
        "plugin",
        "it runs a program from the agent's container, which hydrant's agent never does for a template",
    ),
    (
        "sockaddr",
        "it reads the agent container's network interfaces, which a hydrant template cannot see; \
         pass the address in through the pod's environment and read it with env",
    ),
    (
        "spew_dump",
        "it prints Go's own types and pointers, which hydrant's values do not have; use toJSON",
    ),
    (
        "spew_sdump",
        "it prints Go's own types and pointers, which hydrant's values do not have; use toJSON",
    ),
    (
        "spew_printf",
        "it prints Go's own types and pointers, which hydrant's values do not have; use printf",
    ),
    (
        "spew_sprintf",
        "it prints Go's own types and pointers, which hydrant's values do not have; use printf",
    ),
    (
        "sprig_set",
        "it changes the dict it is given in place, which hydrant follows only in \
         {{ $_ := sprig_set $dict \"key\" value }} (the dict a variable, the result kept)",
    ),
    (
        "sprig_unset",
        "it changes the dict it is given in place, which hydrant follows only in \
         {{ $_ := sprig_unset $dict \"key\" }} (the dict a variable, the result kept)",
    ),
];

/// The name the agent gives a template's top level among its `{{define}}`s; no template may
/// define it.
pub const TOP_LEVEL: &str = "\u{0}top";

/// The most nodes a template may have once every `{{template}}` call is replaced by the
/// template it calls (a real template has a few hundred).
pub const MAX_EXPANDED_NODES: u64 = 100_000;

/// Whether hydrant runs a function of this name in consul-template templates.
pub fn is_function(name: &str) -> bool {
    GO_BUILTINS.contains(&name)
        || FUNCTIONS.contains(&name)
        || name
            .strip_prefix("sprig_")
            .is_some_and(|n| SPRIG_FUNCTIONS.contains(&n))
}

/// The internal function a `scratch.<Method>` call becomes: a name no template can spell (a
/// template's identifiers never hold a dot).
pub fn scratch_function(method: &str) -> String {
    format!("scratch.{method}")
}

/// Why a template cannot be run, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {} column {}: ", self.line, self.column)?;
        }
        f.write_str(&self.message)
    }
}

/// A template ready to run: its top level and its `{{define}}`s, with `scratch` method calls
/// turned into calls of internal functions.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The top level.
    pub top: ListNode,
    /// The named templates, by name.
    pub defines: BTreeMap<String, ListNode>,
    /// The largest number of nodes one `{{range}}` iteration runs: with the number of
    /// iterations, a bound on what executing the template costs.
    pub largest_range_body: u64,
}

impl Prepared {
    /// The same template with every `{{define}}` name and every `{{template}}` call prefixed
    /// by `prefix`, so that several templates live in one Go template set without their
    /// names meeting (the agent compiles all of a pod's templates into one set).
    pub fn with_prefix(mut self, prefix: &str) -> Prepared {
        rename(&mut self.top, prefix);
        self.defines = std::mem::take(&mut self.defines)
            .into_iter()
            .map(|(name, mut body)| {
                rename(&mut body, prefix);
                (format!("{prefix}{name}"), body)
            })
            .collect();
        self
    }
}

/// Prefixes every `{{template}}` call in `list`.
fn rename(list: &mut ListNode, prefix: &str) {
    for node in &mut list.nodes {
        match node {
            Node::List(inner) => rename(inner, prefix),
            Node::If(branch) | Node::With(branch) | Node::Range(branch) => {
                rename(&mut branch.body, prefix);
                if let Some(other) = &mut branch.else_body {
                    rename(other, prefix);
                }
            }
            Node::Template(call) => call.name = SmolStr::new(format!("{prefix}{}", call.name)),
            Node::Text(_)
            | Node::Action(_)
            | Node::Break(_)
            | Node::Continue(_)
            | Node::Define(_) => {}
        }
    }
}

/// Parses and checks a template. `left` and `right` are its delimiters (`{{`, `}}` when empty).
pub fn prepare(text: &str, left: &str, right: &str) -> Result<Prepared, Problem> {
    let left = if left.is_empty() { "{{" } else { left };
    let right = if right.is_empty() { "}}" } else { right };
    // gotmpl 0.6 stops at a stray {{end}} or {{else}} without a word and takes the end of the
    // text as the end of any open block, where Go refuses both. A sentinel action after the
    // text shows either: it must come back as the last node of the top level.
    let sentinel = format!("{left}\"\\x00{}\"{right}", &SENTINEL[1..]);
    let source = format!("{text}{sentinel}");
    let (mut top, defines) = Parser::new(&source, left, right)
        .and_then(Parser::parse)
        .map_err(|e| syntax_problem(&e))?;
    let closed = matches!(top.nodes.last(), Some(Node::Action(action))
        if matches!(action.pipe.commands.as_slice(), [command]
            if matches!(command.args.as_slice(), [Expr::String(_, s)] if s.as_ref() == SENTINEL)));
    if !closed {
        return Err(unbalanced(text, left, right));
    }
    top.nodes.pop();
    let mut named: BTreeMap<String, ListNode> = BTreeMap::new();
    for define in defines {
        let name = define.name.to_string();
        if name == TOP_LEVEL {
            return Err(problem(
                text,
                define.pos.offset,
                "this template name is reserved".to_owned(),
            ));
        }
        match named.get(&name) {
            // Go: a second non-empty definition in one parse is an error; an empty one is
            // dropped.
            Some(existing) if !existing.is_empty_tree() && !define.body.is_empty_tree() => {
                return Err(problem(
                    text,
                    define.pos.offset,
                    format!("multiple definition of template {name:?}"),
                ));
            }
            Some(existing) if !existing.is_empty_tree() => {}
            _ => {
                named.insert(name, define.body);
            }
        }
    }
    let mut check = Check {
        text,
        calls: BTreeMap::new(),
        range_bodies: Vec::new(),
        followed: None,
    };
    check.list(&mut top, TOP_LEVEL)?;
    for (name, body) in &mut named {
        check.list(body, name)?;
    }
    let sizes = expanded_sizes(text, &top, &named, &check.calls)?;
    let largest_range_body = check
        .range_bodies
        .iter()
        .map(|(body, calls)| {
            calls
                .iter()
                .map(|c| sizes.get(c).copied().unwrap_or(0))
                .fold(*body, u64::saturating_add)
        })
        .max()
        .unwrap_or(0);
    Ok(Prepared {
        top,
        defines: named,
        largest_range_body,
    })
}

/// Checks a template as the webhook does: [`prepare`], keeping only the verdict.
pub fn check(text: &str, left: &str, right: &str) -> Result<(), Problem> {
    prepare(text, left, right).map(drop)
}

/// The text of the sentinel action `prepare` appends.
const SENTINEL: &str = "\u{0}hydrant: end of template";

/// Where a template's blocks do not match: the first `{{end}}` or `{{else}}` with no block
/// open, or else the end of the text with a block still open.
fn unbalanced(text: &str, left: &str, right: &str) -> Problem {
    // Only the words matter here: the parser already accepted the actions.
    let mut depth: usize = 0;
    let mut rest = text;
    let mut offset = 0;
    while let Some(start) = rest.find(left) {
        let action_at = offset + start;
        let after = &rest[start + left.len()..];
        let Some(end) = after.find(right) else { break };
        let body = after[..end].trim_start_matches('-').trim();
        let word = body
            .split(|c: char| c.is_whitespace() || c == '(')
            .next()
            .unwrap_or("");
        match word {
            "if" | "range" | "with" | "define" | "block" => depth += 1,
            "end" if depth == 0 => {
                return problem(
                    text,
                    action_at,
                    "syntax error: unexpected {{end}}".to_owned(),
                );
            }
            "end" => depth -= 1,
            "else" if depth == 0 => {
                return problem(
                    text,
                    action_at,
                    "syntax error: unexpected {{else}}".to_owned(),
                );
            }
            _ => {}
        }
        let consumed = start + left.len() + end + right.len();
        offset += consumed;
        rest = &rest[consumed..];
    }
    problem(
        text,
        text.len(),
        "syntax error: unexpected EOF: a block ({{if}}, {{range}}, {{with}}, {{define}}) is not closed with {{end}}".to_owned(),
    )
}

fn syntax_problem(e: &gotmpl::TemplateError) -> Problem {
    match e {
        gotmpl::TemplateError::Parse {
            line, col, message, ..
        }
        | gotmpl::TemplateError::Lex {
            line, col, message, ..
        } => Problem {
            line: *line,
            column: *col,
            message: format!("syntax error: {message}"),
        },
        other => Problem {
            line: 0,
            column: 0,
            message: format!("syntax error: {other}"),
        },
    }
}

fn problem(text: &str, offset: usize, message: String) -> Problem {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    Problem {
        line,
        column,
        message,
    }
}

/// What the walk learns: the calls each template makes (with how many nodes it has besides),
/// and each range body.
struct Check<'a> {
    text: &'a str,
    /// For each template: its own node count and the templates it calls (once per call).
    calls: BTreeMap<String, (u64, Vec<String>)>,
    /// For each `{{range}}`: its body's own node count and the templates it calls.
    range_bodies: Vec<(u64, Vec<String>)>,
    /// Where the function is whose change in place the action being checked follows: there
    /// a [`FOLLOWED_ONLY`] function may be called.
    followed: Option<usize>,
}

impl Check<'_> {
    fn list(&mut self, list: &mut ListNode, owner: &str) -> Result<(), Problem> {
        let mut count = 0;
        let mut calls = Vec::new();
        self.nodes(list, &mut count, &mut calls)?;
        self.calls.insert(owner.to_owned(), (count, calls));
        Ok(())
    }

    fn nodes(
        &mut self,
        list: &mut ListNode,
        count: &mut u64,
        calls: &mut Vec<String>,
    ) -> Result<(), Problem> {
        let mut follow = Vec::new();
        for (i, node) in list.nodes.iter_mut().enumerate() {
            *count += 1;
            match node {
                Node::List(inner) => self.nodes(inner, count, calls)?,
                Node::Text(_) | Node::Break(_) | Node::Continue(_) | Node::Define(_) => {}
                Node::Action(action) => {
                    let followed = follow_in_place(&action.pipe);
                    self.followed = followed.as_ref().map(|(_, at)| *at);
                    let checked = self.pipe(&mut action.pipe, count);
                    self.followed = None;
                    checked?;
                    if let Some((assign, _)) = followed {
                        *count += 1;
                        follow.push((i + 1, assign));
                    }
                }
                Node::If(branch) | Node::With(branch) => self.branch(branch, count, calls)?,
                Node::Range(branch) => {
                    self.pipe(&mut branch.pipe, count)?;
                    let (mut body, mut body_calls) = (0, Vec::new());
                    self.nodes(&mut branch.body, &mut body, &mut body_calls)?;
                    *count += body;
                    calls.extend(body_calls.iter().cloned());
                    self.range_bodies.push((body, body_calls));
                    if let Some(other) = &mut branch.else_body {
                        self.nodes(other, count, calls)?;
                    }
                }
                Node::Template(call) => {
                    if let Some(pipe) = &mut call.pipe {
                        self.pipe(pipe, count)?;
                    }
                    calls.push(call.name.to_string());
                }
            }
        }
        for (at, assign) in follow.into_iter().rev() {
            list.nodes.insert(at, assign);
        }
        Ok(())
    }

    fn branch(
        &mut self,
        branch: &mut BranchNode,
        count: &mut u64,
        calls: &mut Vec<String>,
    ) -> Result<(), Problem> {
        self.pipe(&mut branch.pipe, count)?;
        self.nodes(&mut branch.body, count, calls)?;
        if let Some(other) = &mut branch.else_body {
            self.nodes(other, count, calls)?;
        }
        Ok(())
    }

    fn pipe(&mut self, pipe: &mut PipeNode, count: &mut u64) -> Result<(), Problem> {
        for command in &mut pipe.commands {
            self.command(command, count)?;
        }
        Ok(())
    }

    fn command(&mut self, command: &mut CommandNode, count: &mut u64) -> Result<(), Problem> {
        for expr in &mut command.args {
            *count += 1;
            self.expr(expr, count)?;
        }
        Ok(())
    }

    fn expr(&mut self, expr: &mut Expr, count: &mut u64) -> Result<(), Problem> {
        match expr {
            Expr::Identifier(pos, name) => self.function(pos.offset, name),
            Expr::Pipe(_, pipe) => self.pipe(pipe, count),
            Expr::Chain(pos, base, fields) => {
                if let Expr::Identifier(_, name) = base.as_ref()
                    && name.as_str() == "scratch"
                {
                    let method = fields.first().map(SmolStr::as_str).unwrap_or("");
                    if fields.len() != 1 || !SCRATCH_METHODS.contains(&method) {
                        return Err(problem(
                            self.text,
                            pos.offset,
                            format!(
                                "scratch has no method {method:?}; it has {}",
                                SCRATCH_METHODS.join(", ")
                            ),
                        ));
                    }
                    *expr = Expr::Identifier(*pos, SmolStr::new(scratch_function(method)));
                    return Ok(());
                }
                self.expr(base, count)
            }
            Expr::Dot(_)
            | Expr::Field(..)
            | Expr::Variable(..)
            | Expr::String(..)
            | Expr::Number(..)
            | Expr::Bool(..)
            | Expr::Nil(_) => Ok(()),
        }
    }

    fn function(&self, offset: usize, name: &str) -> Result<(), Problem> {
        if is_function(name) || self.followed == Some(offset) && FOLLOWED_ONLY.contains(&name) {
            return Ok(());
        }
        let message = if CONSUL_ONLY.contains(&name) {
            format!(
                "function {name:?} reads Consul or Nomad, which a Vault agent does not: hydrant \
                 (like OpenBao's agent) does not run it; read the value from Vault with secret"
            )
        } else if let Some((_, why)) = REFUSED.iter().find(|(n, _)| *n == name) {
            format!("function {name:?} is refused: {why}")
        } else if name.starts_with("sprig_") {
            format!(
                "function {name:?} is a Sprig function hydrant does not run; the README lists the \
                 ones it does"
            )
        } else {
            format!("function {name:?} not defined")
        };
        Err(problem(self.text, offset, message))
    }
}

/// The functions that change the map given as their first argument and return it (Go's maps
/// are references): consul-template's `mergeMap`, Sprig's `merge`, `set` and `unset`.
pub const IN_PLACE: &[&str] = &[
    "mergeMap",
    "mergeMapWithOverride",
    "sprig_merge",
    "sprig_mustMerge",
    "sprig_mergeOverwrite",
    "sprig_mustMergeOverwrite",
    "sprig_set",
    "sprig_unset",
];

/// The functions of [`IN_PLACE`] that are nothing but their change in place: run only where
/// hydrant follows it (see [`REFUSED`] elsewhere).
pub const FOLLOWED_ONLY: &[&str] = &["sprig_set", "sprig_unset"];

/// `{{ $d = $_ }}` to follow `{{ $_ := sprig_merge $d $src }}` (or `$src | sprig_merge $d`):
/// hydrant's values cannot be
/// changed in place, so the variable the template merged into is given the merged map, which
/// is what Go's change in place leaves in it. Only a variable (not a field such as `.Data.data`,
/// nor another name for the same map) sees the change.
fn follow_in_place(pipe: &PipeNode) -> Option<(Node, usize)> {
    // The merge must be the pipeline's last command, whose result is the merged map.
    let ([result], Some(command)) = (pipe.decl.as_slice(), pipe.commands.last()) else {
        return None;
    };
    let [
        Expr::Identifier(at, function),
        Expr::Variable(pos, target, fields),
        ..,
    ] = command.args.as_slice()
    else {
        return None;
    };
    if !IN_PLACE.contains(&function.as_str()) || !fields.is_empty() || target == result {
        return None;
    }
    let pos = *pos;
    let assign = Node::Action(ActionNode {
        pos,
        pipe: PipeNode {
            pos,
            decl: vec![target.clone()],
            commands: vec![CommandNode {
                pos,
                args: vec![Expr::Variable(pos, result.clone(), Vec::new())],
            }],
            is_assign: true,
        },
    });
    Some((assign, at.offset))
}

/// Each template's size with every call expanded; refuses an undefined callee, a cycle, and a
/// size past [`MAX_EXPANDED_NODES`].
fn expanded_sizes(
    text: &str,
    top: &ListNode,
    named: &BTreeMap<String, ListNode>,
    calls: &BTreeMap<String, (u64, Vec<String>)>,
) -> Result<BTreeMap<String, u64>, Problem> {
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    let mut visiting: BTreeSet<String> = BTreeSet::new();
    let at = |name: &str| {
        named
            .get(name)
            .map_or(top.pos.offset, |body| body.pos.offset)
    };
    // Depth-first, iteratively: a template's callees first, then itself.
    let mut roots: Vec<&String> = calls.keys().collect();
    roots.sort();
    for root in roots {
        let mut stack: Vec<(String, bool)> = vec![(root.clone(), false)];
        while let Some((name, done)) = stack.pop() {
            if sizes.contains_key(&name) {
                continue;
            }
            let Some((own, callees)) = calls.get(&name) else {
                return Err(problem(
                    text,
                    at(&name),
                    format!("template {name:?} is called but never defined"),
                ));
            };
            if done {
                visiting.remove(&name);
                let size = callees
                    .iter()
                    .map(|c| sizes.get(c).copied().unwrap_or(0))
                    .fold(*own, u64::saturating_add);
                if size > MAX_EXPANDED_NODES {
                    return Err(problem(
                        text,
                        at(&name),
                        format!(
                            "the template is too large once its {{{{template}}}} calls are \
                             expanded (more than {MAX_EXPANDED_NODES} nodes); call fewer templates"
                        ),
                    ));
                }
                sizes.insert(name, size);
                continue;
            }
            if !visiting.insert(name.clone()) {
                return Err(problem(
                    text,
                    at(&name),
                    format!(
                        "template {name:?} calls itself (through {{{{template}}}}); Go templates may not recurse here"
                    ),
                ));
            }
            stack.push((name.clone(), true));
            for callee in callees {
                if !sizes.contains_key(callee) {
                    if visiting.contains(callee) {
                        return Err(problem(
                            text,
                            at(callee),
                            format!(
                                "template {callee:?} calls itself (through {{{{template}}}}); Go templates may not recurse here"
                            ),
                        ));
                    }
                    stack.push((callee.clone(), false));
                }
            }
        }
    }
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> Problem {
        check(text, "", "").expect_err(text)
    }

    #[test]
    fn vault_k8s_default_templates_pass() {
        for text in [
            "{{ with secret \"secret/data/app\" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\n{{ end }}{{ end }}",
            "{{ with secret \"secret/data/app\" }}{{ .Data | printf \"%v\" }}{{ end }}",
            "{{- with secret \"pki/issue/r\" \"common_name=a\" -}}{{ .Data.certificate }}{{- end }}",
        ] {
            check(text, "", "").expect(text);
        }
    }

    #[test]
    fn consul_functions_are_refused_by_name_with_their_position() {
        let p = refused("line one\n  {{ key \"service/x\" }}");
        assert_eq!((p.line, p.column), (2, 6), "{p}");
        assert!(p.message.contains("\"key\""), "{p}");
        assert!(p.message.contains("Consul"), "{p}");
        let p = refused("{{ with service \"web\" }}{{ end }}");
        assert!(p.message.contains("\"service\""), "{p}");
    }

    #[test]
    fn unknown_and_refused_functions_are_named() {
        assert!(
            refused("{{ nosuch 1 }}")
                .message
                .contains("\"nosuch\" not defined")
        );
        assert!(refused("{{ plugin \"x\" }}").message.contains("refused"));
        assert!(refused("{{ sprig_nosuch }}").message.contains("Sprig"));
        // In arguments and nested pipelines too.
        assert!(refused("{{ len (nosuch) }}").message.contains("nosuch"));
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let p = refused("ok\n{{ with secret \"x\" }}");
        assert_eq!(p.line, 2, "{p}");
        assert!(p.message.starts_with("syntax error"), "{p}");
        let p = refused("{{ .X ");
        assert!(p.message.starts_with("syntax error"), "{p}");
        let p = refused("a\n{{ end }} b");
        assert_eq!((p.line, p.column), (2, 1), "{p}");
        assert!(p.message.contains("unexpected {{end}}"), "{p}");
        let p = refused("{{ else }}");
        assert!(p.message.contains("unexpected {{else}}"), "{p}");
        let p = refused("{{ define \"a\" }}x");
        assert!(p.message.contains("unexpected EOF"), "{p}");
    }

    #[test]
    fn delimiters_are_honoured() {
        check(
            "[[ with secret \"x\" ]][[ .Data ]][[ end ]] {{ not an action",
            "[[",
            "]]",
        )
        .expect("custom delimiters");
    }

    #[test]
    fn scratch_methods_become_internal_functions() {
        let prepared =
            prepare("{{ scratch.Set \"a\" 1 }}{{ scratch.Get \"a\" }}", "", "").expect("scratch");
        let Node::Action(action) = &prepared.top.nodes[0] else {
            panic!("an action");
        };
        assert!(matches!(
            &action.pipe.commands[0].args[0],
            Expr::Identifier(_, name) if name.as_str() == "scratch.Set"
        ));
        assert!(
            refused("{{ scratch.Nope \"a\" }}")
                .message
                .contains("no method")
        );
    }

    #[test]
    fn a_merge_into_a_variable_is_followed_by_its_assignment() {
        let assigned = |text: &str| -> Vec<(String, String)> {
            let prepared = prepare(text, "", "").expect(text);
            let mut found = Vec::new();
            let mut lists = vec![&prepared.top];
            while let Some(list) = lists.pop() {
                for node in &list.nodes {
                    match node {
                        Node::Action(a) if a.pipe.is_assign => {
                            if let [Expr::Variable(_, from, _)] = a.pipe.commands[0].args.as_slice()
                            {
                                found.push((a.pipe.decl[0].to_string(), from.to_string()));
                            }
                        }
                        Node::With(b) | Node::If(b) | Node::Range(b) => lists.push(&b.body),
                        _ => {}
                    }
                }
            }
            found
        };
        let pair = |a: &str, b: &str| vec![(a.to_owned(), b.to_owned())];
        assert_eq!(
            assigned("{{ $d := sprig_dict }}{{ $_ := sprig_merge $d (sprig_dict) }}"),
            pair("$d", "$_")
        );
        assert_eq!(
            assigned("{{ $d := 1 }}{{ with 1 }}{{ $r := sprig_dict | mergeMap $d }}{{ end }}"),
            pair("$d", "$r")
        );
        assert_eq!(
            assigned("{{ $d := 1 }}{{ $_ := sprig_set $d \"k\" 1 }}"),
            pair("$d", "$_")
        );
        // set and unset are run only there.
        for text in [
            "{{ sprig_set (sprig_dict) \"k\" 1 }}",
            "{{ $_ := sprig_set .Data \"k\" 1 }}",
            "{{ $d := 1 }}{{ $_ := sprig_unset $d \"k\" | len }}",
            "{{ $d := 1 }}{{ $_ := sprig_set $d \"k\" (sprig_set $d \"j\" 1) }}",
        ] {
            assert!(refused(text).message.contains("follows only"), "{text}");
        }
        // A field, the merge's result printed, or a merge that is not the last command: no.
        for text in [
            "{{ $_ := sprig_merge .Data (sprig_dict) }}",
            "{{ sprig_merge (sprig_dict) (sprig_dict) }}",
            "{{ $d := 1 }}{{ $_ := sprig_merge $d (sprig_dict) | len }}",
            "{{ $d := 1 }}{{ $d = sprig_merge $d (sprig_dict) }}",
        ] {
            assert_eq!(assigned(text), Vec::new(), "{text}");
        }
    }

    #[test]
    fn recursive_and_undefined_templates_are_refused() {
        let p = refused("{{ define \"a\" }}{{ template \"a\" }}{{ end }}{{ template \"a\" }}");
        assert!(p.message.contains("calls itself"), "{p}");
        let p = refused(
            "{{ define \"a\" }}{{ template \"b\" }}{{ end }}{{ define \"b\" }}{{ template \"a\" }}{{ end }}x",
        );
        assert!(p.message.contains("calls itself"), "{p}");
        let p = refused("{{ template \"missing\" }}");
        assert!(p.message.contains("never defined"), "{p}");
    }

    #[test]
    fn a_call_tree_that_doubles_each_level_is_refused() {
        // t0 calls t1 twice, t1 calls t2 twice ... 2^40 nodes expanded, 2 KB of text.
        let mut text = String::new();
        for i in 0..40 {
            text.push_str(&format!(
                "{{{{ define \"t{i}\" }}}}{{{{ template \"t{n}\" }}}}{{{{ template \"t{n}\" }}}}{{{{ end }}}}",
                n = i + 1
            ));
        }
        text.push_str("{{ define \"t40\" }}x{{ end }}{{ template \"t0\" }}");
        let p = refused(&text);
        assert!(p.message.contains("too large"), "{p}");
    }

    #[test]
    fn range_bodies_are_measured_with_what_they_call() {
        let prepared = prepare(
            "{{ define \"row\" }}{{ .a }}{{ .b }}{{ .c }}{{ end }}{{ range . }}{{ template \"row\" . }}{{ end }}",
            "",
            "",
        )
        .expect("fine");
        assert!(
            prepared.largest_range_body >= 4,
            "{}",
            prepared.largest_range_body
        );
    }

    #[test]
    fn a_prefix_renames_definitions_and_the_calls_to_them() {
        let prepared = prepare(
            "{{ define \"a\" }}{{ if 1 }}{{ template \"b\" }}{{ end }}{{ end }}{{ define \"b\" }}x{{ end }}{{ template \"a\" }}",
            "",
            "",
        )
        .expect("fine")
        .with_prefix("p:");
        assert_eq!(prepared.defines.keys().collect::<Vec<_>>(), ["p:a", "p:b"]);
        let Node::Template(call) = &prepared.top.nodes[0] else {
            panic!("a call")
        };
        assert_eq!(call.name.as_str(), "p:a");
        let Node::If(branch) = &prepared.defines["p:a"].nodes[0] else {
            panic!("an if")
        };
        assert!(matches!(&branch.body.nodes[0], Node::Template(c) if c.name.as_str() == "p:b"));
    }

    #[test]
    fn a_second_definition_of_a_template_is_refused() {
        let p = refused("{{ define \"a\" }}1{{ end }}{{ define \"a\" }}2{{ end }}");
        assert!(p.message.contains("multiple definition"), "{p}");
    }
}
