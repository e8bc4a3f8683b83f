//! The preamble every entity shares, and name lookup.
//!
//! Every named entity (`site`, `cluster`, `registry`, `policy`, `stage`,
//! `project`, `app`) starts the same way: check the node against its shape,
//! read the name argument, check it is a DNS label, and declare it, reporting
//! a duplicate. [`declare`] does that; [`Lowerer::lower_named`] runs it over
//! every node of a top-level kind. `repo` and `image-updater`, of which an
//! estate has at most one, start with [`Lowerer::only_one`] instead.

use std::collections::HashMap;

use kdl::KdlNode;

use super::read::{Cx, Shape, code_list, suggest_owned};
use super::{Decl, Lowerer};
use crate::diagnostic::{Code, Label, Loc};
use crate::model::{PolicyId, ProjectId, RegistryId, SiteId, Spanned, StageId};
use crate::rules;

/// A named kind of node: what it is called, how its name is asked for, and
/// what it accepts.
pub(super) struct Kind {
    /// The node name, as written: `site`.
    pub(super) node: &'static str,
    /// The name argument, for the error when it is missing: "a site name".
    pub(super) what: &'static str,
    /// An example name argument, quoted: `"\"home-lab\""`.
    pub(super) example: &'static str,
    pub(super) shape: Shape<'static>,
}

/// A kind of node an estate has at most one of.
pub(super) struct Single {
    /// The node name, as written: `repo`.
    pub(super) node: &'static str,
    pub(super) shape: Shape<'static>,
    /// The label on the first node when a second one is reported, if any.
    pub(super) first_label: Option<&'static str>,
    /// What to do about a second one.
    pub(super) help: &'static str,
}

/// Name → id, with where the name was declared.
pub(super) struct Names<Id> {
    map: HashMap<String, (Id, Loc)>,
}

impl<Id: Copy> Names<Id> {
    pub(super) fn new() -> Self {
        Names {
            map: HashMap::new(),
        }
    }

    pub(super) fn get(&self, name: &str) -> Option<Id> {
        self.map.get(name).map(|(id, _)| *id)
    }

    pub(super) fn suggest(&self, name: &str) -> Option<&str> {
        let mut keys: Vec<&str> = self.map.keys().map(String::as_str).collect();
        keys.sort_unstable();
        suggest_owned(name, keys.into_iter())
    }

    pub(super) fn list(&self) -> String {
        let mut keys: Vec<&str> = self.map.keys().map(String::as_str).collect();
        keys.sort_unstable();
        if keys.is_empty() {
            return "none is defined".into();
        }
        let shown = code_list(keys.iter().take(8));
        let more = if keys.len() > 8 {
            format!(" and {} more", keys.len() - 8)
        } else {
            String::new()
        };
        format!("defined: {shown}{more}")
    }
}

/// The names of every kind an app may refer to.
pub(super) struct AllNames<'n> {
    pub(super) sites: &'n Names<SiteId>,
    pub(super) registries: &'n Names<RegistryId>,
    pub(super) policies: &'n Names<PolicyId>,
    pub(super) stages: &'n Names<StageId>,
    pub(super) projects: &'n Names<ProjectId>,
}

impl Lowerer<'_> {
    /// Declares every node of one named kind, in order, and lowers each one
    /// declared with `body` straight away. A node whose name is missing or
    /// taken is reported and left out, so the ids (`id(0)`, `id(1)`, …) count
    /// declared nodes only and match the positions in the returned vector.
    pub(super) fn lower_named<'a, Id: Copy, T>(
        &mut self,
        decls: Vec<Decl<'a>>,
        kind: &Kind,
        id: fn(u32) -> Id,
        mut body: impl FnMut(&mut Cx<'_>, &'a KdlNode, Spanned<String>, Id) -> T,
    ) -> (Vec<T>, Names<Id>) {
        let mut out = Vec::new();
        let mut names = Names::new();
        for (file, node) in decls {
            let mut cx = self.cx(file);
            let id = id(out.len() as u32);
            if let Some(name) = declare(&mut cx, node, kind, &mut names, id) {
                out.push(body(&mut cx, node, name, id));
            }
        }
        (out, names)
    }

    /// The first node of a kind the estate has at most one of, checked against
    /// its shape; every further one is reported.
    pub(super) fn only_one<'a>(&mut self, decls: &[Decl<'a>], single: &Single) -> Option<Decl<'a>> {
        let &(first_file, first) = decls.first()?;
        let node = single.node;
        for &(file, extra) in &decls[1..] {
            let mut cx = self.cx(file);
            let loc = cx.name_loc(extra);
            let d = cx.error(
                Code::DuplicateNode,
                loc,
                format!("the estate has more than one `{node}`"),
            );
            if let Some(text) = single.first_label {
                d.secondary.push(Label {
                    loc: Loc::new(first_file, first.name().span()),
                    text: Some(text.into()),
                });
            }
            d.help = Some(single.help.into());
        }
        self.cx(first_file)
            .check_shape(first, &format!("`{node}`"), &single.shape);
        Some((first_file, first))
    }
}

/// Checks a node against its kind's shape, then reads its name argument,
/// checks it, and records it under `id`. Returns the name, or `None` (reported)
/// when it is missing or already taken; an invalid name is reported but still
/// declared, so references to it do not pile up more errors.
pub(super) fn declare<Id: Copy>(
    cx: &mut Cx<'_>,
    node: &KdlNode,
    kind: &Kind,
    names: &mut Names<Id>,
    id: Id,
) -> Option<Spanned<String>> {
    let kind_name = kind.node;
    cx.check_shape(node, &format!("`{kind_name}`"), &kind.shape);
    let name = cx.req_arg_str(node, 0, kind.what, kind.example)?;
    if let Err(why) = rules::dns1123_label(&name.value) {
        let suggestion = rules::suggest_name(&name.value);
        let help = if suggestion.is_empty() {
            "use lowercase letters, digits and `-`".to_string()
        } else {
            format!("use lowercase letters, digits and `-`, e.g. `{suggestion}`")
        };
        cx.error(
            Code::InvalidName,
            name.loc,
            format!("`{}` is not a valid {kind_name} name: {why}", name.value),
        )
        .help = Some(help);
    }
    if let Some((_, first)) = names.map.get(&name.value) {
        let first = *first;
        let d = cx.error(
            Code::DuplicateName,
            name.loc,
            format!("{kind_name} `{}` is defined twice", name.value),
        );
        d.secondary.push(Label {
            loc: first,
            text: Some("first defined here".into()),
        });
        d.help = Some(format!(
            "rename one of them or merge them; {kind_name} names are unique in an estate"
        ));
        return None;
    }
    names.map.insert(name.value.clone(), (id, name.loc));
    Some(name)
}

/// The id a name refers to; reported (with a suggestion, or what is defined)
/// when there is none.
pub(super) fn resolve<Id: Copy>(
    cx: &mut Cx<'_>,
    names: &Names<Id>,
    name: &Spanned<String>,
    code: Code,
    kind: &str,
) -> Option<Spanned<Id>> {
    match names.get(&name.value) {
        Some(id) => Some(Spanned::new(id, name.loc)),
        None => {
            let help = match names.suggest(&name.value) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!(
                    "define it with `{kind} \"{}\" …`; {}",
                    name.value,
                    names.list()
                ),
            };
            cx.error(
                code,
                name.loc,
                format!("there is no {kind} `{}`", name.value),
            )
            .help = Some(help);
            None
        }
    }
}
