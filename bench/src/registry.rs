//! `keelson-bench registry`: resolving many repositories against a real local
//! registry (Debian's `docker-registry` on 127.0.0.1), cold cache and warm.
//!
//! Seeds R repositories × T tags, every tag its own image with its own build
//! time, then times keelson's tag resolution (`discover::live::fetch`, what
//! `compile` runs) for `newest-build` (a manifest and a config per tag when
//! cold) and `semver` (a tag list per repository, one HEAD for the pick).
//! The baseline, measured in the same run on the same registry: fetching
//! every repository's tag list with a bare HTTP client on as many threads —
//! the least any resolver must do. Figures are ratios to it.

use std::time::{Duration, Instant};

use keelson::discover::cache::Cache;
use keelson::discover::client::{Client, ClientOptions, RepoRef};
use keelson::discover::live::{self, Platform, Query};
use keelson::model::Strategy;
use keelson::semver::Constraint;
use keelson::strategy::Rules;
use keelson_testkit::{Auth, Registry, TestImage};

pub struct Args {
    pub repos: usize,
    pub tags: usize,
    pub jobs: usize,
}

struct Measured {
    time: Duration,
    requests: u64,
    chosen: usize,
}

pub fn run(args: &Args) {
    let reg = Registry::start(Auth::None);
    let seed_start = Instant::now();
    let mut jobs = Vec::with_capacity(args.repos * args.tags);
    for r in 0..args.repos {
        for t in 0..args.tags {
            let created = format!(
                "2026-{:02}-{:02}T{:02}:{:02}:00Z",
                1 + t / 168 % 12,
                1 + t / 24 % 7,
                t % 24,
                r % 60
            );
            jobs.push((
                format!("bench/repo{r:04}"),
                format!("1.{}.{}", t / 10, t % 10),
                TestImage::linux_amd64(&created).salt(&format!("{r}-{t}")),
            ));
        }
    }
    let pushed = jobs.len();
    reg.push_many(jobs, 8);
    eprintln!(
        "seeded {} repositories × {} tags ({pushed} images) in {:.1} s",
        args.repos,
        args.tags,
        seed_start.elapsed().as_secs_f64()
    );

    let repos: Vec<RepoRef> = (0..args.repos)
        .map(|r| RepoRef {
            api: reg.url(),
            name: format!("bench/repo{r:04}"),
            shown: format!("{}/bench/repo{r:04}", reg.host()),
        })
        .collect();

    let baseline = bare_fetch(&repos, &[], args.jobs);
    let tag_names: Vec<String> = (0..args.tags)
        .map(|t| format!("1.{}.{}", t / 10, t % 10))
        .collect();
    let floor = bare_fetch(&repos, &tag_names, args.jobs);
    let cache_dir = tempfile::tempdir().expect("a temp dir");
    let star = Constraint::parse("*").expect("static");
    let newest = |cache: &Cache| resolve(&repos, cache, args.jobs, Strategy::NewestBuild, None);
    let cache = Cache::new(Some(cache_dir.path().to_path_buf()));
    let cold = newest(&cache);
    let warm = newest(&cache);
    let semver = resolve(&repos, &cache, args.jobs, Strategy::Semver, Some(&star));
    assert_eq!(cold.chosen, args.repos, "every repository resolves");
    assert_eq!(warm.chosen, args.repos, "every repository resolves");

    println!(
        "Resolving {} repositories × {} tags on a local registry, {} requests in flight:\n",
        args.repos, args.tags, args.jobs
    );
    println!("| run | time | ÷ baseline | HTTP requests | requests ÷ repository |");
    println!("|---|---|---|---|---|");
    let row = |name: &str, m: &Measured| {
        println!(
            "| {name} | {:.2} s | {:.1}× | {} | {:.1} |",
            m.time.as_secs_f64(),
            m.time.as_secs_f64() / baseline.time.as_secs_f64(),
            m.requests,
            m.requests as f64 / args.repos as f64
        );
    };
    row("baseline: tag lists, bare client", &baseline);
    row("floor: tag lists + every manifest, bare client", &floor);
    row("newest-build, cold cache", &cold);
    row("newest-build, warm cache", &warm);
    row("semver (no per-tag requests)", &semver);
}

fn resolve(
    repos: &[RepoRef],
    cache: &Cache,
    jobs: usize,
    strategy: Strategy,
    constraint: Option<&Constraint>,
) -> Measured {
    let client = Client::new(ClientOptions::default(), Default::default());
    let queries: Vec<Query<'_>> = repos
        .iter()
        .map(|repo| Query {
            repo: repo.clone(),
            rules: Rules {
                strategy,
                constraint,
                tracked: None,
                allow: None,
                ignore: &[],
            },
            platforms: Platform::default_wanted(),
        })
        .collect();
    let started = Instant::now();
    let answers = live::fetch(&client, cache, &queries, jobs, &|_, _| {});
    let time = started.elapsed();
    let chosen = queries
        .iter()
        .zip(&answers)
        .filter(|(q, a)| {
            a.as_ref()
                .is_ok_and(|tags| keelson::strategy::select(&q.rules, tags).chosen.is_some())
        })
        .count();
    if let Some(Err(e)) = answers.iter().find(|a| a.is_err()) {
        panic!("resolution failed: {e}");
    }
    Measured {
        time,
        requests: client.counts.total(),
        chosen,
    }
}

/// Every tag list and, for each of `tags`, the tag's manifest, with a bare
/// client on `jobs` threads. Without tags: the least any resolver asks; with
/// every tag: the least a warm `newest-build` asks (tags move, so each is read).
fn bare_fetch(repos: &[RepoRef], tags: &[String], jobs: usize) -> Measured {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_idle_connections_per_host(jobs.max(1))
        .build()
        .into();
    let urls: Vec<String> = repos
        .iter()
        .flat_map(|r| {
            std::iter::once(format!("{}/v2/{}/tags/list", r.api, r.name)).chain(
                tags.iter()
                    .map(move |t| format!("{}/v2/{}/manifests/{t}", r.api, r.name)),
            )
        })
        .collect();
    let started = Instant::now();
    let lengths = live::parallel(&urls, jobs, |url| {
        let mut response = agent
            .get(url)
            .header("Accept", "application/vnd.oci.image.manifest.v1+json")
            .call()
            .expect("the registry answers");
        response.body_mut().read_to_vec().expect("a body").len()
    });
    assert!(lengths.iter().all(|&l| l > 0));
    Measured {
        time: started.elapsed(),
        requests: urls.len() as u64,
        chosen: repos.len(),
    }
}
