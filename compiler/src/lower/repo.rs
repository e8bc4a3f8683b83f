//! `repo`: the GitOps repository the estate generates, its branch, the
//! credentials Argo CD reads it with, and its `layout`.

use kdl::KdlNode;

use super::declare::Single;
use super::layout::{default_layout, lower_layout};
use super::read::{Cx, Shape};
use super::shared::parse_secret_ref;
use super::{Decl, Lowerer};
use crate::diagnostic::{Code, Diagnostic, Loc};
use crate::load::Loaded;
use crate::model::{Repo, SecretRef, Spanned};
use crate::rules;

const REPO: Single = Single {
    node: "repo",
    shape: Shape {
        args: 1,
        props: &["branch", "credentials"],
        children: Some(&["layout"]),
    },
    first_label: Some("first `repo` here"),
    help: "an estate generates one GitOps repository; keep one `repo`",
};

impl Lowerer<'_> {
    /// The estate's one `repo`; a placeholder (reported) when there is none.
    pub(super) fn lower_repo(&mut self, decls: &[Decl<'_>], loaded: &Loaded) -> Repo {
        let Some((file, node)) = self.only_one(decls, &REPO) else {
            return self.missing_repo(loaded);
        };
        let mut cx = self.cx(file);
        let loc = cx.node_loc(node);
        let url = cx
            .req_arg_str(
                node,
                0,
                "the repository URL",
                "\"https://github.com/acme/gitops.git\"",
            )
            .unwrap_or_else(|| Spanned::new(String::new(), loc));
        if !url.value.is_empty() {
            if let Err(why) = rules::git_url(&url.value) {
                cx.error(
                    Code::InvalidUrl,
                    url.loc,
                    format!("`{}` is not a git repository URL: {why}", url.value),
                )
                .help = Some("write an `https://…`, `ssh://…` or `git@host:path` URL".into());
            }
        }
        let branch = repo_branch(&mut cx, node);
        let credentials = repo_credentials(&mut cx, node);
        let layout = match cx.single_child(node, "layout") {
            Some(layout) => lower_layout(&mut cx, layout),
            None => default_layout(),
        };
        Repo {
            url,
            branch,
            credentials,
            layout,
            loc,
        }
    }

    /// Reports the missing `repo` at the start of the first file (or, when
    /// every file is empty, each empty file), and stands in for it so the
    /// rest of the estate is still checked.
    fn missing_repo(&mut self, loaded: &Loaded) -> Repo {
        let at = |file| Loc {
            file,
            offset: 0,
            len: 0,
        };
        let loc = at(loaded.files[0].file);
        // Every file parsed and none has a node: that is what to say, not
        // the first thing an estate lacks.
        let all_empty = loaded.files.len() == loaded.sources.len()
            && loaded.files.iter().all(|f| f.doc.nodes().is_empty());
        if all_empty {
            for f in &loaded.files {
                let source = loaded.sources.get(f.file);
                let what = if source.text.trim().is_empty() {
                    "is empty"
                } else {
                    "holds only comments"
                };
                self.diags.push(
                    Diagnostic::error(Code::EmptyFile, at(f.file), format!("the estate file `{}` {what}", source.name))
                        .with_help("an estate needs at least a `repo`, the GitOps repository to generate: `repo \"https://github.com/acme/gitops.git\" branch=\"main\"`; `keelson init DIR` writes a commented starter estate"),
                );
            }
        } else {
            self.diags.push(
                Diagnostic::error(Code::MissingValue, loc, "the estate has no `repo`")
                    .with_help("add the GitOps repository to generate: `repo \"https://github.com/acme/gitops.git\" branch=\"main\"`"),
            );
        }
        Repo {
            url: Spanned::new(String::new(), loc),
            branch: "main".into(),
            credentials: None,
            layout: default_layout(),
            loc,
        }
    }
}

/// `branch=`, `main` when absent or not a branch name (reported).
fn repo_branch(cx: &mut Cx<'_>, node: &KdlNode) -> String {
    match cx.prop_str(node, "branch") {
        Some(b) if b.value.trim().is_empty() || b.value.contains(char::is_whitespace) => {
            cx.error(Code::InvalidValue, b.loc, "`branch` must be a branch name")
                .help = Some("write e.g. `branch=\"main\"`".into());
            "main".to_string()
        }
        Some(b) => b.value,
        None => "main".to_string(),
    }
}

/// `credentials=`: the Secret Argo CD reads the repository with.
fn repo_credentials(cx: &mut Cx<'_>, node: &KdlNode) -> Option<Spanned<SecretRef>> {
    cx.prop_str(node, "credentials").and_then(|c| {
        let parsed = parse_secret_ref(&c.value);
        if parsed.is_none() {
            cx.error(
                Code::InvalidCredentials,
                c.loc,
                format!("`{}` is not the name of a Secret", c.value),
            )
            .help = Some("name the Argo CD repository Secret: `credentials=\"gitops-repo\"` or `\"argocd/gitops-repo\"`".into());
        }
        parsed.map(|p| Spanned::new(p, c.loc))
    })
}
