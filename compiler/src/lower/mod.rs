//! Stage 2: lower parsed KDL into the typed [`Estate`], validating as we go.
//!
//! Lowering never stops at the first problem. It works in two passes over all
//! files together: first it sorts every top-level node by kind, then it lowers
//! kind by kind in dependency order, declaring names and resolving references
//! to typed ids. Kinds that refer to their own kind (stages promote from
//! stages, apps depend on apps) declare every name before lowering any body,
//! so references may point forwards and across files. Anything wrong becomes
//! a diagnostic and the offending piece is left out or given a placeholder, so
//! later checks (the graph's cycle check, layout collisions) still run and one
//! `keelson check` reports everything.
//!
//! **Architecture invariant:** this module does no I/O. Checks that need the
//! filesystem (do the manifest directories exist?) live in [`crate::check`].
//!
//! The files, in the order the driver reaches them:
//!
//! - `mod.rs` — the driver: [`lower`], sorting nodes by kind, the order kinds
//!   are lowered in, and the names an estate may use (`TOP_LEVEL`, …).
//! - `declare.rs` — the preamble every entity shares: checking a node against
//!   its shape, reading and declaring its name, reporting duplicates; and
//!   resolving references to declared names.
//! - `read.rs` — reading a node against a `Shape`: typed getters that report
//!   and never fail, "did you mean", free-form `params` blocks.
//! - `shared.rs` — small readers more than one entity uses: relative paths,
//!   durations, DNS labels, Secret references, `params` children.
//! - `repo.rs` — `repo`: the generated repository, its branch and credentials.
//! - `layout.rs` — the repo's `layout` block: path templates and their defaults.
//! - `image_updater.rs` — `image-updater`: the targeted release and interval.
//! - `site.rs` — `site` and its `cluster`s, and each site's management cluster.
//! - `registry.rs` — `registry`: prefix, API URL, credentials, the default.
//! - `policy.rs` — `policy`, and the `gate`/`filter` lists that refer to them.
//! - `stage.rs` — `stage`: where it takes images from, and its `write-back`.
//! - `snapshot.rs` — `snapshot`: tag data read from a file.
//! - `project.rs` — `project`: an Argo CD AppProject.
//! - `app.rs` — `app`: its project, images, dependencies and deployments.
//! - `manifests.rs` — an app's `manifests`, `template` or `chart`, Helm `values`.
//! - `image.rs` — an app's `image`: strategy, constraint, tag filters, registry.
//! - `deploy.rs` — an app's `deploy`: stage, cluster, namespace, pins.
//! - `sync.rs` — `sync`, for an app or one of its deployments.
//! - `checks.rs` — estate-wide checks on the finished model (promotion
//!   sources, chart write-back, derived projects, layout rendering), and the
//!   literal-secret scan over every string of the raw KDL.

mod app;
mod checks;
mod declare;
mod deploy;
mod image;
mod image_updater;
mod layout;
mod manifests;
mod policy;
mod project;
mod read;
mod registry;
mod repo;
mod shared;
mod site;
mod snapshot;
mod stage;
mod sync;

use kdl::KdlNode;

use crate::diagnostic::{Code, Diagnostics, FileId};
use crate::load::Loaded;
use crate::model::Estate;
use declare::AllNames;
use read::{Cx, code_list, suggest};

/// Top-level node names, in the order the book documents them.
pub(crate) const TOP_LEVEL: &[&str] = &[
    "repo",
    "image-updater",
    "site",
    "registry",
    "policy",
    "stage",
    "project",
    "app",
    "snapshot",
];

/// Standard policies shipped in `stdlib/`, usable as `stdlib:NAME`.
pub(crate) const STDLIB_POLICIES: &[&str] = &[
    "deny-mutable-tags",
    "no-prerelease",
    "soak-time",
    "deploy-window",
    "same-digest",
    "no-major-jump",
];

/// Standard manifest templates, usable as `template "NAME"`.
pub(crate) const STDLIB_TEMPLATES: &[&str] = &["web-service", "worker"];

/// The Image Updater release an estate targets when it does not say.
pub(crate) const DEFAULT_IMAGE_UPDATER: &str = "1.0.1";
/// The `argocd-image-updater` chart that ships [`DEFAULT_IMAGE_UPDATER`].
pub(crate) const DEFAULT_IMAGE_UPDATER_CHART: &str = "1.0.1";

/// Argo CD sync options (`syncPolicy.syncOptions`) as of v3.5.
pub(crate) const SYNC_OPTIONS: &[&str] = &[
    "CreateNamespace",
    "PruneLast",
    "ServerSideApply",
    "ApplyOutOfSyncOnly",
    "RespectIgnoreDifferences",
    "Prune",
    "Replace",
    "SkipDryRunOnMissingResource",
    "PrunePropagationPolicy",
    "Validate",
    "FailOnSharedResource",
    "Delete",
    "ClientSideApplyMigration",
];

/// Application names keelson itself uses in every site's Argo CD namespace.
pub(crate) const RESERVED_APP_NAMES: &[&str] = &["root", "argocd-image-updater"];

/// Lowers every parsed file of `loaded` into one estate, pushing every problem
/// found to `diags`. Returns `None` only when no file could be parsed at all.
///
/// Guarantees, whatever the input:
/// - it never panics and never stops at the first problem;
/// - every problem is a diagnostic with a code and a location in a source
///   file (an estate without `repo` points at the start of the first file);
/// - what is wrong is left out or given a placeholder, so the estate is
///   always whole enough for the later checks;
/// - ids follow declaration order: files in load order, nodes in file order,
///   counting only the nodes that were declared (the first of two nodes with
///   one name wins; the second is reported and left out);
/// - every reference in the estate is an id that resolves.
pub(crate) fn lower(loaded: &Loaded, diags: &mut Diagnostics) -> Option<Estate> {
    loaded.files.first()?;
    let mut l = Lowerer { diags };
    let decls = l.collect(loaded);
    let estate = l.lower_estate(loaded, decls);
    note_skipped_files(loaded, diags);
    Some(estate)
}

/// Files with syntax errors are left out of lowering, so what they define is
/// missing. Rather than hide those follow-on errors, each says so.
fn note_skipped_files(loaded: &Loaded, diags: &mut Diagnostics) {
    let skipped: Vec<&str> = loaded
        .sources
        .iter()
        .filter(|(id, _)| !loaded.files.iter().any(|f| f.file == *id))
        .map(|(_, f)| f.name.as_str())
        .collect();
    if skipped.is_empty() {
        return;
    }
    let names = code_list(skipped.iter());
    for d in diags.iter_mut() {
        let follow_on = matches!(
            d.code,
            Code::UnknownSite
                | Code::UnknownCluster
                | Code::UnknownRegistry
                | Code::UnknownPolicy
                | Code::UnknownStage
                | Code::UnknownApp
                | Code::UnknownProject
        ) || (d.code == Code::MissingValue
            && d.message == "the estate has no `repo`");
        if follow_on {
            let help = d.help.take().unwrap_or_default();
            d.help = Some(format!(
                "{help} (note: {names} could not be parsed and was skipped; it may define this)"
            ));
        }
    }
}

/// A file and one of its top-level nodes.
type Decl<'a> = (FileId, &'a KdlNode);

/// Every top-level node, sorted by kind, each list in declaration order.
#[derive(Default)]
struct Decls<'a> {
    repo: Vec<Decl<'a>>,
    image_updater: Vec<Decl<'a>>,
    sites: Vec<Decl<'a>>,
    registries: Vec<Decl<'a>>,
    policies: Vec<Decl<'a>>,
    stages: Vec<Decl<'a>>,
    projects: Vec<Decl<'a>>,
    apps: Vec<Decl<'a>>,
    snapshots: Vec<Decl<'a>>,
}

/// The context of one lowering, shared by every entity's code: where
/// diagnostics go. Entity files add their methods to it.
struct Lowerer<'d> {
    diags: &'d mut Diagnostics,
}

impl Lowerer<'_> {
    /// The context for reading nodes of one file.
    fn cx(&mut self, file: FileId) -> Cx<'_> {
        Cx {
            file,
            diags: self.diags,
        }
    }

    /// Pass one: sorts top-level nodes by kind and reports unknown ones.
    fn collect<'a>(&mut self, loaded: &'a Loaded) -> Decls<'a> {
        let mut decls = Decls::default();
        for parsed in &loaded.files {
            for node in parsed.doc.nodes() {
                let file = parsed.file;
                let list = match node.name().value() {
                    "repo" => &mut decls.repo,
                    "image-updater" => &mut decls.image_updater,
                    "site" => &mut decls.sites,
                    "registry" => &mut decls.registries,
                    "policy" => &mut decls.policies,
                    "stage" => &mut decls.stages,
                    "project" => &mut decls.projects,
                    "app" => &mut decls.apps,
                    "snapshot" => &mut decls.snapshots,
                    other => {
                        let mut cx = self.cx(file);
                        let loc = cx.name_loc(node);
                        let help = match suggest(other, TOP_LEVEL) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => {
                                format!("an estate is made of: {}", code_list(TOP_LEVEL.iter()))
                            }
                        };
                        cx.error(Code::UnknownNode, loc, format!("unknown node `{other}`"))
                            .help = Some(help);
                        continue;
                    }
                };
                list.push((file, node));
            }
            self.scan_secrets(parsed.file, parsed.doc.nodes());
        }
        decls
    }

    /// Pass two: lowers kind by kind, each after the kinds it refers to, then
    /// runs the checks that need the whole estate.
    fn lower_estate(&mut self, loaded: &Loaded, decls: Decls<'_>) -> Estate {
        let repo = self.lower_repo(&decls.repo, loaded);
        let image_updater = self.lower_image_updater(&decls.image_updater);
        let (sites, clusters, site_names) = self.lower_sites(decls.sites);
        let (registries, registry_names) = self.lower_registries(decls.registries);
        let (policies, policy_names) = self.lower_policies(decls.policies);
        let (stages, stage_names) = self.lower_stages(decls.stages, &policy_names, &image_updater);
        let (projects, project_names) = self.lower_projects(decls.projects);
        let mut estate = Estate {
            root: loaded.root.clone(),
            repo,
            image_updater,
            sites,
            clusters,
            registries,
            policies,
            stages,
            projects,
            apps: Vec::new(),
            snapshots: self.lower_snapshots(decls.snapshots),
        };
        let names = AllNames {
            sites: &site_names,
            registries: &registry_names,
            policies: &policy_names,
            stages: &stage_names,
            projects: &project_names,
        };
        estate.apps = self.lower_apps(decls.apps, &estate, &names);
        self.check_promotion_sources(&estate);
        self.check_chart_write_back(&estate);
        self.check_derived_projects(&estate);
        self.check_layout(&estate);
        self.check_write_back_targets(&estate);
        estate
    }
}
