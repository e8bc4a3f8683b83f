mod common;
use common::{ALL_MANIFESTS, call_with};
use keelson_testkit::*;
use std::time::Instant;

#[test]
fn scratch_speed() {
    let reg = Registry::start(Auth::None);
    reg.push("app", "v1", &TestImage::linux_amd64("2024-01-01T00:00:00Z"));
    let proxy = Proxy::start(&reg.url());
    for (name, base) in [("direct", reg.url()), ("proxy", proxy.url())] {
        for threads in [1, 4] {
            let url = format!("{base}/v2/app/manifests/v1");
            let started = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        let agent = test_agent();
                        for _ in 0..2000 / threads {
                            let got = call_with(&agent, "GET", &url, &ALL_MANIFESTS, None).unwrap();
                            assert_eq!(got.status, 200);
                        }
                    });
                }
            });
            eprintln!("{name} threads={threads}: 2000 GETs in {:?}", started.elapsed());
        }
    }
    // push speed
    let jobs: Vec<_> = (0..2000).map(|i| (format!("r{}", i % 10), format!("t{i}"), TestImage::linux_amd64("2024-01-01T00:00:00Z").salt(&i.to_string()))).collect();
    let started = Instant::now();
    reg.push_many(jobs, 4);
    eprintln!("push_many 2000 images / 10 repos, 4 threads: {:?}", started.elapsed());
}
