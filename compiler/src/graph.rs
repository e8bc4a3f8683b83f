//! Stage 3: the estate as a dependency graph.
//!
//! Nodes are sites, clusters, registries, policies, stages and apps; edges say
//! who uses whom. Two kinds of edges must be acyclic and are checked here:
//! `depends-on` between apps (they become Argo CD sync waves) and promotion
//! between stages. A cycle is reported once, with its whole path.
//!
//! Everything here is ordered by declaration (node indices follow the estate's
//! vectors, which follow file and source order), so output is deterministic.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::diagnostic::{Code, Diagnostic, Diagnostics, Loc};
use crate::model::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeKind {
    Site(SiteId),
    Cluster(ClusterId),
    Registry(RegistryId),
    Policy(PolicyId),
    Stage(StageId),
    App(AppId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EdgeKind {
    /// App → app it depends on.
    DependsOn,
    /// Stage → the stage it promotes from.
    PromotesFrom,
    /// App → cluster it is deployed to.
    DeploysTo,
    /// App → stage it is deployed in.
    DeployedIn,
    /// App → registry its images come from.
    PullsFrom,
    /// App or stage → policy it runs.
    Uses,
    /// Cluster → its site.
    BelongsTo,
}

impl EdgeKind {
    pub fn name(self) -> &'static str {
        match self {
            EdgeKind::DependsOn => "depends-on",
            EdgeKind::PromotesFrom => "promotes-from",
            EdgeKind::DeploysTo => "deploys-to",
            EdgeKind::DeployedIn => "deployed-in",
            EdgeKind::PullsFrom => "pulls-from",
            EdgeKind::Uses => "uses",
            EdgeKind::BelongsTo => "belongs-to",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Edge {
    pub kind: EdgeKind,
    /// Where the reference was written.
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub struct EstateGraph {
    pub graph: DiGraph<NodeKind, Edge>,
    /// Apps in dependency order: every app after the apps it depends on; ties
    /// keep declaration order.
    pub app_order: Vec<AppId>,
    /// The sync wave of each app (by `AppId` index): 0 for apps that depend on
    /// nothing, else one more than the highest wave among their dependencies.
    pub waves: Vec<i32>,
    /// Stages upstream first (dev before staging before prod).
    pub stage_order: Vec<StageId>,
    pub has_cycles: bool,
}

/// Builds the graph of `estate` and reports every cycle in `diags` (once
/// each, with its whole path). Pure and deterministic: node and edge
/// indices follow declaration order. Never panics on an estate `lower`
/// built (its ids all point into its vectors). With cycles, `has_cycles` is
/// set and the orders still hold every app and stage.
pub fn build(estate: &Estate, diags: &mut Diagnostics) -> EstateGraph {
    let mut graph = DiGraph::new();
    let nodes = Nodes::add(estate, &mut graph);
    // Edges in a fixed order (clusters, stages, apps): DOT and JSON list
    // them by index.
    add_cluster_edges(estate, &nodes, &mut graph);
    add_stage_edges(estate, &nodes, &mut graph);
    add_app_edges(estate, &nodes, &mut graph);
    let has_cycles = report_estate_cycles(estate, &graph, diags);
    let (app_order, waves) = order_apps(estate, &graph, &nodes.apps);
    let stage_order = order_stages(estate, &graph, &nodes.stages);
    EstateGraph {
        graph,
        app_order,
        waves,
        stage_order,
        has_cycles,
    }
}

/// The node of every entity, by id index.
struct Nodes {
    sites: Vec<NodeIndex>,
    clusters: Vec<NodeIndex>,
    registries: Vec<NodeIndex>,
    policies: Vec<NodeIndex>,
    stages: Vec<NodeIndex>,
    apps: Vec<NodeIndex>,
}

impl Nodes {
    /// Adds one node per entity, kind by kind, each in declaration order.
    fn add(estate: &Estate, graph: &mut DiGraph<NodeKind, Edge>) -> Nodes {
        let mut add = |n: usize, kind: fn(u32) -> NodeKind| -> Vec<NodeIndex> {
            (0..n).map(|i| graph.add_node(kind(i as u32))).collect()
        };
        Nodes {
            sites: add(estate.sites.len(), |i| NodeKind::Site(SiteId(i))),
            clusters: add(estate.clusters.len(), |i| NodeKind::Cluster(ClusterId(i))),
            registries: add(estate.registries.len(), |i| {
                NodeKind::Registry(RegistryId(i))
            }),
            policies: add(estate.policies.len(), |i| NodeKind::Policy(PolicyId(i))),
            stages: add(estate.stages.len(), |i| NodeKind::Stage(StageId(i))),
            apps: add(estate.apps.len(), |i| NodeKind::App(AppId(i))),
        }
    }
}

fn edge(kind: EdgeKind, loc: Loc) -> Edge {
    Edge { kind, loc }
}

/// Cluster → its site.
fn add_cluster_edges(estate: &Estate, nodes: &Nodes, graph: &mut DiGraph<NodeKind, Edge>) {
    for (i, c) in estate.clusters.iter().enumerate() {
        graph.add_edge(
            nodes.clusters[i],
            nodes.sites[c.site.index()],
            edge(EdgeKind::BelongsTo, c.loc),
        );
    }
}

/// Stage → the stage it promotes from, then the policies it runs (gates or
/// filters).
fn add_stage_edges(estate: &Estate, nodes: &Nodes, graph: &mut DiGraph<NodeKind, Edge>) {
    for (i, s) in estate.stages.iter().enumerate() {
        let me = nodes.stages[i];
        let policies = match &s.source {
            StageSource::Promotion { from, gates } => {
                graph.add_edge(
                    me,
                    nodes.stages[from.value.index()],
                    edge(EdgeKind::PromotesFrom, from.loc),
                );
                gates
            }
            StageSource::Registry { filters } => filters,
        };
        for p in policies {
            graph.add_edge(
                me,
                nodes.policies[p.value.index()],
                edge(EdgeKind::Uses, p.loc),
            );
        }
    }
}

/// App → the apps it depends on, the clusters and stages it is deployed
/// to, and per image the registry and filter policies.
fn add_app_edges(estate: &Estate, nodes: &Nodes, graph: &mut DiGraph<NodeKind, Edge>) {
    for (i, app) in estate.apps.iter().enumerate() {
        let me = nodes.apps[i];
        for dep in &app.depends_on {
            graph.add_edge(
                me,
                nodes.apps[dep.value.index()],
                edge(EdgeKind::DependsOn, dep.loc),
            );
        }
        for d in &app.deployments {
            graph.add_edge(
                me,
                nodes.clusters[d.cluster.value.index()],
                edge(EdgeKind::DeploysTo, d.cluster.loc),
            );
            graph.add_edge(
                me,
                nodes.stages[d.stage.value.index()],
                edge(EdgeKind::DeployedIn, d.stage.loc),
            );
        }
        for image in &app.images {
            if let Some(r) = image.registry {
                graph.add_edge(
                    me,
                    nodes.registries[r.index()],
                    edge(EdgeKind::PullsFrom, image.repository.loc),
                );
            }
            for f in &image.filters {
                graph.add_edge(
                    me,
                    nodes.policies[f.value.index()],
                    edge(EdgeKind::Uses, f.loc),
                );
            }
        }
    }
}

/// Reports the app dependency cycles, then the stage promotion cycles.
/// Returns whether there were any.
fn report_estate_cycles(
    estate: &Estate,
    graph: &DiGraph<NodeKind, Edge>,
    diags: &mut Diagnostics,
) -> bool {
    let name_of = |k: NodeKind| -> String {
        match k {
            NodeKind::App(a) => estate.app(a).name.value.clone(),
            NodeKind::Stage(s) => estate.stage(s).name.value.clone(),
            _ => String::new(),
        }
    };
    let app_cycles = report_cycles(
        graph,
        EdgeKind::DependsOn,
        diags,
        &name_of,
        "app dependency cycle",
        |path| format!("remove one of these `depends-on`: Argo CD cannot order {path}"),
    );
    let stage_cycles = report_cycles(
        graph,
        EdgeKind::PromotesFrom,
        diags,
        &name_of,
        "stage promotion cycle",
        |_| {
            "a promotion chain must start at a stage that takes images from the registry; remove one `promote-from`".to_string()
        },
    );
    app_cycles || stage_cycles
}

/// Finds every cycle among edges of one kind (one per strongly connected
/// component) and reports its whole path. Returns whether there were any.
fn report_cycles(
    graph: &DiGraph<NodeKind, Edge>,
    kind: EdgeKind,
    diags: &mut Diagnostics,
    name_of: &dyn Fn(NodeKind) -> String,
    what: &str,
    help: impl Fn(&str) -> String,
) -> bool {
    let filtered = petgraph::visit::EdgeFiltered::from_fn(graph, |e| e.weight().kind == kind);
    let mut found = false;
    let mut sccs = petgraph::algo::tarjan_scc(&filtered);
    for scc in &mut sccs {
        scc.sort();
    }
    sccs.sort();
    for scc in sccs {
        let start = scc[0];
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        let self_loop = graph
            .edges(start)
            .find(|e| e.weight().kind == kind && e.target() == start);
        if scc.len() == 1 && self_loop.is_none() {
            continue;
        }
        found = true;
        // Shortest way round: breadth-first from `start` back to `start`,
        // through the component only, following edges in insertion order.
        let mut prev: BTreeMap<NodeIndex, (NodeIndex, Edge)> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        let mut closing: Option<(NodeIndex, Edge)> = None;
        'search: while let Some(n) = queue.pop_front() {
            let mut edges: Vec<_> = graph
                .edges(n)
                .filter(|e| e.weight().kind == kind && members.contains(&e.target()))
                .collect();
            edges.sort_by_key(|e| e.id());
            for e in edges {
                if e.target() == start {
                    closing = Some((n, *e.weight()));
                    break 'search;
                }
                if !prev.contains_key(&e.target()) {
                    prev.insert(e.target(), (n, *e.weight()));
                    queue.push_back(e.target());
                }
            }
        }
        let Some((last, closing_edge)) = closing else {
            continue;
        };
        let mut hops: Vec<(NodeIndex, Edge)> = vec![(last, closing_edge)];
        let mut cur = last;
        while cur != start {
            let (p, e) = prev[&cur];
            hops.push((p, e));
            cur = p;
        }
        hops.reverse();
        let mut path: Vec<String> = hops
            .iter()
            .map(|(n, _)| format!("`{}`", name_of(graph[*n])))
            .collect();
        path.push(format!("`{}`", name_of(graph[start])));
        let path = path.join(" → ");
        let message = if hops.len() == 1 {
            let name = name_of(graph[start]);
            match kind {
                EdgeKind::DependsOn => format!("app `{name}` depends on itself"),
                _ => format!("stage `{name}` promotes from itself"),
            }
        } else {
            format!("{what}: {path}")
        };
        let help_text = if hops.len() == 1 {
            "remove this reference: nothing can come before itself".to_string()
        } else {
            help(&path)
        };
        let mut d = Diagnostic::error(Code::Cycle, hops[0].1.loc, message).with_help(help_text);
        for (n, e) in hops.iter().skip(1) {
            d = d.with_secondary(
                e.loc,
                format!("`{}` continues the cycle here", name_of(graph[*n])),
            );
        }
        diags.push(d);
    }
    found
}

fn order_apps(
    estate: &Estate,
    graph: &DiGraph<NodeKind, Edge>,
    apps: &[NodeIndex],
) -> (Vec<AppId>, Vec<i32>) {
    let n = estate.apps.len();
    let index_of = |ni: NodeIndex| match graph[ni] {
        NodeKind::App(a) => a.index(),
        _ => unreachable!("depends-on edges join apps"),
    };
    // deps[i]: apps that i depends on.
    let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for (i, &ni) in apps.iter().enumerate() {
        for e in graph
            .edges(ni)
            .filter(|e| e.weight().kind == EdgeKind::DependsOn)
        {
            let j = index_of(e.target());
            if j != i {
                deps[i].insert(j);
            }
        }
    }
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &j in ds {
            dependents[j].push(i);
        }
    }
    let mut remaining: Vec<usize> = deps.iter().map(BTreeSet::len).collect();
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    let mut waves = vec![0i32; n];
    while let Some(i) = ready.pop_first() {
        order.push(AppId(i as u32));
        for &k in &dependents[i] {
            waves[k] = waves[k].max(waves[i] + 1);
            remaining[k] -= 1;
            if remaining[k] == 0 {
                ready.insert(k);
            }
        }
    }
    // Apps on a cycle (already reported) go last, in declaration order.
    for (i, &r) in remaining.iter().enumerate() {
        if r > 0 {
            order.push(AppId(i as u32));
        }
    }
    (order, waves)
}

fn order_stages(
    estate: &Estate,
    graph: &DiGraph<NodeKind, Edge>,
    stages: &[NodeIndex],
) -> Vec<StageId> {
    let n = estate.stages.len();
    let mut upstream: Vec<Option<usize>> = vec![None; n];
    for (i, &ni) in stages.iter().enumerate() {
        for e in graph
            .edges(ni)
            .filter(|e| e.weight().kind == EdgeKind::PromotesFrom)
        {
            if let NodeKind::Stage(s) = graph[e.target()] {
                if s.index() != i {
                    upstream[i] = Some(s.index());
                }
            }
        }
    }
    let depth = |mut i: usize| {
        let mut d = 0;
        while let Some(u) = upstream[i] {
            d += 1;
            i = u;
            if d > n {
                break; // a cycle, reported elsewhere
            }
        }
        d
    };
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (depth(i), i));
    order.into_iter().map(|i| StageId(i as u32)).collect()
}

fn node_id(estate: &Estate, k: NodeKind) -> (String, &'static str, String) {
    match k {
        NodeKind::Site(s) => {
            let n = &estate.site(s).name.value;
            (format!("site:{n}"), "site", n.clone())
        }
        NodeKind::Cluster(c) => {
            let cl = estate.cluster(c);
            let full = format!("{}/{}", estate.site(cl.site).name.value, cl.name.value);
            (format!("cluster:{full}"), "cluster", full)
        }
        NodeKind::Registry(r) => {
            let n = &estate.registry(r).name.value;
            (format!("registry:{n}"), "registry", n.clone())
        }
        NodeKind::Policy(p) => {
            let n = &estate.policy(p).name.value;
            (format!("policy:{n}"), "policy", n.clone())
        }
        NodeKind::Stage(s) => {
            let n = &estate.stage(s).name.value;
            (format!("stage:{n}"), "stage", n.clone())
        }
        NodeKind::App(a) => {
            let n = &estate.app(a).name.value;
            (format!("app:{n}"), "app", n.clone())
        }
    }
}

/// Edges as sorted, de-duplicated (from, kind, to) id triples.
fn edge_list(estate: &Estate, g: &EstateGraph) -> Vec<(String, &'static str, String)> {
    let mut edges: Vec<(String, &'static str, String)> = g
        .graph
        .edge_references()
        .map(|e| {
            (
                node_id(estate, g.graph[e.source()]).0,
                e.weight().kind.name(),
                node_id(estate, g.graph[e.target()]).0,
            )
        })
        .collect();
    edges.sort();
    edges.dedup();
    edges
}

/// Graphviz DOT, for `keelson graph --format dot`.
pub(crate) fn to_dot(estate: &Estate, g: &EstateGraph) -> String {
    let mut out =
        String::from("digraph estate {\n  rankdir=LR;\n  node [fontname=\"sans-serif\"];\n");
    // (id, kind, name, sync wave for apps), sorted by id.
    let mut nodes: Vec<(String, &str, String, Option<i32>)> = g
        .graph
        .node_weights()
        .map(|k| {
            let (id, kind, name) = node_id(estate, *k);
            let wave = match k {
                NodeKind::App(a) => Some(g.waves[a.index()]),
                _ => None,
            };
            (id, kind, name, wave)
        })
        .collect();
    nodes.sort();
    for (id, kind, name, wave) in &nodes {
        let shape = match *kind {
            "app" => "box",
            "stage" => "cds",
            "cluster" => "box3d",
            "site" => "folder",
            "registry" => "cylinder",
            _ => "hexagon",
        };
        let label = match wave {
            Some(wave) => format!("{name}\\nwave {wave}"),
            None => name.clone(),
        };
        out.push_str(&format!(
            "  \"{}\" [label=\"{}\", shape={shape}];\n",
            escape(id),
            escape_label(&label)
        ));
    }
    for (from, kind, to) in edge_list(estate, g) {
        out.push_str(&format!(
            "  \"{}\" -> \"{}\" [label=\"{kind}\"];\n",
            escape(&from),
            escape(&to)
        ));
    }
    out.push_str("}\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn escape_label(s: &str) -> String {
    s.replace('"', "\\\"")
}

/// JSON, for `keelson graph --format json` (format version 1).
pub(crate) fn to_json(estate: &Estate, g: &EstateGraph) -> String {
    let mut nodes: Vec<serde_json::Value> = g
        .graph
        .node_weights()
        .map(|k| {
            let (id, kind, name) = node_id(estate, *k);
            let mut v = serde_json::json!({"id": id, "kind": kind, "name": name});
            if let NodeKind::App(a) = k {
                v["wave"] = g.waves[a.index()].into();
            }
            v
        })
        .collect();
    nodes.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let edges: Vec<serde_json::Value> = edge_list(estate, g)
        .into_iter()
        .map(|(from, kind, to)| serde_json::json!({"from": from, "kind": kind, "to": to}))
        .collect();
    let v = serde_json::json!({
        "version": 1,
        "nodes": nodes,
        "edges": edges,
        "order": {
            "apps": g.app_order.iter().map(|a| estate.app(*a).name.value.clone()).collect::<Vec<_>>(),
            "stages": g.stage_order.iter().map(|s| estate.stage(*s).name.value.clone()).collect::<Vec<_>>(),
        },
    });
    let mut s = serde_json::to_string_pretty(&v).expect("JSON values always serialise");
    s.push('\n');
    s
}
