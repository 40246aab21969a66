//! Workers over real Arrow Flight on loopback, loading real files from a
//! directory and from a real S3-protocol server: sharding completeness,
//! answers against a reference computed from the raw values, auth, and every
//! kind of bad input.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use quiver_worker::Error;
use quiver_worker::flight::client::WorkerClient;
use quiver_worker::protocol::{Filter, LoadState, Query, QueryResult, View, Viewport, WorkerStats};
use quiver_worker::server::{RunningWorker, WorkerConfig, spawn};
use quiver_worker::source::{LoadOptions, S3Defaults, ShardId};
use quiver_worker::spec::{DatasetSpec, Preset, S3Options};
use support::*;

fn spec(name: &str, url: &str) -> DatasetSpec {
    DatasetSpec {
        name: name.into(),
        source: url.into(),
        preset: Some(Preset::Celltowers),
        format: None,
        s3: None,
        view: None,
        details: None,
    }
}

fn cfg(datasets: Vec<DatasetSpec>, index: u32, count: u32, token: Option<&str>) -> WorkerConfig {
    WorkerConfig {
        datasets,
        shard: ShardId::new(index, count).unwrap(),
        token: token.map(String::from),
        load: LoadOptions::default(),
        result_cache_bytes: quiver_worker::cache::DEFAULT_BUDGET,
    }
}

async fn wait_loaded(c: &WorkerClient, dataset: &str) -> WorkerStats {
    for _ in 0..600 {
        if let Ok(s) = c.stats().await
            && let Some(d) = s.datasets.iter().find(|d| d.name == dataset)
            && d.state != LoadState::Loading
            && !d.reloading
        {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("dataset {dataset} did not finish loading");
}

fn all_views(dataset: &str) -> Query {
    Query {
        version: 1,
        dataset: dataset.into(),
        filters: BTreeMap::new(),
        viewport: Some(Viewport::WORLD),
        viewport_filter: false,
        views: vec![
            View::Histogram { dimension: "radio".into() },
            View::Histogram { dimension: "range".into() },
            View::Histogram { dimension: "created".into() },
            View::Raster { width: 64, height: 32 },
            View::Sample { limit: 20, all_or_none: false },
        ],
    }
}

fn counts(r: &QueryResult, dim: &str) -> Vec<u64> {
    r.histograms.iter().find(|h| h.dimension == dim).unwrap().bins.iter().map(|b| b.count).collect()
}

fn sum(results: &[QueryResult], dim: &str) -> Vec<u64> {
    let mut acc = counts(&results[0], dim);
    for r in &results[1..] {
        for (a, b) in acc.iter_mut().zip(counts(r, dim)) {
            *a += b;
        }
    }
    acc
}

async fn start_shards(url: &str, n: u32, token: Option<&str>) -> (Vec<RunningWorker>, Vec<WorkerClient>) {
    let mut workers = vec![];
    let mut clients = vec![];
    for i in 0..n {
        let w = spawn(cfg(vec![spec("towers", url)], i, n, token)).await.unwrap();
        let c = WorkerClient::connect(&w.flight_url(), token.map(String::from)).await.unwrap();
        let s = wait_loaded(&c, "towers").await;
        assert_eq!(s.datasets[0].state, LoadState::Ready, "{:?}", s.datasets[0].error);
        workers.push(w);
        clients.push(c);
    }
    (workers, clients)
}

/// The shards of `n` workers add up to the reference, whatever the format.
async fn check_sharded(url: &str, rows: &[Tower], n: u32) {
    let (workers, clients) = start_shards(url, n, None).await;
    let mut results = vec![];
    for c in &clients {
        results.push(c.query(&all_views("towers")).await.unwrap());
    }
    let total: u64 = results.iter().map(|r| r.total).sum();
    assert_eq!(total, rows.len() as u64, "every row loaded exactly once");
    let mut shards: Vec<u32> = results.iter().map(|r| r.shard.shard).collect();
    shards.sort();
    assert_eq!(shards, (0..n).collect::<Vec<_>>());
    assert!(results.iter().all(|r| r.shard.shards == n && r.shard.generation == results[0].shard.generation));
    let want = reference(rows);
    assert_eq!(sum(&results, "radio")[..5], want.radio[..5]);
    assert_eq!(sum(&results, "range"), want.range.to_vec());
    assert_eq!(sum(&results, "created"), want.year.to_vec());
    // The raster counts every row once.
    let raster_total: u64 =
        results.iter().map(|r| r.raster.as_ref().unwrap().counts.iter().map(|&c| c as u64).sum::<u64>()).sum();
    assert_eq!(raster_total, rows.len() as u64);
    for w in workers {
        w.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_shards_add_up_to_the_whole_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let rows = towers(30_000, 1);
    // Two files, row groups of 4,000: shards cut inside files.
    write_parquet(&dir.path().join("part-0.parquet"), &rows[..17_000], 4_000);
    write_parquet(&dir.path().join("part-1.parquet"), &rows[17_000..], 4_000);
    let url = format!("file://{}/", dir.path().display());
    check_sharded(&url, &rows, 1).await;
    check_sharded(&url, &rows, 2).await;
    check_sharded(&url, &rows, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gzip_csv_is_striped_across_shards() {
    let dir = tempfile::tempdir().unwrap();
    // More than two 64K-row chunks, so every shard gets some.
    let rows = towers(150_000, 2);
    write_csv(&dir.path().join("cell_towers.csv.gz"), &rows, true);
    check_sharded(&format!("file://{}/", dir.path().display()), &rows, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_csv_files_are_dealt_whole() {
    let dir = tempfile::tempdir().unwrap();
    let rows = towers(9_000, 3);
    for (i, chunk) in rows.chunks(3_000).enumerate() {
        write_csv(&dir.path().join(format!("part-{i}.csv")), chunk, false);
    }
    check_sharded(&format!("file://{}/", dir.path().display()), &rows, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossfilter_answers_match_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let rows = towers(20_000, 4);
    write_parquet(&dir.path().join("t.parquet"), &rows, 5_000);
    let (_w, clients) = start_shards(&format!("file://{}/", dir.path().display()), 1, None).await;
    let y2010 = 1_262_304_000i64;
    let y2015 = 1_420_070_400i64;
    let mut q = all_views("towers");
    q.filters.insert("radio".into(), Filter::Categories(vec!["LTE".into(), "NR".into()]));
    q.filters.insert("created".into(), Filter::Range { min: y2010 as f64, max: y2015 as f64 });
    // Paris, the viewport filters.
    q.viewport = Some(Viewport { west: 1.0, south: 48.0, east: 4.0, north: 50.0 });
    q.viewport_filter = true;
    let r = clients[0].query(&q).await.unwrap();
    let inside = |t: &Tower| t.lon >= 1.0 && t.lon < 4.0 && t.lat >= 48.0 && t.lat < 50.0;
    let radio_ok = |t: &Tower| t.radio == "LTE" || t.radio == "NR";
    let year_ok = |t: &Tower| (2010..2015).contains(&year_of(t.created));
    let want_selected = rows.iter().filter(|t| inside(t) && radio_ok(t) && year_ok(t)).count() as u64;
    assert_eq!(r.selected, want_selected);
    // Each histogram ignores its own filter.
    let radio = reference(rows.iter().filter(|t| inside(t) && year_ok(t)));
    assert_eq!(counts(&r, "radio")[..5], radio.radio[..5]);
    let year = reference(rows.iter().filter(|t| inside(t) && radio_ok(t)));
    assert_eq!(counts(&r, "created"), year.year.to_vec());
    let range = reference(rows.iter().filter(|t| inside(t) && radio_ok(t) && year_ok(t)));
    assert_eq!(counts(&r, "range"), range.range.to_vec());
    let sample = r.sample.unwrap();
    assert_eq!(sample.matched, want_selected);
    assert_eq!(sample.rows.len() as u64, want_selected.min(20));
    for s in &sample.rows {
        assert!(s.category == "LTE" || s.category == "NR");
        assert!((1.0..4.0).contains(&s.lon) && (48.0..50.0).contains(&s.lat), "{s:?}");
        let year: i32 = s.values["created"].parse().unwrap();
        assert!((2010..2015).contains(&year));
    }
    // An all-or-none sample (the ticket's `allOrNone`): every match when they
    // fit in the limit, none when they do not, `matched` either way.
    assert!((2..=10_000).contains(&want_selected), "{want_selected} rows in view");
    for (limit, want_rows) in [(want_selected, want_selected), (want_selected - 1, 0)] {
        let mut whole = q.clone();
        whole.views = vec![View::Sample { limit: limit as u32, all_or_none: true }];
        let s = clients[0].query(&whole).await.unwrap().sample.unwrap();
        assert_eq!((s.matched, s.rows.len() as u64), (want_selected, want_rows), "limit {limit}");
    }
    // A view with nothing to show (a sample of an empty selection, alone in
    // its query: the count an export asks first) is an answer, not an error.
    let none = Query {
        views: vec![View::Sample { limit: 1, all_or_none: false }],
        viewport: Some(Viewport { west: -40.0, south: 20.0, east: -35.0, north: 25.0 }),
        ..q.clone()
    };
    assert!(rows.iter().all(|t| !(-40.0..-35.0).contains(&t.lon) || !(20.0..25.0).contains(&t.lat)));
    let r = clients[0].query(&none).await.unwrap();
    assert_eq!((r.selected, r.total), (0, rows.len() as u64));
    let sample = r.sample.expect("an empty sample, not none");
    assert_eq!((sample.matched, sample.rows.len()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_the_token_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_parquet(&dir.path().join("t.parquet"), &towers(100, 5), 100);
    let w = spawn(cfg(vec![spec("towers", &format!("file://{}/", dir.path().display()))], 0, 1, Some("t0ken")))
        .await
        .unwrap();
    let good = WorkerClient::connect(&w.flight_url(), Some("t0ken".into())).await.unwrap();
    wait_loaded(&good, "towers").await;
    good.query(&all_views("towers")).await.unwrap();
    for token in [None, Some("wrong".to_string()), Some("t0ke".to_string())] {
        let c = WorkerClient::connect(&w.flight_url(), token).await.unwrap();
        assert!(matches!(c.query(&all_views("towers")).await, Err(Error::Unauthenticated(_))));
        assert!(matches!(c.stats().await, Err(Error::Unauthenticated(_))));
        assert!(matches!(c.datasets().await, Err(Error::Unauthenticated(_))));
        assert!(matches!(c.reload(None).await, Err(Error::Unauthenticated(_))));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_get_clear_errors_and_the_worker_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    write_parquet(&dir.path().join("t.parquet"), &towers(1000, 6), 1000);
    let (workers, clients) = start_shards(&format!("file://{}/", dir.path().display()), 1, None).await;
    let c = &clients[0];
    let base = all_views("towers");
    let mut cases: Vec<(Query, &str)> = vec![];
    let mut q = base.clone();
    q.dataset = "nope".into();
    cases.push((q, "unknown dataset"));
    let mut q = base.clone();
    q.views = vec![View::Raster { width: 5000, height: 10 }];
    cases.push((q, "4096"));
    let mut q = base.clone();
    q.views = vec![View::Raster { width: 4096, height: 4096 }];
    cases.push((q, "4194304"));
    let mut q = base.clone();
    q.views = vec![View::Sample { limit: 1_000_000, all_or_none: false }];
    cases.push((q, "10000"));
    let mut q = base.clone();
    q.views = vec![View::Histogram { dimension: "height".into() }];
    cases.push((q, "no dimension \"height\""));
    let mut q = base.clone();
    q.filters.insert("radio".into(), Filter::Categories(vec!["6G".into()]));
    cases.push((q, "no category \"6G\""));
    let mut q = base.clone();
    q.filters.insert("range".into(), Filter::Range { min: 10.0, max: 1.0 });
    cases.push((q, "above max"));
    let mut q = base.clone();
    q.viewport = Some(Viewport { west: 0.0, south: 10.0, east: 1.0, north: 5.0 });
    cases.push((q, "south"));
    let mut q = base.clone();
    q.version = 2;
    cases.push((q, "version 2"));
    for (q, needle) in cases {
        let e = c.query(&q).await.unwrap_err();
        assert!(e.to_string().contains(needle), "{needle:?} not in {e}");
    }
    // Raw tickets that are not queries at all.
    let raw =
        [&b"not json"[..], b"{}", b"{\"version\":1,\"dataset\":\"towers\",\"views\":[],\"x\":1}", &[0xff; 100_000]];
    for t in raw {
        let channel =
            tonic::transport::Endpoint::from_shared(workers[0].flight_url()).unwrap().connect().await.unwrap();
        let mut inner = arrow_flight::flight_service_client::FlightServiceClient::new(channel);
        let status = inner.do_get(arrow_flight::Ticket::new(t.to_vec())).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{}", status.message());
    }
    // Still serving.
    c.query(&base).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sources_fail_their_dataset_only() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    let corrupt = dir.path().join("corrupt");
    let nocol = dir.path().join("nocol");
    for d in [&good, &corrupt, &nocol] {
        std::fs::create_dir_all(d).unwrap();
    }
    write_parquet(&good.join("t.parquet"), &towers(500, 7), 500);
    std::fs::write(corrupt.join("t.parquet"), b"PAR1 this is not parquet at all PAR1").unwrap();
    std::fs::write(nocol.join("t.csv"), "radio,mcc,lon\nGSM,208,2.3\n").unwrap();
    let datasets = vec![
        spec("good", &format!("file://{}/", good.display())),
        spec("corrupt", &format!("file://{}/", corrupt.display())),
        spec("nocol", &format!("file://{}/", nocol.display())),
        spec("missing", &format!("file://{}/nowhere/", dir.path().display())),
    ];
    let w = spawn(cfg(datasets, 0, 1, None)).await.unwrap();
    let c = WorkerClient::connect(&w.flight_url(), None).await.unwrap();
    for name in ["good", "corrupt", "nocol", "missing"] {
        wait_loaded(&c, name).await;
    }
    let s = c.stats().await.unwrap();
    let get = |n: &str| s.datasets.iter().find(|d| d.name == n).unwrap().clone();
    assert_eq!(get("good").state, LoadState::Ready);
    let e = get("corrupt");
    assert_eq!(e.state, LoadState::Failed);
    assert!(e.error.as_ref().unwrap().contains("corrupt/t.parquet"), "{e:?}");
    let e = get("nocol");
    assert_eq!(e.state, LoadState::Failed);
    let msg = e.error.unwrap();
    assert!(msg.contains("nocol/t.csv") && msg.contains("\"lat\""), "{msg}");
    let e = get("missing");
    assert_eq!(e.state, LoadState::Failed);
    assert!(e.error.unwrap().contains("nowhere"));
    // The failed datasets answer "not ready", the good one answers.
    let err = c.query(&all_views("corrupt")).await.unwrap_err();
    assert!(matches!(&err, Error::NotReady { name, .. } if name == "corrupt"), "{err:?}");
    assert!(err.to_string().contains("not ready") && !err.is_transient(), "{err}");
    c.query(&all_views("good")).await.unwrap();
    // The HTTP side port is not ready while any dataset failed.
    let ready = reqwest_get(&format!("{}/readyz", w.http_url())).await;
    assert_eq!(ready.0, 503);
    assert_eq!(reqwest_get(&format!("{}/healthz", w.http_url())).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_that_cannot_fit_memory_is_refused_with_the_numbers() {
    let dir = tempfile::tempdir().unwrap();
    write_parquet(&dir.path().join("t.parquet"), &towers(50_000, 8), 10_000);
    let mut c = cfg(vec![spec("towers", &format!("file://{}/", dir.path().display()))], 0, 1, None);
    c.load.memory_limit = Some(10 << 20);
    let w = spawn(c).await.unwrap();
    let client = WorkerClient::connect(&w.flight_url(), None).await.unwrap();
    let s = wait_loaded(&client, "towers").await;
    let d = &s.datasets[0];
    assert_eq!(d.state, LoadState::Failed);
    let msg = d.error.clone().unwrap();
    assert!(msg.contains("50000 rows") && msg.contains("memory limit is 10 MiB"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_picks_up_new_files_and_a_failed_reload_keeps_the_old_data() {
    let dir = tempfile::tempdir().unwrap();
    write_parquet(&dir.path().join("a.parquet"), &towers(1_000, 9), 1_000);
    let (w, clients) = start_shards(&format!("file://{}/", dir.path().display()), 1, None).await;
    let c = &clients[0];
    let before = c.query(&all_views("towers")).await.unwrap();
    assert_eq!(before.total, 1_000);
    // The same query again is answered from the kept result, equal to the scan.
    let again = c.query(&all_views("towers")).await.unwrap();
    assert_eq!(
        (again.histograms.clone(), again.raster.clone(), again.selected),
        (before.histograms.clone(), before.raster.clone(), before.selected)
    );
    assert_eq!(again.kernel_micros, 0, "no kernel ran for a kept answer");
    let (_, metrics) = reqwest_get(&format!("{}/metrics", w[0].http_url())).await;
    assert!(metrics.contains("quiver_worker_answers_total{source=\"cached\"} 1"), "{metrics}");
    assert!(metrics.contains("quiver_worker_answers_total{source=\"computed\"} 1"), "{metrics}");
    // A reload is a new generation: nothing kept from the old data is served.
    write_parquet(&dir.path().join("b.parquet"), &towers(500, 10), 500);
    c.reload(Some("towers")).await.unwrap();
    wait_loaded(c, "towers").await;
    let after = c.query(&all_views("towers")).await.unwrap();
    assert_eq!(after.total, 1_500);
    assert_ne!(after.shard.generation, before.shard.generation);
    // Break the source: the reload fails, the old data keeps serving.
    std::fs::write(dir.path().join("c.parquet"), b"garbage").unwrap();
    c.reload(None).await.unwrap();
    let s = wait_loaded(c, "towers").await;
    assert_eq!(s.datasets[0].state, LoadState::Ready);
    assert!(s.datasets[0].error.as_ref().unwrap().contains("c.parquet"));
    assert_eq!(c.query(&all_views("towers")).await.unwrap().total, 1_500);
    let unknown = c.reload(Some("other")).await.unwrap_err();
    assert!(matches!(unknown, Error::UnknownDataset(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasets_load_from_a_real_s3_server_with_signed_requests() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("towers-bucket");
    std::fs::create_dir_all(bucket.join("opencellid")).unwrap();
    let rows = towers(12_000, 11);
    write_parquet(&bucket.join("opencellid/part-0.parquet"), &rows[..6_000], 2_000);
    write_csv(&bucket.join("opencellid/part-1.csv.gz"), &rows[6_000..], true);
    let s3 = S3Server::start(dir.path()).await;
    let s3opts = || S3Options {
        endpoint: Some(s3.endpoint.clone()),
        region: Some("us-east-1".into()),
        allow_http: Some(true),
        ..Default::default()
    };
    let creds = |secret: &str| S3Defaults {
        access_key_id: Some(S3_ACCESS_KEY.into()),
        secret_access_key: Some(secret.into()),
        ..Default::default()
    };
    let mut good = spec("towers", "s3://towers-bucket/opencellid/");
    good.s3 = Some(s3opts());
    let mut results = vec![];
    for i in 0..2 {
        let mut c = cfg(vec![good.clone()], i, 2, None);
        c.load.s3 = creds(S3_SECRET_KEY);
        let w = spawn(c).await.unwrap();
        let client = WorkerClient::connect(&w.flight_url(), None).await.unwrap();
        let s = wait_loaded(&client, "towers").await;
        assert_eq!(s.datasets[0].state, LoadState::Ready, "{:?}", s.datasets[0].error);
        results.push(client.query(&all_views("towers")).await.unwrap());
    }
    assert_eq!(results.iter().map(|r| r.total).sum::<u64>(), 12_000);
    assert_eq!(sum(&results, "range"), reference(&rows).range.to_vec());
    // Wrong secret: signatures fail, the dataset is Failed with the URL named.
    let mut c = cfg(vec![good.clone()], 0, 1, None);
    c.load.s3 = creds("wrong-secret");
    let w = spawn(c).await.unwrap();
    let client = WorkerClient::connect(&w.flight_url(), None).await.unwrap();
    let s = wait_loaded(&client, "towers").await;
    assert_eq!(s.datasets[0].state, LoadState::Failed);
    let msg = s.datasets[0].error.clone().unwrap();
    assert!(msg.contains("towers-bucket") && !msg.contains("wrong-secret"), "{msg}");
    // Missing bucket.
    let mut nobucket = spec("towers", "s3://no-such-bucket/x/");
    nobucket.s3 = Some(s3opts());
    let mut c = cfg(vec![nobucket], 0, 1, None);
    c.load.s3 = creds(S3_SECRET_KEY);
    let w = spawn(c).await.unwrap();
    let client = WorkerClient::connect(&w.flight_url(), None).await.unwrap();
    let s = wait_loaded(&client, "towers").await;
    assert_eq!(s.datasets[0].state, LoadState::Failed);
    assert!(s.datasets[0].error.clone().unwrap().contains("no-such-bucket"));
    // Unreachable endpoint.
    s3.stop();
    let mut down = good.clone();
    down.s3 = Some(S3Options { endpoint: Some("http://127.0.0.1:9".into()), ..s3opts() });
    let mut c = cfg(vec![down], 0, 1, None);
    c.load.s3 = creds(S3_SECRET_KEY);
    let w = spawn(c).await.unwrap();
    let client = WorkerClient::connect(&w.flight_url(), None).await.unwrap();
    let s = wait_loaded(&client, "towers").await;
    assert_eq!(s.datasets[0].state, LoadState::Failed);
}

async fn reqwest_get(url: &str) -> (u16, String) {
    // A tiny HTTP/1.1 GET over a raw socket keeps the worker tests free of an HTTP client.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let u = url::Url::parse(url).unwrap();
    let mut s = tokio::net::TcpStream::connect((u.host_str().unwrap(), u.port().unwrap())).await.unwrap();
    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", u.path());
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let code = buf.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, buf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_datasets_declare_their_view_and_metrics_count_queries() {
    use quiver_worker::spec::{Binning, CategoryDef, DimensionSpec, ViewConfig};
    let dir = tempfile::tempdir().unwrap();
    let rows = towers(5_000, 12);
    write_parquet(&dir.path().join("t.parquet"), &rows, 5_000);
    let cat = |l: &str| CategoryDef { label: l.into(), values: vec![l.into()], ranges: vec![], color: None };
    let view = ViewConfig {
        x: "lon".into(),
        y: "lat".into(),
        category: "tech".into(),
        dimensions: vec![
            DimensionSpec {
                name: "tech".into(),
                column: "radio".into(),
                title: None,
                bins: Binning::Categorical { categories: vec![cat("GSM"), cat("LTE")], other: "rest".into() },
            },
            DimensionSpec {
                name: "reach".into(),
                column: "range".into(),
                title: Some("Range".into()),
                bins: Binning::Linear { min: 0.0, max: 100_000.0, count: 10 },
            },
        ],
    };
    let custom = DatasetSpec {
        name: "custom".into(),
        source: format!("file://{}/", dir.path().display()),
        preset: None,
        format: None,
        s3: None,
        view: Some(view),
        details: None,
    };
    let w = spawn(cfg(vec![custom], 0, 1, None)).await.unwrap();
    let c = WorkerClient::connect(&w.flight_url(), None).await.unwrap();
    let s = wait_loaded(&c, "custom").await;
    assert_eq!(s.datasets[0].state, LoadState::Ready, "{:?}", s.datasets[0].error);
    let q = Query {
        version: 1,
        dataset: "custom".into(),
        filters: BTreeMap::new(),
        viewport: None,
        viewport_filter: false,
        views: vec![View::Histogram { dimension: "tech".into() }, View::Histogram { dimension: "reach".into() }],
    };
    let r = c.query(&q).await.unwrap();
    let mut want_tech = [0u64; 3];
    let mut want_reach = [0u64; 10];
    for t in &rows {
        want_tech[match t.radio {
            "GSM" => 0,
            "LTE" => 1,
            _ => 2,
        }] += 1;
        want_reach[((t.range as f64) / 10_000.0).floor().clamp(0.0, 9.0) as usize] += 1;
    }
    assert_eq!(counts(&r, "tech"), want_tech.to_vec());
    assert_eq!(counts(&r, "reach"), want_reach.to_vec());
    assert_eq!(r.histograms[0].bins[2].label, "rest");
    let infos = c.datasets().await.unwrap();
    assert_eq!(infos[0].view.category, "tech");
    // The side port counts the query and the rows held.
    let (code, body) = reqwest_get(&format!("{}/metrics", w.http_url())).await;
    assert_eq!(code, 200);
    assert!(body.contains("quiver_worker_queries_total{dataset=\"custom\"} 1"), "{body}");
    assert!(body.contains("quiver_worker_rows{dataset=\"custom\"} 5000"), "{body}");
    assert!(body.contains("quiver_worker_query_seconds_count 1"), "{body}");
    assert_eq!(reqwest_get(&format!("{}/readyz", w.http_url())).await.0, 200);
}
