//! `stage`: a step of the release path. A stage takes images from the registry
//! (narrowed by `filter` policies) or promotes them from an upstream stage
//! (behind `gate` policies), and says how updates are written back.

use kdl::KdlNode;

use super::declare::{Kind, Names, resolve};
use super::policy::policy_refs;
use super::read::{Cx, Shape, suggest};
use super::shared::parse_secret_ref;
use super::{Decl, Lowerer};
use crate::diagnostic::{Code, Label};
use crate::model::{
    GitProvider, ImageUpdaterSettings, PolicyId, Spanned, Stage, StageId, StageSource, WriteBack,
};

const STAGE: Kind = Kind {
    node: "stage",
    what: "a stage name",
    example: "\"dev\"",
    shape: Shape {
        args: 1,
        props: &[],
        children: Some(&["promote-from", "gate", "filter", "write-back"]),
    },
};

impl Lowerer<'_> {
    /// Every stage. Stages promote from stages, so all are declared before
    /// any is lowered.
    pub(super) fn lower_stages(
        &mut self,
        decls: Vec<Decl<'_>>,
        policies: &Names<PolicyId>,
        iu: &ImageUpdaterSettings,
    ) -> (Vec<Stage>, Names<StageId>) {
        let (declared, names) = self.lower_named(decls, &STAGE, StageId, |cx, node, name, _| {
            (cx.file, node, name)
        });
        let mut out = Vec::new();
        for (file, node, name) in declared {
            let mut cx = self.cx(file);
            out.push(lower_stage(&mut cx, node, name, &names, policies, iu));
        }
        (out, names)
    }
}

fn lower_stage(
    cx: &mut Cx<'_>,
    node: &KdlNode,
    name: Spanned<String>,
    stages: &Names<StageId>,
    policies: &Names<PolicyId>,
    iu: &ImageUpdaterSettings,
) -> Stage {
    let loc = cx.node_loc(node);
    let promote = cx.single_child(node, "promote-from");
    let from = promote.and_then(|p| {
        cx.check_shape(
            p,
            "`promote-from`",
            &Shape {
                args: 1,
                props: &[],
                children: Some(&[]),
            },
        );
        let s = cx.req_arg_str(p, 0, "the upstream stage", "\"dev\"")?;
        resolve(cx, stages, &s, Code::UnknownStage, "stage")
    });
    let gates = policy_refs(cx, node, "gate", policies);
    let filters = policy_refs(cx, node, "filter", policies);
    if promote.is_none() {
        for g in cx.children(node, "gate").collect::<Vec<_>>() {
            let gl = cx.name_loc(g);
            cx.error(Code::Conflict, gl, "`gate` needs `promote-from`").help = Some(
                "gates decide promotion from an upstream stage; for registry tags use `filter`, or add `promote-from \"<upstream stage>\"`".into(),
            );
        }
    } else {
        for f in cx.children(node, "filter").collect::<Vec<_>>() {
            let fl = cx.name_loc(f);
            cx.error(Code::Conflict, fl, "`filter` has no effect in a stage that promotes").help = Some(
                "a promoted stage takes its upstream stage's images; use `gate` to decide promotion".into(),
            );
        }
    }
    let write_back = lower_write_back(cx, node, promote.is_some(), iu);
    let source = match (promote, from) {
        (Some(_), Some(from)) => StageSource::Promotion { from, gates },
        // The upstream did not resolve (reported); treat the stage as
        // tracking nothing further rather than inventing an edge.
        (Some(_), None) => StageSource::Registry {
            filters: Vec::new(),
        },
        (None, _) => StageSource::Registry { filters },
    };
    Stage {
        name,
        source,
        write_back,
        loc,
    }
}

/// The stage's `write-back`; without one, `pinned` for a stage that
/// promotes, else `git`.
fn lower_write_back(
    cx: &mut Cx<'_>,
    stage: &KdlNode,
    promotes: bool,
    iu: &ImageUpdaterSettings,
) -> Spanned<WriteBack> {
    let stage_loc = cx.node_loc(stage);
    let Some(node) = cx.single_child(stage, "write-back") else {
        let default = if promotes {
            WriteBack::Pinned
        } else {
            WriteBack::Git {
                branch: None,
                credentials: None,
            }
        };
        return Spanned::new(default, stage_loc);
    };
    cx.check_shape(
        node,
        "`write-back`",
        &Shape {
            args: 1,
            props: &["branch", "provider", "credentials"],
            children: Some(&[]),
        },
    );
    let loc = cx.node_loc(node);
    let Some(mode) = cx.req_arg_str(node, 0, "a mode", "\"git\"") else {
        return Spanned::new(WriteBack::Pinned, loc);
    };
    let settings = Settings {
        branch: cx.prop_str(node, "branch"),
        credentials: git_credentials(cx, node),
        provider: cx.prop_str(node, "provider"),
    };
    let wb = write_back_mode(cx, &mode, &settings, iu);
    check_settings_apply(cx, &wb, &mode, &settings, promotes);
    Spanned::new(wb, mode.loc)
}

/// The properties of a `write-back` node.
struct Settings {
    branch: Option<Spanned<String>>,
    credentials: Option<String>,
    provider: Option<Spanned<String>>,
}

/// `credentials=`: how Image Updater authenticates to git.
fn git_credentials(cx: &mut Cx<'_>, node: &KdlNode) -> Option<String> {
    cx.prop_str(node, "credentials").map(|c| {
        let valid = c.value == "repocreds"
            || c.value.strip_prefix("secret:").is_some_and(|r| parse_secret_ref(r).is_some());
        if !valid {
            cx.error(Code::InvalidCredentials, c.loc, format!("`{}` is not a git credentials reference", c.value)).help =
                Some("write `repocreds` (Argo CD's repository credentials), `secret:<name>` or `secret:<namespace>/<name>`".into());
        }
        c.value
    })
}

/// The write-back mode named by the argument; `pinned` when it is unknown
/// (reported).
fn write_back_mode(
    cx: &mut Cx<'_>,
    mode: &Spanned<String>,
    settings: &Settings,
    iu: &ImageUpdaterSettings,
) -> WriteBack {
    let modes = ["git", "pull-request", "argocd", "pinned"];
    match mode.value.as_str() {
        "git" => WriteBack::Git {
            branch: settings.branch.as_ref().map(|b| b.value.clone()),
            credentials: settings.credentials.clone(),
        },
        "pull-request" => pull_request(cx, mode, settings, iu),
        "argocd" => WriteBack::Argocd,
        "pinned" => WriteBack::Pinned,
        other => {
            let help = suggest(other, &modes).map_or_else(
                || "write one of `git`, `pull-request`, `argocd`, `pinned`".into(),
                |s| format!("did you mean `{s}`?"),
            );
            cx.error(
                Code::InvalidValue,
                mode.loc,
                format!("unknown write-back mode `{other}`"),
            )
            .help = Some(help);
            WriteBack::Pinned
        }
    }
}

/// `pull-request` write-back: needs Image Updater 1.2, a base branch and a
/// known provider.
fn pull_request(
    cx: &mut Cx<'_>,
    mode: &Spanned<String>,
    settings: &Settings,
    iu: &ImageUpdaterSettings,
) -> WriteBack {
    if iu.version.value.minor < 2 {
        let d = cx.error(
            Code::UnsupportedVersion,
            mode.loc,
            format!(
                "pull-request write-back needs Image Updater 1.2 or later; the estate targets {}",
                iu.version.value
            ),
        );
        d.secondary.push(Label {
            loc: iu.version.loc,
            text: Some("the targeted version".into()),
        });
        d.help = Some("set `image-updater version=\"1.3.0\"`, or use `write-back \"git\"`".into());
    }
    if let Some(b) = &settings.branch {
        if b.value.contains(':') {
            cx.error(Code::InvalidValue, b.loc, "in pull-request mode `branch` is the base branch and cannot contain `:`")
                .help = Some("Image Updater names the head branch itself; write only the base, e.g. `branch=\"main\"`".into());
        }
    }
    let provider = match &settings.provider {
        None => GitProvider::Github,
        Some(p) if p.value == "github" => GitProvider::Github,
        Some(p) if p.value == "gitlab" => GitProvider::Gitlab,
        Some(p) => {
            cx.error(
                Code::InvalidValue,
                p.loc,
                format!("unknown pull-request provider `{}`", p.value),
            )
            .help = Some("write `provider=\"github\"` or `provider=\"gitlab\"`".into());
            GitProvider::Github
        }
    };
    WriteBack::PullRequest {
        provider,
        branch: settings.branch.as_ref().map(|b| b.value.clone()),
        credentials: settings.credentials.clone(),
    }
}

/// Warns about settings the mode ignores, and refuses a live mode in a stage
/// that promotes.
fn check_settings_apply(
    cx: &mut Cx<'_>,
    wb: &WriteBack,
    mode: &Spanned<String>,
    settings: &Settings,
    promotes: bool,
) {
    if let Some(p) = &settings.provider {
        if !matches!(wb, WriteBack::PullRequest { .. }) {
            cx.warning(
                Code::IgnoredSetting,
                p.loc,
                "`provider` only applies to `pull-request` write-back",
            )
            .help = Some("remove it".into());
        }
    }
    if matches!(wb, WriteBack::Argocd | WriteBack::Pinned) {
        if let Some(b) = &settings.branch {
            cx.warning(
                Code::IgnoredSetting,
                b.loc,
                format!("`branch` has no effect with `{}` write-back", mode.value),
            )
            .help = Some("remove it".into());
        }
    }
    if promotes && wb.is_live() {
        cx.error(Code::Conflict, mode.loc, format!("a stage that promotes cannot use `{}` write-back", mode.value)).help = Some(
            "Image Updater tracks registries, not stages: keelson pins promoted stages itself. Use `write-back \"pinned\"` (the default for promoted stages)".into(),
        );
    }
}
