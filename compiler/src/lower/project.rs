//! `project`: an Argo CD AppProject apps can be put in with `project=`.

use kdl::KdlNode;

use super::declare::{Kind, Names};
use super::read::{Cx, Shape};
use super::{Decl, Lowerer};
use crate::diagnostic::Code;
use crate::model::{GroupKind, Project, ProjectId};
use crate::rules;

const PROJECT: Kind = Kind {
    node: "project",
    what: "a project name",
    example: "\"platform\"",
    shape: Shape {
        args: 1,
        props: &["description"],
        children: Some(&["source-repo", "cluster-resource", "deny-namespace-resource"]),
    },
};

impl Lowerer<'_> {
    pub(super) fn lower_projects(
        &mut self,
        decls: Vec<Decl<'_>>,
    ) -> (Vec<Project>, Names<ProjectId>) {
        self.lower_named(decls, &PROJECT, ProjectId, |cx, node, name, _| {
            if name.value == "default" {
                cx.error(Code::InvalidName, name.loc, "`default` is Argo CD's built-in project").help =
                    Some("give the project another name; apps use `default` with `project=\"default\"` without declaring it".into());
            }
            let description = cx.prop_str(node, "description").map(|d| d.value);
            let source_repos = source_repos(cx, node);
            let cluster_resource_whitelist = group_kinds(cx, node, "cluster-resource");
            let namespace_resource_blacklist = group_kinds(cx, node, "deny-namespace-resource");
            let loc = cx.node_loc(node);
            Project {
                name,
                description,
                source_repos,
                cluster_resource_whitelist,
                namespace_resource_blacklist,
                loc,
            }
        })
    }
}

/// Every `source-repo` child's URLs (`*` for any).
fn source_repos(cx: &mut Cx<'_>, node: &KdlNode) -> Vec<String> {
    let mut source_repos = Vec::new();
    for r in cx.children(node, "source-repo").collect::<Vec<_>>() {
        cx.check_shape(
            r,
            "`source-repo`",
            &Shape {
                args: usize::MAX,
                props: &[],
                children: Some(&[]),
            },
        );
        for url in cx.req_args_str(r, "a repository URL", "\"https://charts.example.com\"") {
            if url.value != "*" {
                if let Err(why) = rules::git_url(&url.value) {
                    cx.error(
                        Code::InvalidUrl,
                        url.loc,
                        format!("`{}` is not a repository URL: {why}", url.value),
                    )
                    .help = Some("write a git or Helm repository URL".into());
                }
            }
            source_repos.push(url.value);
        }
    }
    source_repos
}

/// Every `child` node's `group=`/`kind=`, sorted, each once.
fn group_kinds(cx: &mut Cx<'_>, node: &KdlNode, child: &str) -> Vec<GroupKind> {
    let mut out = Vec::new();
    for n in cx.children(node, child).collect::<Vec<_>>() {
        cx.check_shape(
            n,
            &format!("`{child}`"),
            &Shape {
                args: 0,
                props: &["group", "kind"],
                children: Some(&[]),
            },
        );
        let group = cx.prop_str(n, "group").map(|g| g.value).unwrap_or_default();
        if let Some(kind) = cx.req_prop_str(n, "kind", "\"Namespace\"") {
            out.push(GroupKind {
                group,
                kind: kind.value,
            });
        }
    }
    out.sort();
    out.dedup();
    out
}
