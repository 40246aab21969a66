//! The JSON API over fake workers: validation errors, merged answers, partial
//! answers, status, reload, datasets, assets.

use crate::common;

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use common::*;
use serde_json::json;

async fn bad(body: serde_json::Value) -> String {
    let a = send(&app(), query(body)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(&a.body));
    a.error()
}

#[tokio::test]
async fn unknown_datasets_and_dimensions_are_400_naming_them() {
    let m = bad(json!({"dataset": "planes", "histograms": ["radio"]})).await;
    assert!(m.contains("\"planes\"") && m.contains("celltowers"), "{m}");
    let m = bad(json!({"dataset": "celltowers", "histograms": ["colour"]})).await;
    assert!(m.contains("\"colour\""), "{m}");
    let m = bad(json!({"dataset": "celltowers", "histograms": ["radio"], "filters": {"height": {"range": {"min": 0, "max": 1}}}})).await;
    assert!(m.contains("\"height\""), "{m}");
}

#[tokio::test]
async fn bad_ranges_and_oversize_images_are_400_naming_the_limit() {
    let m = bad(json!({"dataset": "celltowers", "histograms": ["radio"], "filters": {"created": {"range": {"min": 5, "max": 1}}}})).await;
    assert!(m.contains("min 5"), "{m}");
    let m = bad(json!({"dataset": "celltowers", "viewport": world(), "image": {"width": 4097, "height": 10}})).await;
    assert!(m.contains("4096"), "{m}");
    let m = bad(json!({"dataset": "celltowers", "viewport": world(), "image": {"width": 3000, "height": 3000}})).await;
    assert!(m.contains("4194304"), "{m}");
    let m = bad(json!({"dataset": "celltowers", "image": {"width": 800, "height": 500}})).await;
    assert!(m.contains("viewport"), "{m}");
    let m = bad(json!({"dataset": "celltowers", "viewport": {"west": 0, "south": 0, "east": 10, "north": 95}, "histograms": ["radio"]})).await;
    assert!(m.contains("viewport"), "{m}");
}

#[tokio::test]
async fn malformed_and_oversize_bodies_are_refused() {
    let app = app();
    let a = send(&app, bearer(Request::post("/api/query").body(Body::from("{not json")).unwrap(), TOKEN)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.error().contains("invalid JSON"), "{}", a.error());
    let huge = format!("{{\"dataset\": \"{}\"}}", "x".repeat(70 * 1024));
    let a = send(&app, bearer(Request::post("/api/query").body(Body::from(huge)).unwrap(), TOKEN)).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(a.error().contains("65536"), "{}", a.error());
}

#[tokio::test]
async fn workers_from_before_all_or_none_samples_are_asked_for_plain_ones() {
    // During a rollout: shard 1's worker predates `allOrNone` and refuses it.
    // It is asked again for a plain sample, and the answer is still whole or
    // empty: each shard matches 3 rows, 6 in all.
    let old = FakeWorker::new(1, 2, Mode::BeforeAllOrNone);
    let (app, _) = app_with(vec![FakeWorker::new(0, 2, Mode::Ok), old.clone()]);
    let ask = |limit: u32| {
        query(json!({
            "dataset": "celltowers",
            "viewport": world(),
            "histograms": ["radio"],
            "sample": {"limit": limit, "allOrNone": true}
        }))
    };
    let a = send(&app, ask(10)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
    let j = a.json();
    assert_eq!(j["partial"], false, "{j}");
    assert_eq!((j["sample"]["matched"].as_u64(), j["sample"]["rows"].as_array().map(Vec::len)), (Some(6), Some(6)));
    assert_eq!(old.queries.load(std::sync::atomic::Ordering::SeqCst), 2, "refused, then asked without the flag");
    let j = send(&app, ask(4)).await.json();
    assert_eq!(j["partial"], false, "{j}");
    assert_eq!((j["sample"]["matched"].as_u64(), j["sample"]["rows"].as_array().map(Vec::len)), (Some(6), Some(0)));
    // A query without a sample is not refused, so not asked twice.
    let before = old.queries.load(std::sync::atomic::Ordering::SeqCst);
    let a = send(&app, query(json!({"dataset": "celltowers", "viewport": world(), "histograms": ["radio"]}))).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(old.queries.load(std::sync::atomic::Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn a_query_sums_every_shard_and_returns_a_png() {
    let app = app();
    let a = send(
        &app,
        query(json!({
            "dataset": "celltowers",
            "filters": {"radio": {"categories": ["LTE"]}},
            "viewport": world(),
            "histograms": ["radio", "created"],
            "baseline": true,
            "image": {"width": 40, "height": 20},
            "sample": {"limit": 4}
        })),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
    let j = a.json();
    // Shard s has 1000(s+1) rows and selects 100(s+1); bin i counts (s+1)(i+1).
    assert_eq!(j["total"], 3000);
    assert_eq!(j["selected"], 300);
    assert_eq!(j["histograms"]["radio"]["bins"][0]["label"], "GSM");
    assert_eq!(j["histograms"]["radio"]["bins"][0]["count"], 3);
    assert_eq!(j["histograms"]["radio"]["bins"][2]["count"], 9);
    assert_eq!(j["histograms"]["radio"]["missing"], 3);
    assert_eq!(j["baseline"]["created"]["bins"][1]["count"], 6);
    assert_eq!(j["sample"]["matched"], 6);
    assert_eq!(j["sample"]["rows"].as_array().unwrap().len(), 4);
    assert_eq!(j["partial"], false);
    assert_eq!(
        j["shards"],
        json!({"expected": 2, "answered": [0, 1], "missing": [], "consistent": true, "message": null})
    );
    assert!(j["timings"]["totalMs"].as_f64().unwrap() >= j["timings"]["workersMs"].as_f64().unwrap());
    // The image: a PNG of the asked size, with shard 0's and 1's pixels in the
    // first category's legend colour and transparent elsewhere.
    let url = j["image"].as_str().unwrap();
    let png =
        base64::engine::general_purpose::STANDARD.decode(url.strip_prefix("data:image/png;base64,").unwrap()).unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(png)).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (40, 20));
    let ds = send(&app, bearer(get("/api/datasets"), TOKEN)).await.json();
    let gsm = ds["datasets"][0]["dimensions"][0]["bins"][0]["color"].as_str().unwrap().to_string();
    let rgb = quiver_worker::spec::parse_color(&gsm).unwrap();
    assert_eq!(&buf[0..3], &rgb, "pixel 0 has the legend colour of GSM");
    assert_eq!(&buf[4..7], &rgb, "pixel 1 too");
    assert!(buf[3] > 0 && buf[7] > 0);
    assert_eq!(buf[20 * 4 * 10 + 3], 0, "an empty pixel far away is transparent");
}

#[tokio::test]
async fn a_hanging_worker_gives_a_flagged_partial_answer() {
    let (app, state) = app_with(vec![FakeWorker::new(0, 2, Mode::Ok), FakeWorker::new(1, 2, Mode::Hang)]);
    let started = std::time::Instant::now();
    let a = send(&app, query(json!({"dataset": "celltowers", "histograms": ["radio"]}))).await;
    assert!(started.elapsed() < SHORT * 4, "the wait is bounded by the worker timeout");
    assert_eq!(a.status, StatusCode::OK);
    let j = a.json();
    assert_eq!(j["partial"], true);
    assert_eq!(j["total"], 1000);
    assert_eq!(j["shards"]["missing"], json!([1]));
    let msg = j["shards"]["message"].as_str().unwrap();
    assert!(msg.contains("shard 1") && msg.contains("http://fake-1:8815"), "{msg}");
    let m = state.metrics.encode();
    assert!(m.contains("quiver_dashboard_partial_results_total 1"), "{m}");
    assert!(m.contains("quiver_dashboard_worker_errors_total{category=\"timeout\"}"), "{m}");
}

#[tokio::test]
async fn answers_from_two_shardings_are_flagged_not_summed() {
    let (app, _) = app_with(vec![
        FakeWorker::new(0, 2, Mode::Ok),
        FakeWorker::new(1, 2, Mode::Ok),
        FakeWorker::new(2, 3, Mode::Ok),
    ]);
    let j = send(&app, query(json!({"dataset": "celltowers", "histograms": ["radio"]}))).await.json();
    assert_eq!(j["total"], 3000, "only the two-shard answers");
    assert_eq!(j["shards"]["consistent"], false);
    assert_eq!(j["partial"], true);
}

#[tokio::test]
async fn a_query_every_worker_refuses_is_a_400_and_none_answering_is_a_503() {
    let (app, _) = app_with(vec![FakeWorker::new(0, 1, Mode::Refuse)]);
    let a = send(&app, query(json!({"dataset": "celltowers", "histograms": ["radio"]}))).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.error().contains("the fake refuses"), "{}", a.error());
    let (app, _) = app_with(vec![FakeWorker::new(0, 1, Mode::Down)]);
    let a = send(&app, query(json!({"dataset": "celltowers", "histograms": ["radio"]}))).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn datasets_list_bins_with_legend_colours() {
    let j = send(&app(), bearer(get("/api/datasets"), TOKEN)).await.json();
    let d = &j["datasets"][0];
    assert_eq!(d["name"], "celltowers");
    assert_eq!(d["rows"], 3000);
    assert_eq!(d["x"], "lon");
    assert_eq!(d["category"], "radio");
    let radio = &d["dimensions"][0];
    assert_eq!(radio["kind"], "categorical");
    let view = towers_view();
    let quiver_worker::spec::Binning::Categorical { categories, other } = &view.dimensions[0].bins else {
        panic!("radio is categorical")
    };
    for (i, c) in categories.iter().enumerate() {
        assert_eq!(radio["bins"][i]["label"], c.label.as_str());
        assert_eq!(radio["bins"][i]["color"].as_str(), c.color.as_deref(), "{}", c.label);
    }
    assert_eq!(radio["bins"][categories.len()]["label"], other.as_str());
    let created = &d["dimensions"][2];
    assert_eq!(created["kind"], "temporal");
    assert_eq!(created["bins"][0]["label"], "2003");
    assert_eq!(created["bins"][0]["lo"], 1041379200.0);
    assert_eq!(created["bins"][0]["hi"], 1072915200.0);
}

#[tokio::test]
async fn status_reports_every_worker_and_completeness() {
    let (app, _) = app_with(vec![FakeWorker::new(0, 2, Mode::Ok), FakeWorker::new(1, 2, Mode::Down)]);
    let j = send(&app, bearer(get("/api/status"), TOKEN)).await.json();
    assert_eq!(j["shards"], 2);
    assert_eq!(j["complete"], false);
    assert_eq!(j["workers"][0]["ok"], true);
    assert_eq!(j["workers"][0]["datasets"][0]["state"], "ready");
    assert_eq!(j["workers"][1]["ok"], false);
    assert!(j["workers"][1]["error"].as_str().unwrap().contains("connection refused"));
    let j = send(
        &app_with(vec![FakeWorker::new(0, 2, Mode::Ok), FakeWorker::new(1, 2, Mode::Ok)]).0,
        bearer(get("/api/status"), TOKEN),
    )
    .await
    .json();
    assert_eq!((j["complete"].as_bool(), j["consistent"].as_bool()), (Some(true), Some(true)));
    let mixed = app_with(vec![FakeWorker::with_generation(0, 2, "a"), FakeWorker::with_generation(1, 2, "b")]).0;
    let j = send(&mixed, bearer(get("/api/status"), TOKEN)).await.json();
    assert_eq!(j["consistent"], false, "different data generations");
}

#[tokio::test]
async fn reload_asks_every_worker() {
    let w = vec![FakeWorker::new(0, 2, Mode::Ok), FakeWorker::new(1, 2, Mode::Ok)];
    let (app, _) = app_with(w.clone());
    let a = send(&app, bearer(Request::post("/api/reload").body(Body::empty()).unwrap(), TOKEN)).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let j = a.json();
    assert_eq!(j["workers"].as_array().unwrap().len(), 2);
    assert_eq!(j["workers"][1], json!({"endpoint": "http://fake-1:8815", "ok": true, "error": null}));
    assert!(w.iter().all(|w| w.reloads.load(Ordering::SeqCst) == 1));
    let a = send(&app, bearer(post_json("/api/reload", &json!({"dataset": "Bad Name"})), TOKEN)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn readiness_needs_one_answering_worker() {
    let (app, _) = app_with(vec![FakeWorker::new(0, 2, Mode::Down), FakeWorker::new(1, 2, Mode::Ok)]);
    assert_eq!(send(&app, get("/readyz")).await.status, StatusCode::OK);
    let (app, _) = app_with(vec![FakeWorker::new(0, 1, Mode::Down)]);
    assert_eq!(send(&app, get("/readyz")).await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(send(&app, get("/healthz")).await.status, StatusCode::OK, "liveness never depends on workers");
}

#[tokio::test]
async fn static_assets_have_types_and_revalidation() {
    let app = app();
    let Some(path) = quiver_dashboard::routes::assets::paths().find(|p| p.ends_with(".js")) else {
        return; // the front end is not in the tree yet
    };
    let a = send(&app, get(&format!("/static/{path}"))).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("content-type"), Some("text/javascript; charset=utf-8"));
    assert_eq!(a.header("cache-control"), Some("no-cache"));
    assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
    let etag = a.header("etag").unwrap().to_string();
    let mut again = get(&format!("/static/{path}"));
    again.headers_mut().insert(header::IF_NONE_MATCH, etag.parse().unwrap());
    let b = send(&app, again).await;
    assert_eq!(b.status, StatusCode::NOT_MODIFIED);
    assert!(b.body.is_empty());
    assert_eq!(send(&app, get("/static/no/such.js")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(send(&app, get("/static/../Cargo.toml")).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pages_carry_a_content_security_policy_allowing_the_tile_server() {
    let a = send(&app(), get("/login")).await;
    let csp = a.header("content-security-policy").unwrap();
    assert!(csp.contains("img-src 'self' data: blob: https://tiles.example"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}
