//! A client that is not ours: pyarrow.flight against two workers serving
//! halves of generated cell towers, checked against pandas on the same files.

use std::time::Duration;

use quiver_worker::flight::client::WorkerClient;
use quiver_worker::protocol::LoadState;
use quiver_worker::server::{WorkerConfig, spawn};
use quiver_worker::source::{LoadOptions, ShardId};
use quiver_worker::spec::{DatasetSpec, Format, Preset};
use quiver_worker::synth::{GenOptions, generate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_flight_reads_our_answers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("towers");
    let url = format!("file://{}/", data.display());
    let mut opts = GenOptions::new(Preset::Celltowers, 120_000, url.clone());
    opts.format = Format::Parquet;
    opts.files = 3;
    generate(&opts, false).await.unwrap();

    let token = "interop-token";
    let mut workers = vec![];
    for i in 0..2 {
        let cfg = WorkerConfig {
            datasets: vec![DatasetSpec {
                name: "towers".into(),
                source: url.clone(),
                preset: Some(Preset::Celltowers),
                format: None,
                s3: None,
                view: None,
                details: None,
            }],
            shard: ShardId::new(i, 2).unwrap(),
            token: Some(token.into()),
            load: LoadOptions::default(),
            result_cache_bytes: quiver_worker::cache::DEFAULT_BUDGET,
        };
        let w = spawn(cfg).await.unwrap();
        let c = WorkerClient::connect(&w.flight_url(), Some(token.into())).await.unwrap();
        let mut ready = false;
        for _ in 0..400 {
            let s = c.stats().await.unwrap();
            match s.datasets[0].state {
                LoadState::Ready => {
                    ready = true;
                    break;
                }
                LoadState::Failed => panic!("load failed: {:?}", s.datasets[0].error),
                LoadState::Loading => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        assert!(ready, "worker {i} loaded");
        workers.push(w);
    }
    let endpoints: Vec<String> = workers.iter().map(|w| format!("grpc+tcp://{}", w.flight_addr())).collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/flight_client.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .args(["--endpoints", &endpoints.join(","), "--token", token, "--data"])
        .arg(&data)
        .output()
        .await
        .expect("python3 runs (pip install -r .ci/requirements.txt)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    assert!(out.status.success(), "pyarrow interop checks failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all interop checks passed"));

    // The dashboard's "copy as Python" program, generated for these workers,
    // runs as is and reads every LTE row of the files.
    let ticket = quiver_worker::protocol::Query {
        version: 1,
        dataset: "towers".into(),
        filters: [("radio".to_string(), quiver_worker::protocol::Filter::Categories(vec!["LTE".into()]))].into(),
        viewport: None,
        viewport_filter: false,
        views: vec![quiver_worker::protocol::View::Rows { limit: 1_000_000, columns: None }],
    };
    let urls: Vec<String> = workers.iter().map(|w| w.flight_url()).collect();
    let snippet = quiver_worker::export::python_snippet(&ticket, &urls);
    let file = dir.path().join("snippet.py");
    std::fs::write(&file, &snippet).unwrap();
    let out = tokio::process::Command::new("python3")
        .arg(&file)
        .env("QUIVER_WORKER_TOKEN", token)
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Python snippet failed:\n{snippet}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = lte_rows(&data);
    assert!(stdout.starts_with(&format!("{want} rows\n")), "the snippet read {stdout}; the files hold {want} LTE rows");
    // Without the token the workers refuse it.
    let out =
        tokio::process::Command::new("python3").arg(&file).env_remove("QUIVER_WORKER_TOKEN").output().await.unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Unauthenticated"));
}

/// LTE rows of the generated files, read with the parquet crate.
fn lte_rows(dir: &std::path::Path) -> usize {
    use arrow_array::cast::AsArray;
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "parquet") {
            continue;
        }
        let r =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&p).unwrap())
                .unwrap()
                .build()
                .unwrap();
        for b in r {
            let b = b.unwrap();
            n += b.column_by_name("radio").unwrap().as_string::<i32>().iter().filter(|v| *v == Some("LTE")).count();
        }
    }
    n
}
