//! Test support: small cell-tower datasets with known content, written as
//! Parquet and CSV; a reference computed straight from the raw values; a real
//! S3-protocol server (s3s-fs) on 127.0.0.1 with signed requests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use arrow_array::{Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use rand::{Rng, SeedableRng};

/// One raw tower, as in the OpenCelliD file.
#[derive(Clone, Debug)]
pub struct Tower {
    pub radio: &'static str,
    pub lon: f64,
    pub lat: f64,
    pub range: i64,
    pub created: i64,
}

pub const RADIOS: [&str; 5] = ["GSM", "UMTS", "LTE", "CDMA", "NR"];

/// Random towers around a few places, with values on bin edges and out of range.
pub fn towers(n: usize, seed: u64) -> Vec<Tower> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let places = [(2.35, 48.85), (-74.0, 40.7), (139.7, 35.7), (151.2, -33.9), (179.9, -16.5)];
    (0..n)
        .map(|_| {
            let p = places[rng.random_range(0..places.len())];
            let range = match rng.random_range(0..20) {
                0 => 0,
                1 => 10, // a log bin edge
                2 => 1_000_000,
                _ => rng.random_range(1..60_000),
            };
            let created = match rng.random_range(0..20) {
                0 => 946_684_800,   // 2000: before the first bin
                1 => 1_420_070_400, // exactly 2015-01-01
                _ => rng.random_range(1_041_379_200..1_640_995_200),
            };
            Tower {
                radio: RADIOS[rng.random_range(0..RADIOS.len())],
                lon: (p.0 + rng.random_range(-1.0..1.0f64)).clamp(-180.0, 180.0),
                lat: p.1 + rng.random_range(-1.0..1.0),
                range,
                created,
            }
        })
        .collect()
}

pub fn schema() -> Arc<Schema> {
    let i = |n: &str| Field::new(n, DataType::Int64, true);
    Arc::new(Schema::new(vec![
        Field::new("radio", DataType::Utf8, true),
        Field::new("mcc", DataType::Int32, true),
        i("net"),
        i("area"),
        i("cell"),
        Field::new("unit", DataType::Int32, true),
        Field::new("lon", DataType::Float64, true),
        Field::new("lat", DataType::Float64, true),
        i("range"),
        i("samples"),
        Field::new("changeable", DataType::Int32, true),
        i("created"),
        i("updated"),
        Field::new("averageSignal", DataType::Int32, true),
    ]))
}

pub fn batch(rows: &[Tower]) -> RecordBatch {
    let n = rows.len();
    let ints = |v: i64| Arc::new(Int64Array::from(vec![v; n]));
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(rows.iter().map(|r| r.radio).collect::<Vec<_>>())),
            Arc::new(Int32Array::from(vec![208; n])),
            ints(1),
            ints(7),
            Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())),
            Arc::new(Int32Array::from(vec![0; n])),
            Arc::new(Float64Array::from(rows.iter().map(|r| r.lon).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(rows.iter().map(|r| r.lat).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(rows.iter().map(|r| r.range).collect::<Vec<_>>())),
            ints(3),
            Arc::new(Int32Array::from(vec![1; n])),
            Arc::new(Int64Array::from(rows.iter().map(|r| r.created).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(rows.iter().map(|r| r.created + 1000).collect::<Vec<_>>())),
            Arc::new(Int32Array::from(vec![0; n])),
        ],
    )
    .unwrap()
}

/// Writes Parquet with small row groups (so shards split within files).
pub fn write_parquet(path: &Path, rows: &[Tower], row_group: usize) {
    let file = std::fs::File::create(path).unwrap();
    let props =
        parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(row_group)).build();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema(), Some(props)).unwrap();
    for chunk in rows.chunks(row_group) {
        w.write(&batch(chunk)).unwrap();
    }
    w.close().unwrap();
}

/// Writes CSV with a header, optionally gzip'd.
pub fn write_csv(path: &Path, rows: &[Tower], gzip: bool) {
    let mut buf = vec![];
    {
        let mut w = arrow_csv::WriterBuilder::new().with_header(true).build(&mut buf);
        for chunk in rows.chunks(10_000) {
            w.write(&batch(chunk)).unwrap();
        }
    }
    if gzip {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::fast());
        enc.write_all(&buf).unwrap();
        enc.finish().unwrap();
    } else {
        std::fs::write(path, buf).unwrap();
    }
}

/// Reference counts of the cell-tower preset's histograms, from raw values
/// with the binning written out by hand: radio by label, range in 40 log
/// bins over [1 m, 100 km), created by calendar year 2003..2021.
pub struct Reference {
    pub radio: [u64; 6],
    pub range: [u64; 40],
    pub year: [u64; 19],
}

pub fn range_bin(r: i64) -> usize {
    if r <= 0 {
        return 0;
    }
    ((r as f64).log10() / 5.0 * 40.0).floor().clamp(0.0, 39.0) as usize
}

pub fn year_of(t: i64) -> i32 {
    chrono::DateTime::from_timestamp(t, 0).unwrap().format("%Y").to_string().parse().unwrap()
}

pub fn year_bin(t: i64) -> usize {
    (year_of(t) - 2003).clamp(0, 18) as usize
}

pub fn reference<'a>(rows: impl IntoIterator<Item = &'a Tower>) -> Reference {
    let mut r = Reference { radio: [0; 6], range: [0; 40], year: [0; 19] };
    for t in rows {
        r.radio[RADIOS.iter().position(|x| *x == t.radio).unwrap()] += 1;
        r.range[range_bin(t.range)] += 1;
        r.year[year_bin(t.created)] += 1;
    }
    r
}

/// A real S3 server (s3s-fs over a directory) on 127.0.0.1, checking SigV4
/// signatures with one access key.
pub struct S3Server {
    pub endpoint: String,
    task: tokio::task::JoinHandle<()>,
}

pub const S3_ACCESS_KEY: &str = "quiver-test-key";
pub const S3_SECRET_KEY: &str = "quiver-test-secret-0123456789";

impl S3Server {
    /// Serves `root` (each subdirectory is a bucket).
    pub async fn start(root: &Path) -> S3Server {
        let fs = s3s_fs::FileSystem::new(root).unwrap();
        let mut b = s3s::service::S3ServiceBuilder::new(fs);
        b.set_auth(s3s::auth::SimpleAuth::from_single(S3_ACCESS_KEY, S3_SECRET_KEY));
        let service = b.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else { break };
                let svc = service.clone();
                tokio::spawn(async move {
                    let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                    let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(sock), svc).await;
                });
            }
        });
        S3Server { endpoint: format!("http://{addr}"), task }
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
