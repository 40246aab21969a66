//! Detail columns through the loader: every stored row's exact values are
//! those of one source row at the same position (multisets equal, read back
//! from the generated files independently), for both presets, Parquet and
//! CSV; the memory they add is counted and small; `details: []` keeps none.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef};
use arrow_cast::cast;
use arrow_schema::DataType;
use quiver_worker::geo::{lat_to_y, lon_to_x};
use quiver_worker::source::{LoadOptions, ShardId, load, presets};
use quiver_worker::spec::{DatasetSpec, Format, Preset};
use quiver_worker::store::detail::DetailValue;
use quiver_worker::store::{DetailKind, Shard};

fn spec(preset: Preset, url: &str, details: Option<Vec<quiver_worker::spec::DetailSpec>>) -> DatasetSpec {
    DatasetSpec {
        name: preset.as_str().into(),
        source: url.into(),
        preset: Some(preset),
        format: None,
        s3: None,
        view: None,
        details,
    }
}

async fn generate(preset: Preset, rows: u64, format: Format, dir: &std::path::Path) -> String {
    let url = format!("file://{}/", dir.display());
    let mut o = quiver_worker::synth::GenOptions::new(preset, rows, url.clone());
    o.format = format;
    o.files = 3;
    quiver_worker::synth::generate(&o, false).await.unwrap();
    url
}

/// The source rows, read back from the files with arrow's own readers.
fn source_batches(dir: &std::path::Path, preset: Preset) -> Vec<arrow_array::RecordBatch> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.to_string_lossy().to_string();
        if name.ends_with(".parquet") {
            let f = std::fs::File::open(&p).unwrap();
            let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap().build().unwrap();
            out.extend(r.map(|b| b.unwrap()));
        } else if name.ends_with(".csv") {
            let f = std::fs::File::open(&p).unwrap();
            let r = arrow_csv::ReaderBuilder::new(presets::schema(preset)).with_header(true).build(f).unwrap();
            out.extend(r.map(|b| b.unwrap()));
        }
    }
    out
}

fn value(col: &ArrayRef, kind: DetailKind, i: usize) -> DetailValue {
    if col.is_null(i) {
        return DetailValue::Null;
    }
    match kind {
        DetailKind::Int => DetailValue::Int(cast(col, &DataType::Int64).unwrap().as_primitive::<Int64Type>().value(i)),
        DetailKind::Float => {
            DetailValue::Float(cast(col, &DataType::Float64).unwrap().as_primitive::<Float64Type>().value(i))
        }
        DetailKind::Time => match col.data_type() {
            DataType::Utf8 => quiver_worker::bins::parse_instant(col.as_string::<i32>().value(i))
                .map_or(DetailValue::Null, DetailValue::Int),
            _ => DetailValue::Int(cast(col, &DataType::Int64).unwrap().as_primitive::<Int64Type>().value(i)),
        },
        DetailKind::Text => {
            DetailValue::Text(cast(col, &DataType::Utf8).unwrap().as_string::<i32>().value(i).to_string())
        }
    }
}

/// Position and detail values of a row, as a comparable key.
fn key(x: u32, y: u32, vals: &[DetailValue]) -> String {
    let vals: Vec<String> = vals
        .iter()
        .map(|v| match v {
            DetailValue::Float(f) => format!("F{:x}", f.to_bits()),
            other => format!("{other:?}"),
        })
        .collect();
    format!("{x},{y},{}", vals.join("|"))
}

fn check_round_trip(shard: &Shard, dir: &std::path::Path, preset: Preset) {
    let view = presets::default_view(preset);
    let infos = shard.details.infos();
    assert_eq!(infos.len(), presets::default_details(preset).len());
    let mut want: HashMap<String, i64> = HashMap::new();
    for b in source_batches(dir, preset) {
        let lon = cast(b.column_by_name(&view.x).unwrap(), &DataType::Float64).unwrap();
        let lat = cast(b.column_by_name(&view.y).unwrap(), &DataType::Float64).unwrap();
        let (lon, lat) = (lon.as_primitive::<Float64Type>(), lat.as_primitive::<Float64Type>());
        let cols: Vec<Arc<dyn Array>> = infos.iter().map(|d| b.column_by_name(&d.column).unwrap().clone()).collect();
        for i in 0..b.num_rows() {
            if lon.is_null(i) || lat.is_null(i) {
                continue;
            }
            let vals: Vec<DetailValue> = cols.iter().zip(&infos).map(|(c, d)| value(c, d.kind, i)).collect();
            *want.entry(key(lon_to_x(lon.value(i)), lat_to_y(lat.value(i)), &vals)).or_default() += 1;
        }
    }
    let n = shard.rows() as usize;
    assert_eq!(shard.details.rows(), n);
    let mut got: HashMap<String, i64> = HashMap::new();
    for r in 0..n {
        let vals: Vec<DetailValue> = shard.details.columns.iter().map(|c| c.value(r)).collect();
        *got.entry(key(shard.xs[r], shard.ys[r], &vals)).or_default() += 1;
    }
    assert_eq!(got.values().sum::<i64>(), want.values().sum::<i64>(), "row counts");
    let diff: Vec<_> = got.iter().filter(|(k, v)| want.get(*k) != Some(v)).take(3).collect();
    assert!(diff.is_empty(), "stored rows that are no source row: {diff:?}");
    // Random rows through the Arrow path give the same values.
    let rows: Vec<u32> = (0..n as u32).step_by(7).collect();
    for (c, col) in shard.details.columns.iter().enumerate() {
        let a = col.take(&rows);
        for (k, &r) in rows.iter().enumerate() {
            let v = col.value(r as usize);
            assert_eq!(a.is_null(k), v == DetailValue::Null, "column {c} row {r}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detail_columns_hold_each_row_s_exact_values() {
    for (preset, format) in
        [(Preset::Celltowers, Format::Parquet), (Preset::Ais, Format::Parquet), (Preset::Celltowers, Format::Csv)]
    {
        let dir = tempfile::tempdir().unwrap();
        let url = generate(preset, 30_000, format, dir.path()).await;
        let shard = load(&spec(preset, &url, None), ShardId::SINGLE, &LoadOptions::default()).await.unwrap();
        check_round_trip(&shard, dir.path(), preset);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detail_columns_are_counted_in_memory_and_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let url = generate(Preset::Celltowers, 60_000, Format::Parquet, dir.path()).await;
    let with = load(&spec(Preset::Celltowers, &url, None), ShardId::SINGLE, &LoadOptions::default()).await.unwrap();
    let without =
        load(&spec(Preset::Celltowers, &url, Some(vec![])), ShardId::SINGLE, &LoadOptions::default()).await.unwrap();
    assert!(without.details.columns.is_empty());
    assert_eq!(without.details.bytes(), 0);
    assert_eq!(with.rows(), without.rows());
    assert_eq!(with.xs, without.xs, "details do not change the store's order");
    assert_eq!(with.codes, without.codes);
    let added = with.bytes() - without.bytes();
    assert_eq!(added as usize, with.details.bytes());
    let per_row = added as f64 / with.rows() as f64;
    // The budget the memory check uses for these kinds bounds what they take.
    let budget: u64 = with.details.infos().iter().map(|d| quiver_worker::source::detail_budget(d.kind)).sum();
    assert!(per_row > 1.0 && per_row < budget as f64, "{per_row:.2} bytes a row, budget {budget}");
    // A memory limit that fits the codes but not the details names them.
    let limit = 60_000 * 20;
    let err = load(
        &spec(Preset::Celltowers, &url, None),
        ShardId::SINGLE,
        &LoadOptions { memory_limit: Some(limit + (64 << 20)), ..Default::default() },
    )
    .await;
    let msg = err.unwrap_err().to_string();
    assert!(msg.contains("detail columns"), "{msg}");
    load(
        &spec(Preset::Celltowers, &url, Some(vec![])),
        ShardId::SINGLE,
        &LoadOptions { memory_limit: Some(limit + (64 << 20)), ..Default::default() },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_detail_column_is_a_clear_load_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = generate(Preset::Celltowers, 1000, Format::Parquet, dir.path()).await;
    let bad = quiver_worker::spec::DetailSpec { column: "nope".into(), title: None, unit: None, kind: None };
    let err = load(&spec(Preset::Celltowers, &url, Some(vec![bad])), ShardId::SINGLE, &LoadOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"nope\"") && err.contains("not found"), "{err}");
}

fn rows_ticket(dataset: &str, limit: u64, columns: Option<Vec<String>>) -> quiver_worker::protocol::Query {
    quiver_worker::protocol::Query {
        version: 1,
        dataset: dataset.into(),
        filters: Default::default(),
        viewport: None,
        viewport_filter: false,
        views: vec![quiver_worker::protocol::View::Rows { limit, columns }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_stream_rows_and_bad_ones_are_refused_clearly() {
    use futures::TryStreamExt;
    use quiver_worker::Error;
    use quiver_worker::flight::client::WorkerClient;
    let dir = tempfile::tempdir().unwrap();
    let url = generate(Preset::Celltowers, 150_000, Format::Parquet, dir.path()).await;
    let cfg = quiver_worker::server::WorkerConfig {
        datasets: vec![spec(Preset::Celltowers, &url, None)],
        shard: ShardId::SINGLE,
        token: None,
        load: LoadOptions::default(),
        result_cache_bytes: quiver_worker::cache::DEFAULT_BUDGET,
    };
    let w = quiver_worker::server::spawn(cfg).await.unwrap();
    let c = WorkerClient::connect(&w.flight_url(), None).await.unwrap();
    for _ in 0..600 {
        if c.stats().await.unwrap().all_ready() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Too many rows: refused before any batch, with the count and the limit.
    match c.export(&rows_ticket("celltowers", 100, None)).await.err() {
        Some(Error::TooManyRows { rows: 150_000, limit: 100 }) => {}
        other => panic!("expected too many rows, got {other:?}"),
    }
    // An unknown column names itself and what the dataset keeps.
    let e = c.export(&rows_ticket("celltowers", 1 << 20, Some(vec!["nope".into()]))).await.err().unwrap().to_string();
    assert!(e.contains("\"nope\"") && e.contains("mcc"), "{e}");
    // A limit beyond the protocol's, or a rows view beside others: invalid.
    let e = c.export(&rows_ticket("celltowers", u64::MAX, None)).await.err().unwrap().to_string();
    assert!(e.contains("exceeds the limit"), "{e}");
    let mut two = rows_ticket("celltowers", 10, None);
    two.views.push(quiver_worker::protocol::View::Histogram { dimension: "radio".into() });
    let e = c.export(&two).await.err().unwrap().to_string();
    assert!(e.contains("only view"), "{e}");
    let e = c.export(&rows_ticket("nope", 10, None)).await.err().unwrap().to_string();
    assert!(e.contains("nope"), "{e}");
    // The worker still serves: every row, in batches, the chosen columns in order.
    let batches: Vec<_> = c
        .export(&rows_ticket("celltowers", 1 << 20, Some(vec!["range".into(), "mcc".into()])))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(batches.len() >= 3, "{} batches", batches.len());
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 150_000);
    let names: Vec<String> = batches[0].schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["lon", "lat", "radio", "range", "mcc"]);
    c.health().await.unwrap();
    w.shutdown().await.unwrap();
}
