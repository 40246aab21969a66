//! Packaging: the Dockerfile names binaries and paths that exist, runs as the
//! user the chart and the operator expect; `deploy/launch.sh` brings up workers,
//! two dashboards and nginx, answers through nginx exactly as a dashboard does,
//! survives a dashboard dying, and stops every process it started.
//!
//! The launch test needs nginx (Debian package `nginx`; `.ci/run` installs it)
//! and curl; without nginx it prints why it is skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use quiver_e2e::cluster::{
    env_file, launch, launch_script, nginx_available, pid_alive, read, repo_root, signal, started_processes,
    stop_and_check,
};
use serde_json::{Value, json};

// ------------------------------------------------------------------ Dockerfile

/// One instruction: keyword (upper case) and its arguments, continuation lines joined.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
    line: usize,
}

fn parse_dockerfile(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if pending.is_none() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        if pending.is_some() && line.starts_with('#') {
            continue; // comments inside a continued instruction
        }
        let (start, mut acc) = pending.take().unwrap_or((n + 1, String::new()));
        if let Some(body) = line.strip_suffix('\\') {
            acc.push_str(body);
            acc.push(' ');
            pending = Some((start, acc));
            continue;
        }
        acc.push_str(line);
        let (keyword, args) = acc.split_once(char::is_whitespace).unwrap_or((&acc, ""));
        out.push(Instruction { keyword: keyword.to_uppercase(), args: args.trim().to_string(), line: start });
    }
    assert!(pending.is_none(), "the Dockerfile ends inside a continued instruction");
    out
}

/// Workspace members (from the root Cargo.toml) and, per package, its binaries.
struct Workspace {
    members: Vec<String>,
    bins: BTreeMap<String, BTreeSet<String>>,
}

fn toml_string(line: &str, key: &str) -> Option<String> {
    let (k, v) = line.split_once('=')?;
    (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
}

fn workspace() -> Workspace {
    let root = repo_root();
    let manifest = read(&root.join("Cargo.toml"));
    let start = manifest.find("members").expect("the root Cargo.toml lists workspace members");
    let list = &manifest[start..];
    let list = &list[list.find('[').unwrap() + 1..list.find(']').unwrap()];
    let members: Vec<String> =
        list.split(',').map(|m| m.trim().trim_matches('"').to_string()).filter(|m| !m.is_empty()).collect();
    let mut bins = BTreeMap::new();
    for m in &members {
        let text = read(&root.join(m).join("Cargo.toml"));
        let mut package = None;
        let mut section = String::new();
        let mut names = BTreeSet::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_string();
                continue;
            }
            if section == "[package]" && package.is_none() {
                package = toml_string(line, "name");
            } else if section == "[[bin]]"
                && let Some(n) = toml_string(line, "name")
            {
                names.insert(n);
            }
        }
        let package = package.unwrap_or_else(|| panic!("{m}/Cargo.toml has no package name"));
        // Cargo's implicit binary.
        if root.join(m).join("src/main.rs").exists() {
            names.insert(package.clone());
        }
        bins.insert(package, names);
    }
    Workspace { members, bins }
}

/// Values following `flag` in a shell command line (`-p X`, `--bin X`, `--bin=X`).
fn flag_values(words: &[&str], flag: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if *w == flag {
            if let Some(v) = words.get(i + 1) {
                out.push(v.to_string());
            }
        } else if let Some(v) = w.strip_prefix(&format!("{flag}=")) {
            out.push(v.to_string());
        }
    }
    out
}

fn dockerfiles() -> Vec<PathBuf> {
    let dir = repo_root().join("deploy");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            (name == "Dockerfile" || name.starts_with("Dockerfile.") || name.ends_with(".Dockerfile"))
                && !name.ends_with(".dockerignore")
        })
        .collect();
    files.sort();
    files
}

/// Checks one Dockerfile (panicking with the file, line and reason) and returns
/// its images: stage -> (program, uid).
fn check_dockerfile(name: &str, text: &str, ws: &Workspace) -> BTreeMap<String, (String, String)> {
    let root = repo_root();
    let mut images = BTreeMap::new();
    {
        let ins = parse_dockerfile(text);
        let mut stage = String::new();
        let mut stages = BTreeSet::new();
        // Per stage: files it leaves in /out (or elsewhere) from `cp`, binaries it builds.
        let mut produced: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut copied_members = BTreeSet::new();
        let mut entry: BTreeMap<String, String> = BTreeMap::new();
        let mut copied_to: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut user: BTreeMap<String, String> = BTreeMap::new();
        let mut parent: BTreeMap<String, String> = BTreeMap::new();
        for i in &ins {
            let at = format!("{name}:{}", i.line);
            match i.keyword.as_str() {
                "FROM" => {
                    let words: Vec<&str> = i.args.split_whitespace().collect();
                    let base = words[0].to_string();
                    stage = match words.iter().position(|w| w.eq_ignore_ascii_case("as")) {
                        Some(p) => words[p + 1].to_string(),
                        None => format!("#{}", stages.len()),
                    };
                    if stages.contains(&base) {
                        parent.insert(stage.clone(), base);
                    }
                    stages.insert(stage.clone());
                }
                "COPY" | "ADD" => {
                    let words: Vec<&str> = i.args.split_whitespace().collect();
                    let from = words.iter().find_map(|w| w.strip_prefix("--from="));
                    let paths: Vec<&str> = words.iter().copied().filter(|w| !w.starts_with("--")).collect();
                    assert!(paths.len() >= 2, "{at}: COPY needs a source and a destination");
                    let (dest, sources) = paths.split_last().unwrap();
                    match from {
                        Some(src_stage) => {
                            assert!(stages.contains(src_stage), "{at}: COPY --from={src_stage}: no such stage above");
                            let made = produced.get(src_stage).cloned().unwrap_or_default();
                            for s in sources {
                                assert!(
                                    made.contains(*s),
                                    "{at}: COPY --from={src_stage} {s}: stage {src_stage} does not produce it \
                                     (it produces {made:?})"
                                );
                                let file = Path::new(s).file_name().unwrap().to_string_lossy().to_string();
                                let target =
                                    if dest.ends_with('/') { format!("{dest}{file}") } else { dest.to_string() };
                                copied_to.entry(stage.clone()).or_default().insert(target);
                            }
                        }
                        None => {
                            for s in sources {
                                let p = root.join(s.trim_start_matches("./"));
                                assert!(p.exists(), "{at}: COPY {s}: no such path in the repository");
                                // A member is copied by its own path or by a folder that holds it
                                // (`COPY tests tests` brings tests/kube-sim too).
                                let dir = s.trim_start_matches("./").trim_end_matches('/');
                                for m in &ws.members {
                                    if m == dir || m.starts_with(&format!("{dir}/")) {
                                        copied_members.insert(m.to_string());
                                    }
                                }
                            }
                        }
                    }
                }
                "RUN" => {
                    let mut built = BTreeSet::new();
                    for segment in i.args.split("&&") {
                        let words: Vec<&str> = segment.split_whitespace().collect();
                        let Some(pos) = words.windows(2).position(|w| w == ["cargo", "build"]) else {
                            continue;
                        };
                        let cmd = &words[pos..];
                        let packages = flag_values(cmd, "-p");
                        for p in &packages {
                            assert!(ws.bins.contains_key(p), "{at}: cargo build -p {p}: no such workspace package");
                        }
                        assert!(
                            !packages.iter().any(|p| p == "quiver-operator") || packages.len() == 1,
                            "{at}: quiver-operator is built with {packages:?}: cargo would unify their features \
                             and link the worker's server side (Parquet, object stores) into the operator"
                        );
                        let release = cmd.contains(&"--release");
                        let bins = flag_values(cmd, "--bin");
                        assert!(!bins.is_empty(), "{at}: cargo build without --bin builds more than the images need");
                        for b in &bins {
                            let owner = packages.iter().find(|p| ws.bins[*p].contains(b));
                            assert!(owner.is_some(), "{at}: --bin {b} is not a binary of {packages:?}");
                            let profile = if release { "release" } else { "debug" };
                            built.insert(format!("target/{profile}/{b}"));
                        }
                    }
                    // `cp A B C /dir/` after the build: the files the stage leaves behind.
                    for segment in i.args.split("&&") {
                        let w: Vec<&str> = segment.split_whitespace().collect();
                        if w.first() == Some(&"cp") && w.len() >= 3 {
                            let (dest, srcs) = w[1..].split_last().unwrap();
                            for s in srcs.iter().filter(|s| !s.starts_with('-')) {
                                assert!(built.contains(*s), "{at}: cp {s}: not a binary this RUN builds ({built:?})");
                                let file = Path::new(s).file_name().unwrap().to_string_lossy();
                                produced
                                    .entry(stage.clone())
                                    .or_default()
                                    .insert(format!("{}/{file}", dest.trim_end_matches('/')));
                            }
                        }
                    }
                }
                "ENTRYPOINT" => {
                    let v: Value = serde_json::from_str(&i.args).unwrap_or_else(|_| {
                        panic!("{at}: ENTRYPOINT must be the exec (JSON) form: the images have no shell")
                    });
                    entry.insert(stage.clone(), v[0].as_str().expect("ENTRYPOINT names a program").to_string());
                }
                "CMD" => {
                    assert!(
                        serde_json::from_str::<Value>(&i.args).is_ok(),
                        "{at}: CMD must be the exec (JSON) form: the images have no shell"
                    );
                }
                "USER" => {
                    user.insert(stage.clone(), i.args.clone());
                }
                _ => {}
            }
        }
        // Every workspace member must be in the build context copy, or cargo cannot load the workspace.
        for m in &ws.members {
            assert!(copied_members.contains(m), "{name}: workspace member {m} is not copied into the build stage");
        }
        // Each image with an entry point runs a binary that was copied into it, as a non-root user.
        for (s, program) in &entry {
            assert!(
                copied_to.get(s).is_some_and(|c| c.contains(program)),
                "{name}: stage {s} runs {program}, which no COPY puts there"
            );
            let mut u = None;
            let mut cur = Some(s.clone());
            while let Some(c) = cur {
                if let Some(found) = user.get(&c) {
                    u = Some(found.clone());
                    break;
                }
                cur = parent.get(&c).cloned();
            }
            let u = u.unwrap_or_else(|| panic!("{name}: stage {s} sets no USER (it would run as root)"));
            let uid = u.split(':').next().unwrap();
            assert!(uid != "0" && uid != "root", "{name}: stage {s} runs as root");
            images.insert(s.clone(), (program.clone(), uid.to_string()));
        }
    }
    images
}

#[test]
fn dockerfile_builds_only_binaries_and_copies_only_paths_that_exist() {
    let root = repo_root();
    let ws = workspace();
    let files = dockerfiles();
    assert!(!files.is_empty(), "no Dockerfile in deploy/");
    let mut images = BTreeMap::new();
    for file in files {
        let name = file.strip_prefix(&root).unwrap().display().to_string();
        images.extend(check_dockerfile(&name, &read(&file), &ws));
    }
    // One image per binary the cluster runs.
    for bin in ["quiver-worker", "quiver-dashboard", "quiver-operator"] {
        assert!(images.values().any(|(p, _)| p.ends_with(&format!("/{bin}"))), "no image runs {bin}: {images:?}");
    }
    println!("images: {images:?}");
}

/// The operator links the worker crate without its `server` feature: none of
/// the loading, storage or compute crates (the operator image's build time and
/// size). `arrow-cast`, `arrow-select` and `arrow-ord` stay: arrow-flight,
/// which the operator's worker client speaks, depends on them.
#[test]
fn the_operator_links_no_parquet_object_store_or_arrow_compute() {
    let tree = |features: &[&str]| -> BTreeSet<String> {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(repo_root()).args([
            "tree",
            "--offline",
            "-p",
            "quiver-operator",
            "-e",
            "normal",
            "--prefix",
            "none",
        ]);
        for f in features {
            cmd.args(["-F", f]);
        }
        let out = cmd.output().expect("cargo tree runs");
        assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect()
    };
    let heavy = ["parquet", "object_store", "arrow-csv", "rayon", "zstd"];
    // Nothing in the workspace builds the `arrow` umbrella or the kernels only
    // it pulls (see the workspace Cargo.toml).
    let unused = ["arrow", "arrow-arith", "arrow-string", "arrow-row"];
    let lean = tree(&[]);
    assert!(
        lean.contains("quiver-worker") && lean.contains("arrow-flight"),
        "the operator uses the worker client: {lean:?}"
    );
    let linked: Vec<&str> = heavy.iter().copied().filter(|c| lean.contains(*c)).collect();
    assert!(linked.is_empty(), "the operator links {linked:?}");
    // The check can fail: with the worker's server side, those crates are there.
    let full = tree(&["quiver-worker/server"]);
    assert!(heavy.iter().all(|c| full.contains(*c)), "the server feature no longer pulls {heavy:?}: update this test");
    let built: Vec<&str> = unused.iter().copied().filter(|c| full.contains(*c)).collect();
    assert!(built.is_empty(), "the worker's server side builds {built:?} again");
    println!("operator: {} crates; with the worker's server side: {}", lean.len(), full.len());
}

#[test]
fn dockerfile_check_catches_a_missing_binary_path_or_member() {
    let ws = workspace();
    let good = read(&repo_root().join("deploy/Dockerfile"));
    for (from, to, expected) in [
        ("--bin quiver-worker", "--bin quiver-wrker", "--bin quiver-wrker is not a binary"),
        ("COPY worker worker", "COPY wrker worker", "COPY wrker: no such path"),
        ("COPY tests tests\n", "\n", "workspace member tests is not copied"),
        ("/out/quiver-dashboard /usr", "/out/quiver-dash /usr", "does not produce it"),
        (
            "ENTRYPOINT [\"/usr/local/bin/quiver-operator\"]",
            "ENTRYPOINT /usr/local/bin/quiver-operator",
            "exec (JSON) form",
        ),
        ("USER 65532:65532", "USER root", "runs as root"),
        (
            "-p quiver-worker -p quiver-dashboard",
            "-p quiver-worker -p quiver-dashboard -p quiver-operator",
            "quiver-operator is built with",
        ),
    ] {
        assert!(good.contains(from), "the Dockerfile no longer contains {from:?}; update this test");
        let bad = good.replacen(from, to, 1);
        let caught = std::panic::catch_unwind(|| check_dockerfile("mutated", &bad, &ws));
        let message = match caught {
            Ok(_) => panic!("replacing {from:?} with {to:?} went unnoticed"),
            Err(e) => e.downcast_ref::<String>().cloned().unwrap_or_default(),
        };
        assert!(message.contains(expected), "replacing {from:?}: expected {expected:?}, got {message:?}");
    }
}

#[test]
fn images_run_as_the_user_the_operator_and_the_chart_expect() {
    let root = repo_root();
    let dockerfile = read(&root.join("deploy/Dockerfile"));
    let users: BTreeSet<String> = parse_dockerfile(&dockerfile)
        .into_iter()
        .filter(|i| i.keyword == "USER")
        .map(|i| i.args.split(':').next().unwrap().to_string())
        .collect();
    let operator = read(&root.join("operator/src/children/mod.rs"));
    let run_as = operator
        .lines()
        .find_map(|l| l.trim().strip_prefix("pub const RUN_AS_USER: i64 = "))
        .expect("operator/src/children/mod.rs defines RUN_AS_USER")
        .trim_end_matches(';')
        .to_string();
    let chart = read(&root.join("charts/quiver/templates/deployment.yaml"));
    let chart_users: BTreeSet<String> =
        chart.lines().filter_map(|l| l.trim().strip_prefix("runAsUser: ")).map(|v| v.trim().to_string()).collect();
    assert_eq!(users, BTreeSet::from([run_as.clone()]), "Dockerfile USER vs operator RUN_AS_USER");
    assert_eq!(chart_users, BTreeSet::from([run_as]), "chart runAsUser vs operator RUN_AS_USER");
}

#[test]
fn chart_deploys_the_release_the_workspace_builds() {
    let root = repo_root();
    let workspace_version = read(&root.join("Cargo.toml"))
        .lines()
        .skip_while(|l| l.trim() != "[workspace.package]")
        .find_map(|l| toml_string(l, "version"))
        .expect("[workspace.package] has a version");
    let chart = read(&root.join("charts/quiver/Chart.yaml"));
    let app_version = chart
        .lines()
        .find_map(|l| l.strip_prefix("appVersion:"))
        .expect("Chart.yaml has an appVersion")
        .trim()
        .trim_matches('"');
    assert_eq!(app_version, workspace_version, "Chart.yaml appVersion (the default image tag)");
    // The chart's default images are the ones the operator falls back to.
    let helpers = read(&root.join("charts/quiver/templates/_helpers.tpl"));
    let operator = read(&root.join("operator/src/validate.rs"));
    for image in ["ghcr.io/quiver-dev/quiver-worker", "ghcr.io/quiver-dev/quiver-dashboard"] {
        assert!(helpers.contains(&format!("\"{image}:%s\"")), "chart default {image}");
        assert!(operator.contains(&format!("\"{image}:{{v}}\"")), "operator default {image}");
    }
}

// ------------------------------------------------------------------ launch.sh

#[test]
fn launch_rejects_bad_arguments_with_a_clear_message() {
    for (args, expected) in [
        (vec!["--workers", "0"], "--workers must be a whole number"),
        (vec!["--port", "http"], "--port must be a port number"),
        (vec!["--rows", "-5"], "--rows must be a positive whole number"),
        (vec!["--frobnicate"], "unknown option: --frobnicate"),
    ] {
        let out = Command::new("bash").arg(launch_script()).args(&args).output().expect("bash runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: expected {expected:?} in: {stderr}");
    }
}

async fn post_query(http: &reqwest::Client, base: &str, token: &str, body: &Value) -> Value {
    let resp = http
        .post(format!("{base}/api/query"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {base}/api/query: {e}"));
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "POST {base}/api/query answered {status}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// The parts of an answer that must not depend on which dashboard gave it.
fn counts(answer: &Value) -> Value {
    json!({
        "total": answer["total"],
        "selected": answer["selected"],
        "histograms": answer["histograms"],
        "partial": answer["partial"],
        "answered": answer["shards"]["answered"],
    })
}

async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> Value {
    let resp = http.get(url).bearer_auth(token).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.json().await.unwrap()
}

fn dataset(catalogue: &Value, name: &str) -> Value {
    catalogue["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("dataset {name} in {catalogue}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_serves_the_same_counts_through_nginx_and_survives_a_dashboard_dying() {
    if !nginx_available() {
        println!("SKIPPED launch test: nginx is not installed (apt-get install nginx; .ci/run installs it)");
        return;
    }
    const ROWS: u64 = 200_000;
    const AIS_ROWS: u64 = 50_000;
    let tmp = tempfile::tempdir().unwrap();
    let token = "packaging-test-token-0123456789";
    let data = tmp.path().join("data");
    let mut l = launch(
        tmp.path(),
        &[
            "--workers",
            "2",
            "--dashboards",
            "2",
            "--rows",
            &ROWS.to_string(),
            "--ais-rows",
            &AIS_ROWS.to_string(),
            "--data",
            data.to_str().unwrap(),
        ],
        token,
    );
    let (run_dir, url, log) = (l.run_dir.clone(), l.url.clone(), l.log.clone());

    let env = env_file(&run_dir.join("cluster.env"));
    assert_eq!(env["QUIVER_URL"], url);
    let dashboards: Vec<String> = env["QUIVER_DASHBOARDS"].split(',').map(String::from).collect();
    assert_eq!(dashboards.len(), 2, "two dashboards: {dashboards:?}");
    let pids = started_processes(&run_dir);
    let roles: Vec<&str> = pids.iter().map(|(r, _, _)| r.as_str()).collect();
    assert_eq!(roles, ["worker", "worker", "dashboard", "dashboard", "nginx"], "processes started: {pids:?}");

    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    // The catalogue through nginx: both datasets, every row loaded.
    let datasets = get_json(&http, &format!("{url}/api/datasets"), token).await;
    let find = |name: &str| dataset(&datasets, name);
    let towers = find("celltowers");
    assert_eq!(towers["rows"].as_u64(), Some(ROWS), "celltowers rows");
    assert_eq!(find("ais")["rows"].as_u64(), Some(AIS_ROWS), "ais rows");
    // Without a token nginx passes the dashboard's refusal through.
    let anonymous = http.get(format!("{url}/api/datasets")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // A crossfiltered query on every histogram, filtered to the first category.
    let category = towers["category"].as_str().unwrap().to_string();
    let dims: Vec<Value> = towers["dimensions"].as_array().unwrap().clone();
    let names: Vec<&str> = dims.iter().map(|d| d["name"].as_str().unwrap()).collect();
    let first_label =
        dims.iter().find(|d| d["name"] == category.as_str()).unwrap()["bins"][0]["label"].as_str().unwrap().to_string();
    let query = json!({
        "dataset": "celltowers",
        "filters": { category.clone(): { "categories": [first_label.clone()] } },
        "histograms": names,
    });
    let via_nginx = post_query(&http, &url, token, &query).await;
    let direct = post_query(&http, &dashboards[0], token, &query).await;
    let direct_other = post_query(&http, &dashboards[1], token, &query).await;
    assert_eq!(counts(&via_nginx), counts(&direct), "through nginx vs straight to dashboard 0");
    assert_eq!(counts(&direct), counts(&direct_other), "dashboard 0 vs dashboard 1");
    // Complete: every row counted once, both shards answered.
    assert_eq!(via_nginx["total"].as_u64(), Some(ROWS));
    assert_eq!(via_nginx["partial"], false);
    assert_eq!(via_nginx["shards"]["answered"], json!([0, 1]));
    let own = &via_nginx["histograms"][category.as_str()];
    let own_total: u64 = own["bins"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum::<u64>()
        + own["missing"].as_u64().unwrap_or(0);
    assert_eq!(own_total, ROWS, "the filtered dimension's own histogram ignores its filter");
    let first = own["bins"].as_array().unwrap().iter().find(|b| b["label"] == first_label.as_str()).unwrap();
    assert_eq!(via_nginx["selected"], first["count"], "selected = rows in the chosen category");
    let selected = via_nginx["selected"].as_u64().unwrap();
    assert!(selected > 0 && selected < ROWS, "the filter selects some rows: {selected}");

    // nginx spreads requests over both dashboards.
    for _ in 0..6 {
        assert_eq!(counts(&post_query(&http, &url, token, &query).await), counts(&direct));
    }
    let access = read(&run_dir.join("logs/nginx-access.log"));
    for d in &dashboards {
        let addr = d.trim_start_matches("http://");
        assert!(access.contains(&format!("upstream={addr}")), "nginx never used {addr}:\n{access}");
    }

    // One dashboard dies: nginx moves every request to the other.
    let (_, _, dashboard0) = pids.iter().find(|(r, i, _)| r == "dashboard" && i == "0").unwrap().clone();
    signal(dashboard0 as i64, "KILL");
    let deadline = Instant::now() + Duration::from_secs(5);
    while pid_alive(dashboard0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..10 {
        assert_eq!(counts(&post_query(&http, &url, token, &query).await), counts(&direct), "after a dashboard died");
        let r = http.get(format!("{url}/api/datasets")).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET /api/datasets after a dashboard died");
    }

    assert!(l.cluster.child.try_wait().unwrap().is_none(), "launch.sh keeps running when one dashboard dies");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.lock().unwrap().contains("quiver: dashboard 0 (pid") {
        assert!(
            Instant::now() < deadline,
            "launch.sh did not report the dashboard that died:\n{}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Stop: every process launch.sh started exits, nginx's own workers too.
    stop_and_check(&mut l).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_s3_mode_loads_every_shard_from_the_s3_server() {
    if !nginx_available() {
        println!("SKIPPED launch --s3 test: nginx is not installed (apt-get install nginx; .ci/run installs it)");
        return;
    }
    let moto = Command::new("python3").args(["-c", "import moto.server"]).output();
    if !moto.is_ok_and(|o| o.status.success()) {
        println!("SKIPPED launch --s3 test: python3 cannot import moto.server (pip install 'moto[server]')");
        return;
    }
    const ROWS: u64 = 120_000;
    const AIS_ROWS: u64 = 30_000;
    let tmp = tempfile::tempdir().unwrap();
    let token = "packaging-s3-token-0123456789";
    let mut l = launch(
        tmp.path(),
        &[
            "--s3",
            "--workers",
            "3",
            "--dashboards",
            "1",
            "--rows",
            &ROWS.to_string(),
            "--ais-rows",
            &AIS_ROWS.to_string(),
        ],
        token,
    );
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let catalogue = get_json(&http, &format!("{}/api/datasets", l.url), token).await;
    assert_eq!(dataset(&catalogue, "celltowers")["rows"].as_u64(), Some(ROWS));
    assert_eq!(dataset(&catalogue, "ais")["rows"].as_u64(), Some(AIS_ROWS));
    let category = dataset(&catalogue, "ais")["category"].as_str().unwrap().to_string();
    let answer = post_query(&http, &l.url, token, &json!({"dataset": "ais", "histograms": [category]})).await;
    assert_eq!(answer["total"].as_u64(), Some(AIS_ROWS));
    assert_eq!(answer["shards"]["answered"], json!([0, 1, 2]), "all three shards answered: {answer}");
    // The workers read the data from the S3 server, not from a directory.
    let s3_log = read(&l.run_dir.join("logs/s3.log"));
    for preset in ["celltowers", "ais"] {
        assert!(s3_log.contains(&format!("GET /quiver/{preset}/")), "no worker read s3://quiver/{preset}/:\n{s3_log}");
    }
    assert_eq!(started_processes(&l.run_dir)[0].0, "s3", "the S3 server is one of the processes launch.sh stops");
    stop_and_check(&mut l).await;
}
