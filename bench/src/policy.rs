//! `keelson-bench policy [--tags T] [--calls C]`: the cost of running a
//! filter as a sandboxed WebAssembly policy.
//!
//! One run measures, on the same candidate list of T tags:
//! - `stdlib:deny-mutable-tags` through the policy host, exactly as compile
//!   calls it (fresh instance, limits, JSON in and out, output checked);
//! - the same filter written natively in Rust (the floor);
//! - the native filter plus the same JSON encoding and decoding, which shows
//!   how much of the overhead is the sandbox and how much is JSON.
//!
//! It prints calls per second and the ratios.

use std::time::Instant;

use keelson::policy::{Host, Limits, abi};
use serde::Deserialize;

const MUTABLE: &[&str] = &[
    "latest", "main", "master", "develop", "dev", "stable", "edge", "nightly", "head", "canary",
];

fn native(candidates: &[String]) -> Vec<(usize, bool)> {
    candidates
        .iter()
        .enumerate()
        .map(|(i, t)| (i, !MUTABLE.iter().any(|m| m.eq_ignore_ascii_case(t))))
        .collect()
}

#[derive(Deserialize)]
struct In {
    candidates: Vec<C>,
}
#[derive(Deserialize)]
struct C {
    tag: String,
}

/// The native filter with the ABI's JSON on both sides.
fn native_json(input: &[u8]) -> String {
    let parsed: In = serde_json::from_slice(input).expect("valid input");
    let verdicts: Vec<serde_json::Value> = parsed
        .candidates
        .iter()
        .map(|c| {
            if MUTABLE.iter().any(|m| m.eq_ignore_ascii_case(&c.tag)) {
                serde_json::json!({"tag": c.tag, "decision": "deny", "reason": "mutable"})
            } else {
                serde_json::json!({"tag": c.tag, "decision": "allow"})
            }
        })
        .collect();
    let out = serde_json::json!({ "verdicts": verdicts }).to_string();
    let _: abi::Verdicts = serde_json::from_str(&out).expect("valid output");
    out
}

pub fn run(args: &[String]) {
    let mut tags = 100usize;
    let mut calls = 2_000usize;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--tags" => {
                i += 1;
                tags = args[i].parse().expect("--tags takes a number");
            }
            "--calls" => {
                i += 1;
                calls = args[i].parse().expect("--calls takes a number");
            }
            other => panic!(
                "unknown argument {other}; usage: keelson-bench policy [--tags T] [--calls C]"
            ),
        }
        i += 1;
    }
    let names: Vec<String> = (0..tags)
        .map(|i| {
            if i % 20 == 0 {
                "latest".to_string()
            } else {
                format!("1.{}.{}", i / 10, i % 10)
            }
        })
        .collect();
    let params = serde_json::Map::new();
    let input = abi::FilterInput {
        abi: abi::VERSION,
        entry: "filter",
        context: abi::Context {
            policy: "no-mutable-tags",
            app: "shop",
            stage: "dev",
            image: "shop",
            repository: "ghcr.io/acme/shop",
            strategy: "semver",
            now: "2026-11-23T09:30:00Z".into(),
            params: &params,
        },
        current: None,
        history: &[],
        candidates: names
            .iter()
            .map(|t| abi::Candidate {
                tag: t,
                digest: None,
                created: None,
            })
            .collect(),
    };
    let bytes = serde_json::to_vec(&input).expect("serialises");
    let host = Host::new(Limits::default(), None).expect("engine");
    let module_bytes = keelson::policy::stdlib::module("deny-mutable-tags").expect("embedded");
    let t = Instant::now();
    let module = host
        .load("stdlib:deny-mutable-tags", module_bytes)
        .expect("loads");
    let load = t.elapsed();

    // Warm up, and check the policy and the native filter agree.
    let out = host.call(&module, "filter", &bytes).expect("calls");
    let verdicts: abi::Verdicts = serde_json::from_str(&out.output).expect("valid");
    let denied = verdicts
        .verdicts
        .iter()
        .filter(|v| v.decision == abi::FilterDecision::Deny)
        .count();
    assert_eq!(
        denied,
        native(&names).iter().filter(|(_, ok)| !ok).count(),
        "the policy and the native filter disagree"
    );

    let t = Instant::now();
    let mut fuel = 0;
    for _ in 0..calls {
        let out = host.call(&module, "filter", &bytes).expect("calls");
        fuel = out.fuel;
        let v: abi::Verdicts = serde_json::from_str(&out.output).expect("valid");
        std::hint::black_box(v);
    }
    let wasm = t.elapsed();
    let native_calls = calls * 50;
    let t = Instant::now();
    for _ in 0..native_calls {
        std::hint::black_box(native(std::hint::black_box(&names)));
    }
    let native_time = t.elapsed();
    let t = Instant::now();
    for _ in 0..calls {
        std::hint::black_box(native_json(std::hint::black_box(&bytes)));
    }
    let json_time = t.elapsed();

    let per_s = |n: usize, d: std::time::Duration| n as f64 / d.as_secs_f64();
    let (w, n, j) = (
        per_s(calls, wasm),
        per_s(native_calls, native_time),
        per_s(calls, json_time),
    );
    println!(
        "policy `stdlib:deny-mutable-tags`, {tags} candidates, {} bytes of input; module compiled in {:.1} ms; {fuel} fuel per call",
        bytes.len(),
        load.as_secs_f64() * 1000.0
    );
    println!("| filter | calls per second | time per call | ÷ native |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, rate) in [
        ("WebAssembly policy (host, sandbox, JSON)", w),
        ("native Rust + the same JSON", j),
        ("native Rust", n),
    ] {
        println!(
            "| {name} | {rate:.0} | {:.1} µs | {:.1}× |",
            1e6 / rate,
            n / rate
        );
    }
}
