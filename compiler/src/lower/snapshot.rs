//! `snapshot "./tags.json"`: tag data read from a file instead of a registry.

use std::path::{Component, Path, PathBuf};

use super::read::Shape;
use super::shared::relative_path;
use super::{Decl, Lowerer};
use crate::diagnostic::{Code, Label};
use crate::model::Spanned;

impl Lowerer<'_> {
    /// Every snapshot file, each once, as a path relative to the estate.
    pub(super) fn lower_snapshots(&mut self, decls: Vec<Decl<'_>>) -> Vec<Spanned<PathBuf>> {
        let mut out: Vec<Spanned<PathBuf>> = Vec::new();
        for (file, node) in decls {
            let mut cx = self.cx(file);
            cx.check_shape(
                node,
                "`snapshot`",
                &Shape {
                    args: 1,
                    props: &[],
                    children: None,
                },
            );
            let Some(path) = cx.req_arg_str(node, 0, "the snapshot file", "\"./tags.json\"") else {
                continue;
            };
            // `./tags.json` and `tags.json` are one file.
            let p: PathBuf = Path::new(&path.value)
                .components()
                .filter(|c| !matches!(c, Component::CurDir))
                .collect();
            if let Err(why) = relative_path(Path::new(&path.value)) {
                cx.error(
                    Code::InvalidPath,
                    path.loc,
                    format!("the snapshot path {why}"),
                )
                .help = Some(
                    "write a path relative to the estate directory, e.g. `\"./tags.json\"`".into(),
                );
                continue;
            }
            if p.extension().is_none_or(|x| x != "json") {
                cx.error(
                    Code::InvalidPath,
                    path.loc,
                    "a tag snapshot is a `.json` file",
                )
                .help = Some("name the JSON file of tags, e.g. `snapshot \"./tags.json\"`".into());
                continue;
            }
            if let Some(first) = out.iter().find(|s| s.value == p) {
                let first = first.loc;
                let d = cx.error(
                    Code::DuplicateNode,
                    path.loc,
                    format!("the snapshot `{}` is listed twice", path.value),
                );
                d.secondary.push(Label {
                    loc: first,
                    text: Some("first listed here".into()),
                });
                d.help = Some("remove one of them".into());
                continue;
            }
            out.push(Spanned::new(p, path.loc));
        }
        out
    }
}
