//! `GET /api/export` over two real in-process workers: exactly the rows the
//! filters and the map view select (checked against the files), as CSV and
//! Parquet that parse back; the row limit refused with the count before any
//! byte; a wrong token refused; the Python snippet names the workers.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampSecondType};
use axum::http::StatusCode;
use common::*;
use quiver_dashboard::discovery::Discovery;
use quiver_worker::geo::{QViewport, lat_to_y, lon_to_x};
use quiver_worker::protocol::Viewport;
use serde_json::json;

fn encode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

fn export_url(path: &str, format: Option<&str>, request: &serde_json::Value) -> String {
    let f = format.map(|f| format!("format={f}&")).unwrap_or_default();
    format!("{path}?{f}request={}", encode(&request.to_string()))
}

/// (mcc, net, range, created) of every LTE row inside `vp`, from the files.
fn reference(dir: &std::path::Path, vp: &Viewport) -> Vec<(i64, i64, i64, i64)> {
    let q = QViewport::from_viewport(vp);
    let mut out = vec![];
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
            let radio = b.column_by_name("radio").unwrap().as_string::<i32>().clone();
            let lon = b.column_by_name("lon").unwrap().as_primitive::<Float64Type>().clone();
            let lat = b.column_by_name("lat").unwrap().as_primitive::<Float64Type>().clone();
            let mcc = b.column_by_name("mcc").unwrap().as_primitive::<Int32Type>().clone();
            let net = b.column_by_name("net").unwrap().as_primitive::<Int32Type>().clone();
            let range = b.column_by_name("range").unwrap().as_primitive::<Int64Type>().clone();
            let created = b.column_by_name("created").unwrap().as_primitive::<Int64Type>().clone();
            for i in 0..b.num_rows() {
                if radio.value(i) == "LTE" && q.contains(lon_to_x(lon.value(i)), lat_to_y(lat.value(i))) {
                    out.push((mcc.value(i) as i64, net.value(i) as i64, range.value(i), created.value(i)));
                }
            }
        }
    }
    out.sort();
    out
}

fn tuples(batches: &[RecordBatch]) -> Vec<(i64, i64, i64, i64)> {
    let mut out = vec![];
    for b in batches {
        let int =
            |n: &str| b.column_by_name(n).unwrap_or_else(|| panic!("column {n}")).as_primitive::<Int64Type>().clone();
        let (mcc, net, range) = (int("mcc"), int("net"), int("range"));
        let created = b.column_by_name("created").unwrap().as_primitive::<TimestampSecondType>().clone();
        let radio = b.column_by_name("radio").unwrap().as_string::<i32>().clone();
        for i in 0..b.num_rows() {
            assert_eq!(radio.value(i), "LTE");
            out.push((mcc.value(i), net.value(i), range.value(i), created.value(i)));
        }
    }
    out.sort();
    out
}

async fn start_worker(url: &str, shard: u32) -> quiver_worker::server::RunningWorker {
    use quiver_worker::server::{WorkerConfig, spawn};
    use quiver_worker::source::{LoadOptions, ShardId};
    use quiver_worker::spec::{DatasetSpec, Preset};
    let spec = DatasetSpec {
        name: "celltowers".into(),
        source: url.into(),
        preset: Some(Preset::Celltowers),
        format: None,
        s3: None,
        view: None,
        details: None,
    };
    let cfg = WorkerConfig {
        datasets: vec![spec],
        shard: ShardId::new(shard, 2).unwrap(),
        token: Some("worker-secret".into()),
        load: LoadOptions::default(),
        result_cache_bytes: quiver_worker::cache::DEFAULT_BUDGET,
    };
    spawn(cfg).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_stream_exactly_the_selected_rows_as_csv_and_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/", dir.path().display());
    let mut o = quiver_worker::synth::GenOptions::new(quiver_worker::spec::Preset::Celltowers, 40_000, url.clone());
    o.files = 4;
    quiver_worker::synth::generate(&o, false).await.unwrap();
    let (w0, w1) = (start_worker(&url, 0).await, start_worker(&url, 1).await);
    let endpoints = vec![w0.flight_url(), w1.flight_url()];
    let app_for = |limit: Option<u64>| {
        let mut args = serve_args(&endpoints);
        args.worker_token = Some("worker-secret".into());
        args.worker_timeout = "10s".into();
        args.export_row_limit = limit;
        let config = quiver_dashboard::config::Config::try_from(args).unwrap();
        let state = quiver_dashboard::AppState::new(
            &config,
            Discovery::fixed(endpoints.clone()),
            Arc::new(quiver_dashboard::flight::FlightConnector::new(Some("worker-secret".into()))),
        );
        quiver_dashboard::app(state)
    };
    let app = app_for(None);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let j = send(&app, bearer(get("/api/status"), TOKEN)).await.json();
        let ready =
            j["workers"].as_array().unwrap().iter().all(|w| w["ok"] == true && w["datasets"][0]["state"] == "ready");
        if ready && j["complete"] == true {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "workers did not load: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Europe, LTE only, the map filtering.
    let vp = Viewport { west: -10.0, south: 35.0, east: 30.0, north: 60.0 };
    let request = json!({"dataset": "celltowers", "filters": {"radio": {"categories": ["LTE"]}},
                         "viewport": {"west": vp.west, "south": vp.south, "east": vp.east, "north": vp.north},
                         "viewportFilter": true});
    let want = reference(dir.path(), &vp);
    assert!(want.len() > 100, "the test selects a fair number of rows ({})", want.len());

    // The counter of /api/query agrees with the export's count.
    let q = json!({"dataset": "celltowers", "filters": {"radio": {"categories": ["LTE"]}},
                   "viewport": request["viewport"], "viewportFilter": true, "histograms": ["radio"]});
    assert_eq!(send(&app, query(q)).await.json()["selected"], want.len());

    let csv = send(&app, bearer(get(&export_url("/api/export", Some("csv"), &request)), TOKEN)).await;
    assert_eq!(csv.status, StatusCode::OK, "{}", String::from_utf8_lossy(&csv.body));
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert!(csv.header("content-disposition").unwrap().contains("celltowers-export.csv"));
    assert_eq!(csv.header("x-quiver-rows"), Some(want.len().to_string().as_str()));
    let text = String::from_utf8(csv.body.to_vec()).unwrap();
    assert!(text.starts_with("lon,lat,radio,radio.exact,mcc,net,range,created\n"), "{}", &text[..200.min(text.len())]);
    let (schema, _) = arrow_csv::reader::Format::default()
        .with_header(true)
        .infer_schema(std::io::Cursor::new(text.as_bytes()), None)
        .unwrap();
    let reader = arrow_csv::ReaderBuilder::new(Arc::new(schema))
        .with_header(true)
        .build(std::io::Cursor::new(text.as_bytes()))
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, want.len(), "CSV rows");
    // CSV carries times as text: compare the other values, and the times parsed.
    let mut got = vec![];
    for b in &batches {
        let int = |n: &str| arrow_cast::cast(b.column_by_name(n).unwrap(), &arrow_schema::DataType::Int64).unwrap();
        let (mcc, net, range) = (int("mcc"), int("net"), int("range"));
        let created = arrow_cast::cast(b.column_by_name("created").unwrap(), &arrow_schema::DataType::Utf8).unwrap();
        for i in 0..b.num_rows() {
            let t = quiver_worker::bins::parse_timestamp(created.as_string::<i32>().value(i)).unwrap();
            got.push((
                mcc.as_primitive::<Int64Type>().value(i),
                net.as_primitive::<Int64Type>().value(i),
                range.as_primitive::<Int64Type>().value(i),
                t,
            ));
        }
    }
    got.sort();
    assert_eq!(got, want, "CSV values");

    let pq = send(&app, bearer(get(&export_url("/api/export", Some("parquet"), &request)), TOKEN)).await;
    assert_eq!(pq.status, StatusCode::OK, "{}", String::from_utf8_lossy(&pq.body));
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(pq.body.clone())
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    assert_eq!(tuples(&batches), want, "Parquet values");
    // Positions round-trip to within the store's quantisation (about a centimetre).
    let lon = batches[0].column_by_name("lon").unwrap().as_primitive::<Float64Type>();
    assert!(lon.values().iter().all(|v| (-10.0..30.0).contains(v)));

    // A selection of no rows (the Atlantic, far from the coasts) is still a
    // file of the export's columns: a CSV header, a Parquet file of 0 rows.
    let empty = json!({"dataset": "celltowers", "viewport": {"west": -40.0, "south": 20.0, "east": -35.0, "north": 25.0},
                       "viewportFilter": true});
    let csv = send(&app, bearer(get(&export_url("/api/export", Some("csv"), &empty)), TOKEN)).await;
    assert_eq!(csv.status, StatusCode::OK, "{}", String::from_utf8_lossy(&csv.body));
    assert_eq!(csv.header("x-quiver-rows"), Some("0"));
    let columns = ["lon", "lat", "radio", "radio.exact", "mcc", "net", "range", "created"];
    assert_eq!(String::from_utf8(csv.body.to_vec()).unwrap(), format!("{}\n", columns.join(",")));
    let pq = send(&app, bearer(get(&export_url("/api/export", Some("parquet"), &empty)), TOKEN)).await;
    assert_eq!(pq.status, StatusCode::OK, "{}", String::from_utf8_lossy(&pq.body));
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(pq.body.clone()).unwrap();
    assert_eq!(builder.metadata().file_metadata().num_rows(), 0);
    let names: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, columns);

    // The whole dataset (no viewport filter) under a limit below it: refused
    // with the count and the limit, before any byte of a file.
    let all = json!({"dataset": "celltowers"});
    let small = app_for(Some(1000));
    let refused = send(&small, bearer(get(&export_url("/api/export", Some("csv"), &all)), TOKEN)).await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        refused.error(),
        "40000 rows are selected; the export limit is 1000 rows: narrow the filters or the map view"
    );
    // Bad requests name what is wrong; a wrong token is refused.
    let bad = send(&app, bearer(get(&export_url("/api/export", Some("xml"), &all)), TOKEN)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let bad =
        send(&app, bearer(get(&export_url("/api/export", Some("csv"), &json!({"dataset": "nope"}))), TOKEN)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.error().contains("nope"), "{}", bad.error());
    let bad = send(
        &app,
        bearer(
            get(&export_url(
                "/api/export",
                Some("csv"),
                &json!({"dataset": "celltowers", "filters": {"radio": {"categories": ["5G?"]}}}),
            )),
            TOKEN,
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.error());
    let wrong = send(&app, bearer(get(&export_url("/api/export", Some("csv"), &all)), "wrong-token")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let none = send(&app, get(&export_url("/api/export", Some("csv"), &all))).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);

    // The Python snippet: the workers of both shards, the ticket, no token.
    let py = send(&app, bearer(get(&export_url("/api/export/python", None, &request)), TOKEN)).await;
    assert_eq!(py.status, StatusCode::OK);
    let py = String::from_utf8(py.body.to_vec()).unwrap();
    assert!(py.contains("import pyarrow.flight as flight"), "{py}");
    for e in &endpoints {
        assert!(py.contains(&e.replace("http://", "grpc+tcp://")), "{py}");
    }
    assert!(!py.contains("worker-secret"), "the snippet never holds the worker token");
    w0.shutdown().await.unwrap();
    w1.shutdown().await.unwrap();
}
