//! Reading KDL nodes against a shape: which arguments, properties and children
//! a node takes, with typed getters that report what is wrong and never fail.

use kdl::{KdlEntry, KdlNode, KdlValue};

use crate::diagnostic::{Code, Diagnostic, Diagnostics, FileId, Loc};
use crate::model::Spanned;

/// The lowering context for one file.
pub(crate) struct Cx<'d> {
    pub file: FileId,
    pub diags: &'d mut Diagnostics,
}

/// `props` value for nodes whose properties are free-form (labels).
pub(crate) const ANY_PROPS: &[&str] = &["*"];

/// What a node accepts. Children listed here are checked for unknown names.
pub struct Shape<'a> {
    pub args: usize,
    pub props: &'a [&'a str],
    /// `None` means the node takes free-form children (parameter blocks).
    pub children: Option<&'a [&'a str]>,
}

impl Cx<'_> {
    pub fn loc(&self, span: miette::SourceSpan) -> Loc {
        Loc::new(self.file, span)
    }

    pub(crate) fn node_loc(&self, node: &KdlNode) -> Loc {
        self.loc(node.span())
    }

    pub(crate) fn name_loc(&self, node: &KdlNode) -> Loc {
        self.loc(node.name().span())
    }

    pub fn error(&mut self, code: Code, loc: Loc, message: impl Into<String>) -> &mut Diagnostic {
        self.diags.push(Diagnostic::error(code, loc, message));
        self.last()
    }

    pub fn warning(&mut self, code: Code, loc: Loc, message: impl Into<String>) -> &mut Diagnostic {
        self.diags.push(Diagnostic::warning(code, loc, message));
        self.last()
    }

    fn last(&mut self) -> &mut Diagnostic {
        self.diags.last_mut().expect("just pushed")
    }

    /// Checks a node's arguments, properties and children against its shape.
    pub(crate) fn check_shape(&mut self, node: &KdlNode, what: &str, shape: &Shape<'_>) {
        let mut seen_props: Vec<&str> = Vec::new();
        let mut arg_count = 0;
        for entry in node.entries() {
            match entry.name() {
                None => {
                    arg_count += 1;
                    if arg_count > shape.args {
                        let expected = match shape.args {
                            0 => "no arguments".to_string(),
                            1 => "one argument".to_string(),
                            n => format!("{n} arguments"),
                        };
                        let loc = self.loc(entry.span());
                        let help = if shape.props.is_empty() {
                            format!("remove it: {what} takes {expected}")
                        } else {
                            format!(
                                "remove it: {what} takes {expected}; settings are properties: {}",
                                code_list(shape.props.iter().map(|p| format!("{p}=")))
                            )
                        };
                        self.error(
                            Code::UnexpectedArgument,
                            loc,
                            format!("unexpected argument to {what}"),
                        )
                        .help = Some(help);
                    }
                }
                Some(key) => {
                    let key_name = key.value();
                    let loc = self.loc(entry.span());
                    if shape.props != ANY_PROPS && !shape.props.contains(&key_name) {
                        let d = self.error(
                            Code::UnknownProperty,
                            loc,
                            format!("unknown property `{key_name}` on {what}"),
                        );
                        d.help = Some(match suggest(key_name, shape.props) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None if shape.props.is_empty() => format!("{what} takes no properties"),
                            None => format!("{what} takes: {}", code_list(shape.props.iter())),
                        });
                    } else if seen_props.contains(&key_name) {
                        self.error(
                            Code::DuplicateNode,
                            loc,
                            format!("property `{key_name}` is given twice"),
                        )
                        .help = Some("remove one of them; KDL would silently keep the last".into());
                    }
                    seen_props.push(key_name);
                }
            }
            if let Some(ty) = entry.ty() {
                let loc = self.loc(ty.span());
                self.warning(
                    Code::IgnoredSetting,
                    loc,
                    "type annotations are ignored by keelson",
                )
                .help = Some("remove the `(…)` annotation".into());
            }
        }
        if let Some(ty) = node.ty() {
            let loc = self.loc(ty.span());
            self.warning(
                Code::IgnoredSetting,
                loc,
                "type annotations are ignored by keelson",
            )
            .help = Some("remove the `(…)` annotation".into());
        }
        if let (Some(allowed), Some(children)) = (shape.children, node.children()) {
            for child in children.nodes() {
                let name = child.name().value();
                if !allowed.contains(&name) {
                    let loc = self.name_loc(child);
                    let d = self.error(
                        Code::UnknownNode,
                        loc,
                        format!("unknown node `{name}` in {what}"),
                    );
                    d.help = Some(match suggest(name, allowed) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None if allowed.is_empty() => {
                            format!("{what} has no children; remove the `{{ … }}` block")
                        }
                        None => format!("{what} may contain: {}", code_list(allowed.iter())),
                    });
                }
            }
        }
    }

    // ---- arguments ----------------------------------------------------

    pub fn arg<'n>(&self, node: &'n KdlNode, index: usize) -> Option<&'n KdlEntry> {
        node.entries()
            .iter()
            .filter(|e| e.name().is_none())
            .nth(index)
    }

    pub fn args<'n>(&self, node: &'n KdlNode) -> impl Iterator<Item = &'n KdlEntry> {
        node.entries().iter().filter(|e| e.name().is_none())
    }

    /// A required string argument; `what` names it in the error ("a site name").
    pub(crate) fn req_arg_str(
        &mut self,
        node: &KdlNode,
        index: usize,
        what: &str,
        example: &str,
    ) -> Option<Spanned<String>> {
        match self.arg(node, index) {
            Some(entry) => self.entry_str(entry, what),
            None => {
                let loc = self.name_loc(node);
                let name = node.name().value();
                self.error(Code::MissingValue, loc, format!("`{name}` needs {what}"))
                    .help = Some(format!("write it as an argument: `{name} {example}`"));
                None
            }
        }
    }

    /// Every argument, each of which must be a string; at least one.
    pub(crate) fn req_args_str(
        &mut self,
        node: &KdlNode,
        what: &str,
        example: &str,
    ) -> Vec<Spanned<String>> {
        let entries: Vec<&KdlEntry> = self.args(node).collect();
        if entries.is_empty() {
            let loc = self.name_loc(node);
            let name = node.name().value();
            self.error(Code::MissingValue, loc, format!("`{name}` needs {what}"))
                .help = Some(format!("write them as arguments: `{name} {example}`"));
        }
        entries
            .into_iter()
            .filter_map(|e| self.entry_str(e, what))
            .collect()
    }

    pub(crate) fn entry_str(&mut self, entry: &KdlEntry, what: &str) -> Option<Spanned<String>> {
        let loc = self.loc(entry.span());
        match entry.value() {
            KdlValue::String(s) => Some(Spanned::new(s.clone(), loc)),
            other => {
                self.error(
                    Code::WrongType,
                    loc,
                    format!("{what} must be a string, not {}", type_name(other)),
                )
                .help = Some(format!("quote it: `\"{}\"`", plain(other)));
                None
            }
        }
    }

    // ---- properties ---------------------------------------------------

    pub fn prop<'n>(&self, node: &'n KdlNode, key: &str) -> Option<&'n KdlEntry> {
        // The last one wins, as in KDL; duplicates were reported by check_shape.
        node.entries()
            .iter()
            .rev()
            .find(|e| e.name().is_some_and(|n| n.value() == key))
    }

    pub(crate) fn prop_str(&mut self, node: &KdlNode, key: &str) -> Option<Spanned<String>> {
        let entry = self.prop(node, key)?;
        self.entry_str(entry, &format!("`{key}`"))
    }

    pub(crate) fn req_prop_str(
        &mut self,
        node: &KdlNode,
        key: &str,
        example: &str,
    ) -> Option<Spanned<String>> {
        if self.prop(node, key).is_none() {
            let loc = self.name_loc(node);
            let name = node.name().value();
            self.error(
                Code::MissingValue,
                loc,
                format!("`{name}` needs the property `{key}`"),
            )
            .help = Some(format!("add `{key}={example}`"));
            return None;
        }
        self.prop_str(node, key)
    }

    pub(crate) fn prop_bool(&mut self, node: &KdlNode, key: &str) -> Option<Spanned<bool>> {
        let entry = self.prop(node, key)?;
        let loc = self.loc(entry.span());
        match entry.value() {
            KdlValue::Bool(b) => Some(Spanned::new(*b, loc)),
            KdlValue::String(s) if s == "true" || s == "false" => {
                self.error(
                    Code::WrongType,
                    loc,
                    format!("`{key}` must be a boolean, not a string"),
                )
                .help = Some(format!(
                    "write `{key}=#{s}` (KDL 2 booleans are `#true` and `#false`)"
                ));
                None
            }
            other => {
                self.error(
                    Code::WrongType,
                    loc,
                    format!("`{key}` must be a boolean, not {}", type_name(other)),
                )
                .help = Some(format!("write `{key}=#true` or `{key}=#false`"));
                None
            }
        }
    }

    /// A non-negative integer property no larger than `max`.
    pub(crate) fn prop_uint(
        &mut self,
        node: &KdlNode,
        key: &str,
        max: u64,
    ) -> Option<Spanned<u64>> {
        let entry = self.prop(node, key)?;
        self.entry_uint(entry, &format!("`{key}`"), max)
    }

    pub(crate) fn entry_uint(
        &mut self,
        entry: &KdlEntry,
        what: &str,
        max: u64,
    ) -> Option<Spanned<u64>> {
        let loc = self.loc(entry.span());
        match entry.value() {
            KdlValue::Integer(i) if *i >= 0 && (*i as u128) <= max as u128 => {
                Some(Spanned::new(*i as u64, loc))
            }
            KdlValue::Integer(i) => {
                self.error(
                    Code::InvalidValue,
                    loc,
                    format!("{what} is {i}, outside 0…{max}"),
                )
                .help = Some(format!("use a whole number from 0 to {max}"));
                None
            }
            other => {
                self.error(
                    Code::WrongType,
                    loc,
                    format!("{what} must be a whole number, not {}", type_name(other)),
                )
                .help = Some("write a number without quotes, e.g. `3`".into());
                None
            }
        }
    }

    // ---- children -----------------------------------------------------

    pub fn children<'n>(
        &self,
        node: &'n KdlNode,
        name: &'n str,
    ) -> impl Iterator<Item = &'n KdlNode> + 'n {
        node.children()
            .into_iter()
            .flat_map(|d| d.nodes())
            .filter(move |n| n.name().value() == name)
    }

    /// A child that may appear at most once.
    pub(crate) fn single_child<'n>(
        &mut self,
        node: &'n KdlNode,
        name: &str,
    ) -> Option<&'n KdlNode> {
        let mut found = node
            .children()
            .into_iter()
            .flat_map(|d| d.nodes())
            .filter(|n| n.name().value() == name);
        let first = found.next()?;
        for extra in found {
            let loc = self.name_loc(extra);
            let first_loc = self.name_loc(first);
            let d = self.error(Code::DuplicateNode, loc, format!("`{name}` is given twice"));
            d.secondary.push(crate::diagnostic::Label {
                loc: first_loc,
                text: Some("first given here".into()),
            });
            d.help = Some(format!("keep one `{name}`"));
        }
        Some(first)
    }
}

pub(crate) fn type_name(v: &KdlValue) -> &'static str {
    match v {
        KdlValue::String(_) => "a string",
        KdlValue::Integer(_) => "an integer",
        KdlValue::Float(_) => "a number",
        KdlValue::Bool(_) => "a boolean",
        KdlValue::Null => "#null",
    }
}

fn plain(v: &KdlValue) -> String {
    match v {
        KdlValue::String(s) => s.clone(),
        KdlValue::Integer(i) => i.to_string(),
        KdlValue::Float(f) => f.to_string(),
        KdlValue::Bool(b) => b.to_string(),
        KdlValue::Null => "null".into(),
    }
}

/// Names as a comma-separated list in backticks: `` `a`, `b` ``.
pub(crate) fn code_list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The closest candidate, if it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let mut best: Option<(&'a str, f64)> = None;
    for &c in candidates {
        let score = strsim::normalized_damerau_levenshtein(&word.to_ascii_lowercase(), c);
        let prefix = c.starts_with(word) || word.starts_with(c);
        let score = if prefix && word.len() >= 3 {
            score.max(0.8)
        } else {
            score
        };
        if score >= 0.6 && best.is_none_or(|(_, s)| score > s) {
            best = Some((c, score));
        }
    }
    best.map(|(c, _)| c)
}

/// Like [`suggest`] over owned names.
pub(crate) fn suggest_owned<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let list: Vec<&'a str> = candidates.collect();
    suggest(word, &list)
}

/// KDL values to JSON, for free-form `params { … }` blocks.
///
/// A child with one argument is a scalar, with several a list, with properties
/// or children an object.
pub(crate) fn params_to_json(
    cx: &mut Cx<'_>,
    node: &KdlNode,
) -> serde_json::Map<String, serde_json::Value> {
    let mut map = serde_json::Map::new();
    let Some(children) = node.children() else {
        return map;
    };
    for child in children.nodes() {
        let key = child.name().value().to_string();
        let loc = cx.name_loc(child);
        if map.contains_key(&key) {
            cx.error(
                Code::DuplicateName,
                loc,
                format!("parameter `{key}` is given twice"),
            )
            .help =
                Some("give each parameter once; for a list, write all values on one line".into());
            continue;
        }
        let args: Vec<serde_json::Value> = child
            .entries()
            .iter()
            .filter(|e| e.name().is_none())
            .map(|e| value_to_json(e.value()))
            .collect();
        let props: serde_json::Map<String, serde_json::Value> = child
            .entries()
            .iter()
            .filter_map(|e| {
                e.name()
                    .map(|n| (n.value().to_string(), value_to_json(e.value())))
            })
            .collect();
        let value = if child.children().is_some() {
            let mut obj = params_to_json(cx, child);
            obj.extend(props);
            serde_json::Value::Object(obj)
        } else if !props.is_empty() {
            if !args.is_empty() {
                cx.error(
                    Code::Conflict,
                    loc,
                    format!("parameter `{key}` has both values and properties"),
                )
                .help = Some("use either `key value…` or `key field=value…`".into());
            }
            serde_json::Value::Object(props)
        } else {
            match args.len() {
                0 => {
                    cx.error(
                        Code::MissingValue,
                        loc,
                        format!("parameter `{key}` has no value"),
                    )
                    .help = Some(format!("write `{key} VALUE`"));
                    continue;
                }
                1 => args.into_iter().next().expect("one"),
                _ => serde_json::Value::Array(args),
            }
        };
        map.insert(key, value);
    }
    map
}

fn value_to_json(v: &KdlValue) -> serde_json::Value {
    match v {
        KdlValue::String(s) => serde_json::Value::String(s.clone()),
        KdlValue::Integer(i) => i64::try_from(*i)
            .map(serde_json::Value::from)
            .unwrap_or_else(|_| serde_json::Value::String(i.to_string())),
        KdlValue::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or_else(|| serde_json::Value::String(f.to_string())),
        KdlValue::Bool(b) => serde_json::Value::Bool(*b),
        KdlValue::Null => serde_json::Value::Null,
    }
}
