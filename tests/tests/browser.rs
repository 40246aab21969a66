//! The real front end in a real headless Chromium (Debian's, driven by
//! playwright-core) against the real demo stack: generated data, two Flight
//! workers and the dashboard, all on 127.0.0.1. Screenshots go to
//! `target/browser/`.

use std::path::PathBuf;
use std::time::Duration;

use quiver_dashboard::tools::demo::{Stack, StackOptions};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_logs_in_brushes_zooms_and_logs_out_in_chromium() {
    let root = repo();
    assert!(
        root.join("tests/browser/node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci --prefix tests/browser` (bash .ci/run does)"
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "chromium is missing: apt-get install chromium (bash .ci/run does)"
    );
    let data = tempfile::tempdir().unwrap();
    let opts = StackOptions {
        data_dir: data.path().to_path_buf(),
        rows: 300_000,
        ais_rows: 60_000,
        workers: 2,
        addr: "127.0.0.1:0".parse().unwrap(),
        token: "browser-test-token-0123456789".into(),
        tile_url: None,
        progress: false,
    };
    let stack = Stack::start(&opts).await.unwrap();
    // Wait until every shard answers.
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..600 {
        if let Ok(r) = client.get(format!("{}/readyz", stack.url)).send().await
            && r.status().is_success()
        {
            let s: serde_json::Value = client
                .get(format!("{}/api/status", stack.url))
                .bearer_auth(&opts.token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let loaded = s["workers"].as_array().is_some_and(|w| {
                w.len() == 2
                    && w.iter()
                        .all(|w| w["datasets"].as_array().is_some_and(|d| d.iter().all(|d| d["state"] == "ready")))
            });
            if loaded {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the demo stack became ready");
    let out = root.join("target/browser");
    // Start from an empty folder, so a screenshot left by an earlier run
    // cannot stand in for one this run failed to take.
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let result = tokio::process::Command::new("node")
        .arg(root.join("tests/browser/run.mjs"))
        .args(["--url", &stack.url, "--token", &opts.token, "--out"])
        .arg(&out)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    println!("{stdout}\n{stderr}");
    assert!(result.status.success(), "browser test failed:\n{stdout}\n{stderr}");
    // Every screenshot the script says it took is on disk, the first and the
    // last among them.
    let shots: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.trim().strip_prefix("[browser]"))
        .filter_map(|line| line.trim().strip_prefix("screenshot "))
        .collect();
    assert!(
        shots.iter().any(|s| s.ends_with("-login.png")) && shots.iter().any(|s| s.ends_with("-logged-out.png")),
        "the script took the login and logged-out screenshots: {shots:?}"
    );
    // The city views over the detailed offline basemap (issue 14, item 1).
    for city in ["paris", "new-york-city"] {
        assert!(
            shots.iter().any(|s| s.ends_with(&format!("-basemap-{city}.png"))),
            "the script took the {city} basemap screenshot: {shots:?}"
        );
    }
    for shot in shots {
        assert!(std::path::Path::new(shot).exists(), "screenshot {shot} saved");
    }
}
