//! `site`: one Argo CD instance, and the `cluster`s it deploys to. Exactly one
//! cluster of a site is its management cluster (where Argo CD runs).

use std::collections::BTreeMap;

use kdl::KdlNode;

use super::declare::{Kind, Names, declare};
use super::read::{self, Cx, Shape, suggest};
use super::shared::check_dns_label;
use super::{Decl, Lowerer};
use crate::diagnostic::{Code, Label};
use crate::model::{Cluster, ClusterId, ClusterRole, Server, Site, SiteId, Spanned};
use crate::rules;

const SITE: Kind = Kind {
    node: "site",
    what: "a site name",
    example: "\"home-lab\"",
    shape: Shape {
        args: 1,
        props: &["argocd-namespace"],
        children: Some(&["cluster"]),
    },
};

const CLUSTER: Kind = Kind {
    node: "cluster",
    what: "a cluster name",
    example: "\"k3s\"",
    shape: Shape {
        args: 1,
        props: &["server", "role", "argocd-name"],
        children: Some(&["labels"]),
    },
};

impl Lowerer<'_> {
    /// Every site, and every cluster of every site in one list (cluster ids
    /// count across sites; cluster names are unique within their site).
    pub(super) fn lower_sites(
        &mut self,
        decls: Vec<Decl<'_>>,
    ) -> (Vec<Site>, Vec<Cluster>, Names<SiteId>) {
        let mut clusters = Vec::new();
        let (sites, names) = self.lower_named(decls, &SITE, SiteId, |cx, node, name, id| {
            lower_site(cx, node, name, id, &mut clusters)
        });
        (sites, clusters, names)
    }
}

/// One site; its clusters are appended to `clusters`.
fn lower_site(
    cx: &mut Cx<'_>,
    node: &KdlNode,
    name: Spanned<String>,
    site_id: SiteId,
    clusters: &mut Vec<Cluster>,
) -> Site {
    let argocd_namespace = match cx.prop_str(node, "argocd-namespace") {
        Some(ns) => {
            check_dns_label(cx, &ns, "a namespace");
            ns.value
        }
        None => "argocd".to_string(),
    };
    let mut site_clusters = Vec::new();
    let mut cluster_names: Names<ClusterId> = Names::new();
    for cnode in cx.children(node, "cluster").collect::<Vec<_>>() {
        let id = ClusterId(clusters.len() as u32);
        let Some(cname) = declare(cx, cnode, &CLUSTER, &mut cluster_names, id) else {
            continue;
        };
        clusters.push(lower_cluster(cx, cnode, cname, site_id));
        site_clusters.push(id);
    }
    let loc = cx.node_loc(node);
    let management = management_cluster(cx, node, &name, &site_clusters, clusters);
    Site {
        name,
        argocd_namespace,
        clusters: site_clusters,
        management,
        loc,
    }
}

fn lower_cluster(cx: &mut Cx<'_>, node: &KdlNode, name: Spanned<String>, site: SiteId) -> Cluster {
    let server = cluster_server(cx, node);
    let role = cluster_role(cx, node, &server);
    if role == ClusterRole::Management && server != Server::InCluster {
        let loc = cx.node_loc(node);
        cx.warning(Code::ManagementCluster, loc, "the management cluster is addressed by URL").help =
            Some("Argo CD reaches its own cluster as `in-cluster`; write `server=\"in-cluster\"` unless you registered it by URL".into());
    }
    let argocd_name = cx.prop_str(node, "argocd-name").map(|n| n.value);
    let labels = cluster_labels(cx, node);
    let loc = cx.node_loc(node);
    Cluster {
        name,
        site,
        server,
        argocd_name,
        role,
        labels,
        loc,
    }
}

/// `server=`: `in-cluster` (also when missing, reported) or an API URL.
fn cluster_server(cx: &mut Cx<'_>, node: &KdlNode) -> Server {
    match cx.req_prop_str(node, "server", "\"in-cluster\"") {
        Some(s) if s.value == "in-cluster" || s.value == Server::IN_CLUSTER_URL => {
            Server::InCluster
        }
        Some(s) => {
            if let Err(why) = rules::url(&s.value, &["https", "http"]) {
                cx.error(Code::InvalidUrl, s.loc, format!("`{}` is not a Kubernetes API URL: {why}", s.value))
                    .help = Some("write `server=\"in-cluster\"` for the cluster Argo CD runs on, or its API URL, e.g. `server=\"https://10.0.0.5:6443\"`".into());
            }
            Server::Url(s.value)
        }
        None => Server::InCluster,
    }
}

/// `role=`; without it, the cluster Argo CD runs on (`in-cluster`) manages.
fn cluster_role(cx: &mut Cx<'_>, node: &KdlNode, server: &Server) -> ClusterRole {
    match cx.prop_str(node, "role") {
        Some(r) => match r.value.as_str() {
            "management" => ClusterRole::Management,
            "workload" => ClusterRole::Workload,
            other => {
                let help = suggest(other, &["management", "workload"]).map_or(
                    "write `role=\"management\"` or `role=\"workload\"`".to_string(),
                    |s| format!("did you mean `{s}`?"),
                );
                cx.error(
                    Code::InvalidValue,
                    r.loc,
                    format!("unknown cluster role `{other}`"),
                )
                .help = Some(help);
                ClusterRole::Workload
            }
        },
        None if *server == Server::InCluster => ClusterRole::Management,
        None => ClusterRole::Workload,
    }
}

/// Every `labels` child's properties, merged.
fn cluster_labels(cx: &mut Cx<'_>, node: &KdlNode) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for lnode in cx.children(node, "labels").collect::<Vec<_>>() {
        cx.check_shape(
            lnode,
            "`labels`",
            &Shape {
                args: 0,
                props: read::ANY_PROPS,
                children: Some(&[]),
            },
        );
        if lnode.entries().iter().all(|e| e.name().is_none()) {
            let ll = cx.name_loc(lnode);
            cx.warning(Code::MissingValue, ll, "`labels` has no labels")
                .help = Some("write them as properties: `labels role=\"gitops\"`".into());
        }
        for e in lnode.entries() {
            if let Some(k) = e.name() {
                let key = k.value().to_string();
                if let Err(why) = rules::label_key(&key) {
                    let el = cx.loc(e.span());
                    cx.error(Code::InvalidName, el, format!("`{key}` is not a valid label key: {why}")).help =
                        Some("label keys are `[prefix/]name`, the name up to 63 letters, digits, `-`, `_` and `.`".into());
                }
                if let Some(v) = cx.entry_str(e, &format!("the label `{key}`")) {
                    labels.insert(key, v.value);
                }
            }
        }
    }
    labels
}

/// The site's one management cluster; none (reported) when it has none, the
/// first when it has several (each other one reported).
fn management_cluster(
    cx: &mut Cx<'_>,
    node: &KdlNode,
    name: &Spanned<String>,
    site_clusters: &[ClusterId],
    clusters: &[Cluster],
) -> Option<ClusterId> {
    let managements: Vec<ClusterId> = site_clusters
        .iter()
        .copied()
        .filter(|c| clusters[c.index()].role == ClusterRole::Management)
        .collect();
    match managements.as_slice() {
        [one] => Some(*one),
        [] => {
            cx.error(
                Code::ManagementCluster,
                cx.name_loc(node),
                format!("site `{}` has no management cluster", name.value),
            )
            .help = Some(
                "add the cluster Argo CD runs on: `cluster \"mgmt\" server=\"in-cluster\"`".into(),
            );
            None
        }
        [first, rest @ ..] => {
            for extra in rest {
                let d = cx.error(
                    Code::ManagementCluster,
                    clusters[extra.index()].name.loc,
                    format!("site `{}` has more than one management cluster", name.value),
                );
                d.secondary.push(Label {
                    loc: clusters[first.index()].name.loc,
                    text: Some("the first one".into()),
                });
                d.help = Some(
                    "a site is one Argo CD instance; mark the others `role=\"workload\"`".into(),
                );
            }
            Some(*first)
        }
    }
}
