//! Fuzz regressions: every input under `tests/fuzz-regressions/<target>/` (a
//! crash the fuzzers once found) and every seed under `fuzz/corpus/<target>/`
//! goes through the same entry points as the cargo-fuzz targets
//! (`quiver_worker::fuzzing`) and must give a clean answer or a clean
//! error, never a panic. Hand-made hostile inputs pin the error each one gets.
//!
//! `cargo test -p quiver-worker --test fuzz_regressions -- --ignored write_seed_corpus`
//! rewrites the committed seed corpus from the generator and the tickets below.

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use quiver_worker::Error;
use quiver_worker::fuzzing::{self, load_bytes};
use quiver_worker::source::ShardId;
use quiver_worker::spec::{Format, Preset};

/// Panics on the loader's runtime and pool threads, where the loader would
/// otherwise turn them into a task error (as it does in production).
static BACKGROUND_PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_background_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Test threads carry the test's name (or "main"); their panics are
            // failed assertions or caught below, so only others are counted.
            let name = std::thread::current().name().map(str::to_string);
            let background = name.as_deref().is_none_or(|n| n.starts_with("tokio") || n.starts_with("rayon"));
            // Known parquet decoder panics are contained by the loader and
            // reported as decode errors; the tests check that error.
            if background && !fuzzing::is_contained_upstream_panic(info) {
                BACKGROUND_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

/// Runs `f` and fails the test if it, or a task it spawned, panicked.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> T {
    count_background_panics();
    let before = BACKGROUND_PANICS.load(Ordering::SeqCst);
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| panic!("{what}: panicked"));
    // Tests run in parallel on one shared runtime: a background panic counted
    // here may come from another test's input, which then fails too.
    assert_eq!(BACKGROUND_PANICS.load(Ordering::SeqCst), before, "{what}: a loader task panicked while it ran");
    out
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the worker crate is in the workspace").to_path_buf()
}

/// Files of the committed seed corpus and of the crash regressions of a target.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dirs = [repo().join("fuzz/corpus").join(target), repo().join("worker/tests/fuzz-regressions").join(target)];
    let mut out = vec![];
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries {
            let p = e.expect("directory entry").path();
            if p.is_file() {
                let bytes = std::fs::read(&p).expect("readable input");
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

/// An error a loader may give for a bad file: it names the file it read.
fn assert_clean_load_error(what: &str, e: &Error) {
    assert_eq!(e.category(), "decode", "{what}: unexpected error kind: {e}");
    let msg = e.to_string();
    assert!(msg.contains("quiver-fuzz/") && msg.contains("/data."), "{what}: error does not name the file: {e}");
}

// ---------------------------------------------------------------------------
// Seeds and recorded crashes
// ---------------------------------------------------------------------------

#[test]
fn ticket_seeds_and_regressions_answer_or_refuse_cleanly() {
    let files = inputs("ticket");
    assert!(files.len() >= 5, "the ticket seed corpus is missing: {} files", files.len());
    let mut answered = 0;
    for (path, bytes) in &files {
        let what = path.display().to_string();
        match no_panic(&what, || fuzzing::ticket(bytes)) {
            Ok(r) => {
                answered += 1;
                assert_eq!(r.total, fuzzing::TICKET_SHARD_ROWS, "{what}: the fixture shard holds every generated row");
                assert!(r.selected <= r.total, "{what}: selected {} > total {}", r.selected, r.total);
            }
            Err(e) => assert_eq!(e.category(), "invalid_query", "{what}: {e}"),
        }
    }
    assert!(answered >= 5, "most seed tickets are valid queries; only {answered} answered");
}

#[test]
fn csv_seeds_and_regressions_load_or_fail_cleanly() {
    let files = inputs("csv");
    assert!(files.len() >= 3, "the csv seed corpus is missing: {} files", files.len());
    let mut loaded = 0;
    for (path, bytes) in &files {
        let what = path.display().to_string();
        for r in no_panic(&what, || fuzzing::csv_all(bytes)) {
            match r {
                Ok(s) => {
                    loaded += 1;
                    assert_eq!(s.xs.len(), s.ys.len());
                }
                Err(e) => assert_clean_load_error(&what, &e),
            }
        }
    }
    assert!(loaded >= 3, "the generated CSV seeds load; only {loaded} loads succeeded");
}

#[test]
fn parquet_seeds_and_regressions_load_or_fail_cleanly() {
    let files = inputs("parquet");
    assert!(files.len() >= 2, "the parquet seed corpus is missing: {} files", files.len());
    let mut loaded = 0;
    for (path, bytes) in &files {
        let what = path.display().to_string();
        for r in no_panic(&what, || fuzzing::parquet_all(bytes)) {
            match r {
                Ok(s) => {
                    loaded += 1;
                    assert_eq!(s.xs.len(), s.ys.len());
                }
                Err(e) => assert_clean_load_error(&what, &e),
            }
        }
    }
    assert!(loaded >= 2, "the generated Parquet seeds load; only {loaded} loads succeeded");
}

fn regression(target: &str, name: &str) -> Vec<u8> {
    std::fs::read(repo().join("worker/tests/fuzz-regressions").join(target).join(name)).expect("regression input")
}

#[test]
fn parquet_with_a_negative_column_offset_is_refused_before_decoding() {
    // Found by the parquet target: the footer's column chunk offset was
    // negative and the parquet reader asserted on it inside the decode task.
    let bytes = regression("parquet", "negative-column-offset");
    for r in no_panic("negative offset", || fuzzing::parquet_all(&bytes)) {
        let e = r.expect_err("a footer pointing outside the file is refused");
        assert_clean_load_error("negative offset", &e);
        assert!(e.to_string().contains("outside the file"), "{e}");
    }
}

#[test]
fn parquet_pages_that_panic_the_upstream_decoder_are_decode_errors() {
    // Found by the parquet target: parquet 60.1 divides by zero on the first
    // file's dictionary page, and arrow-buffer 60.1 asserts on the second's
    // definition levels. The loader contains the panic and names the file.
    for name in ["dictionary-page-without-values", "short-definition-levels"] {
        let bytes = regression("parquet", name);
        let errors: Vec<Error> = no_panic(name, || fuzzing::parquet_all(&bytes))
            .into_iter()
            .map(|r| r.expect_err("neither preset loads a broken file"))
            .collect();
        for e in &errors {
            assert_clean_load_error(name, e);
        }
        assert!(
            errors.iter().any(|e| e.to_string().contains("the decoder failed on malformed data")),
            "{name}: the preset whose columns the file has reads the broken page: {errors:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Hand-made hostile inputs
// ---------------------------------------------------------------------------

const TOWERS_HEADER: &str =
    "radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal\n";

fn towers_row(radio: &str, lon: &str, lat: &str, range: &str, created: &str) -> String {
    format!("{radio},262,1,100,12345,0,{lon},{lat},{range},3,1,{created},1600000000,0\n")
}

fn load_csv(text: &[u8]) -> Result<quiver_worker::store::Shard, Error> {
    no_panic("csv load", || load_bytes(text, "data.csv", Preset::Celltowers, ShardId::SINGLE))
}

#[test]
fn csv_with_a_short_row_is_a_decode_error_naming_the_file() {
    let mut text = String::from(TOWERS_HEADER);
    text += &towers_row("LTE", "13.4", "52.5", "1000", "1500000000");
    text += "GSM,262,1,100\n";
    let e = load_csv(text.as_bytes()).expect_err("a row with 4 of 14 fields is refused");
    assert_clean_load_error("short row", &e);
    assert!(e.to_string().contains("data.csv"), "{e}");
}

#[test]
fn csv_with_a_long_row_is_a_decode_error() {
    let mut text = String::from(TOWERS_HEADER);
    text += &towers_row("LTE", "13.4", "52.5", "1000", "1500000000").replace('\n', ",extra,fields\n");
    let e = load_csv(text.as_bytes()).expect_err("a row with 16 of 14 fields is refused");
    assert_clean_load_error("long row", &e);
}

#[test]
fn csv_without_the_position_columns_names_the_missing_column() {
    let e = load_csv(b"radio,range\nLTE,100\n").expect_err("no lon/lat columns");
    assert_clean_load_error("missing columns", &e);
    assert!(e.to_string().contains("\"lon\""), "{e}");
}

#[test]
fn csv_rows_with_nan_or_infinite_positions_are_dropped_and_counted() {
    let mut text = String::from(TOWERS_HEADER);
    text += &towers_row("LTE", "13.4", "52.5", "1000", "1500000000");
    text += &towers_row("GSM", "NaN", "52.5", "1000", "1500000000");
    text += &towers_row("GSM", "13.4", "inf", "1000", "1500000000");
    text += &towers_row("GSM", "-inf", "-Infinity", "1000", "1500000000");
    text += &towers_row("UMTS", "", "52.5", "1000", "1500000000");
    text += &towers_row("NR", "-0.1", "51.5", "1000", "1500000000");
    let s = load_csv(text.as_bytes()).expect("rows without a finite position are skipped, not fatal");
    assert_eq!(s.rows(), 2, "the two rows with finite positions are kept");
    assert_eq!(s.dropped_rows, 4, "the four rows without one are counted");
}

#[test]
fn csv_with_huge_numbers_loads_into_the_end_bins() {
    let mut text = String::from(TOWERS_HEADER);
    // Out-of-world positions clamp to the world's edge; a range past the last
    // bin counts in it; a year past i64 is not a date and counts as missing.
    text += &towers_row("LTE", "1e308", "-1e308", "1e308", "99999999999999999999999");
    text += &towers_row("LTE", "179.9", "85", "-1e308", "-9223372036854775808");
    let s = load_csv(text.as_bytes()).expect("huge values are data, not errors");
    assert_eq!(s.rows(), 2);
    let range = s.dim_index("range").expect("celltowers has a range dimension");
    let created = s.dim_index("created").expect("celltowers has a created dimension");
    let nbins = s.dims[range].nbins() as u8;
    let mut range_codes = s.codes[range].clone();
    range_codes.sort();
    assert_eq!(range_codes, vec![0, nbins - 1], "−1e308 lands in the first bin, 1e308 in the last");
    let missing = s.dims[created].missing_code();
    assert!(s.codes[created].contains(&missing), "an unparseable year is missing: {:?}", s.codes[created]);
    assert!(s.codes[created].contains(&0), "i64::MIN seconds lands in the first year");
}

#[test]
fn csv_with_invalid_utf8_is_refused_or_read_without_panicking() {
    let mut text = TOWERS_HEADER.as_bytes().to_vec();
    text.extend_from_slice(b"LT\xff\xfe,262,1,100,12345,0,13.4,52.5,1000,3,1,1500000000,1600000000,0\n");
    let e = load_csv(&text).expect_err("a category that is not UTF-8 is refused");
    assert_clean_load_error("invalid utf-8", &e);
    assert!(e.to_string().to_lowercase().contains("utf"), "{e}");
}

#[test]
fn truncated_or_corrupt_gzip_is_a_decode_error() {
    let mut text = String::from(TOWERS_HEADER);
    for i in 0..200 {
        text += &towers_row("LTE", &format!("{}", i as f64 * 0.1), "10", "100", "1500000000");
    }
    let gz = fuzzing::gzip(text.as_bytes());
    let whole = no_panic("gzip", || load_bytes(&gz, "data.csv.gz", Preset::Celltowers, ShardId::SINGLE))
        .expect("the whole gzip stream loads");
    assert_eq!(whole.rows(), 200);
    let cut = &gz[..gz.len() / 2];
    let e = no_panic("truncated gzip", || load_bytes(cut, "data.csv.gz", Preset::Celltowers, ShardId::SINGLE))
        .expect_err("half a gzip stream is refused");
    assert_clean_load_error("truncated gzip", &e);
    let e = no_panic("not gzip", || load_bytes(text.as_bytes(), "data.csv.gz", Preset::Celltowers, ShardId::SINGLE))
        .expect_err("plain text named .csv.gz is refused");
    assert_clean_load_error("not gzip", &e);
}

fn parquet_seed() -> Vec<u8> {
    let files = inputs("parquet");
    files
        .into_iter()
        .find(|(p, _)| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("towers")))
        .expect("a celltowers Parquet seed in fuzz/corpus/parquet")
        .1
}

#[test]
fn truncated_parquet_footer_is_a_decode_error() {
    let good = parquet_seed();
    no_panic("seed", || load_bytes(&good, "data.parquet", Preset::Celltowers, ShardId::SINGLE))
        .expect("the seed itself loads");
    for cut in [1, 4, 8, 100] {
        let bytes = &good[..good.len() - cut];
        let e =
            no_panic("truncated parquet", || load_bytes(bytes, "data.parquet", Preset::Celltowers, ShardId::SINGLE))
                .expect_err("a file without its footer is refused");
        assert_clean_load_error("truncated parquet", &e);
        assert!(e.to_string().contains("not a readable Parquet file"), "cut {cut}: {e}");
    }
}

#[test]
fn parquet_footer_length_past_the_file_is_a_decode_error() {
    let mut bytes = parquet_seed();
    let n = bytes.len();
    // The 4 bytes before the trailing magic give the footer length.
    bytes[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = no_panic("huge footer length", || load_bytes(&bytes, "data.parquet", Preset::Celltowers, ShardId::SINGLE))
        .expect_err("a footer longer than the file is refused");
    assert_clean_load_error("huge footer length", &e);
}

#[test]
fn csv_text_named_parquet_is_a_decode_error() {
    let mut text = String::from(TOWERS_HEADER);
    text += &towers_row("LTE", "13.4", "52.5", "1000", "1500000000");
    let e =
        no_panic("csv as parquet", || load_bytes(text.as_bytes(), "data.parquet", Preset::Celltowers, ShardId::SINGLE))
            .expect_err("text is not Parquet");
    assert_clean_load_error("csv as parquet", &e);
}

fn ticket_error(json: &str) -> String {
    let e = no_panic(json, || fuzzing::ticket(json.as_bytes())).expect_err("the ticket is refused");
    assert_eq!(e.category(), "invalid_query", "{json}: {e}");
    e.to_string()
}

#[test]
fn hostile_tickets_are_invalid_queries_with_a_reason() {
    let h = r#""views":[{"type":"histogram","dimension":"radio"}]"#;
    let cases: Vec<(String, &str)> = vec![
        (r#"{"version":1,"dataset":"x","views":[{"type":"raster","width":100000,"height":1}],"viewport":{"west":-10,"south":-10,"east":10,"north":10}}"#.into(), "exceeds"),
        (r#"{"version":1,"dataset":"x","views":[{"type":"raster","width":0,"height":10}],"viewport":{"west":-10,"south":-10,"east":10,"north":10}}"#.into(), "at least 1x1"),
        (r#"{"version":1,"dataset":"x","views":[{"type":"raster","width":-5,"height":10}],"viewport":{"west":-10,"south":-10,"east":10,"north":10}}"#.into(), "not a valid query"),
        (format!(r#"{{"version":1,"dataset":"x",{h},"viewport":{{"west":1e999,"south":0,"east":1,"north":1}}}}"#), "not a valid query"),
        (format!(r#"{{"version":1,"dataset":"x",{h},"viewport":{{"west":-200,"south":0,"east":1,"north":1}}}}"#), "must lie in"),
        (format!(r#"{{"version":1,"dataset":"x",{h},"filters":{{"range":{{"range":{{"min":10,"max":1}}}}}}}}"#), "above max"),
        (format!(r#"{{"version":1,"dataset":"x",{h},"filters":{{"nope":{{"bins":[1]}}}}}}"#), "has no dimension"),
        (format!(r#"{{"version":1,"dataset":"x",{h},"filters":{{"radio":{{"bins":[4294967295]}}}}}}"#), "bin"),
        (format!(r#"{{"version":2,"dataset":"x",{h}}}"#), "not supported"),
        (format!(r#"{{"version":1,"dataset":"x",{h},"extra":true}}"#), "unknown field"),
        (format!(r#"{{"version":1,"dataset":"x",{h}"#), "not a valid query"),
        (r#"{"version":1,"dataset":"x","views":[{"type":"sample","limit":4294967295}]}"#.into(), "exceeds"),
        (format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000)), "not a valid query"),
        ("\u{0}\u{1}garbage".into(), "not a valid query"),
    ];
    for (json, want) in &cases {
        let msg = ticket_error(json);
        assert!(msg.contains(want), "{}: {msg:?} does not say {want:?}", &json[..json.len().min(120)]);
    }
    // Not UTF-8 at all.
    let e = no_panic("bytes", || fuzzing::ticket(b"{\"version\":1,\"dataset\":\"\xff\xfe\"}")).expect_err("refused");
    assert_eq!(e.category(), "invalid_query");
    // Past the size limit.
    let big = vec![b' '; quiver_worker::protocol::MAX_TICKET_BYTES + 1];
    let e = no_panic("big", || fuzzing::ticket(&big)).expect_err("refused");
    assert!(e.to_string().contains("limit"), "{e}");
}

#[test]
fn extreme_but_valid_tickets_answer() {
    let vp = r#""viewport":{"west":170,"south":-85.0511,"east":-170,"north":85.0511}"#;
    let json = format!(
        r#"{{"version":1,"dataset":"any","viewportFilter":true,{vp},"filters":{{"range":{{"range":{{"min":-1.7976931348623157e308,"max":1.7976931348623157e308}}}},"created":{{"bins":[]}}}},"views":[{{"type":"raster","width":4096,"height":1}},{{"type":"sample","limit":10000}},{{"type":"histogram","dimension":"created"}}]}}"#
    );
    let r = no_panic("extreme ticket", || fuzzing::ticket(json.as_bytes())).expect("a valid ticket answers");
    assert_eq!(r.total, fuzzing::TICKET_SHARD_ROWS);
    // An empty bin list selects nothing; the created histogram ignores its own filter.
    assert_eq!(r.selected, 0);
    let raster = r.raster.expect("raster asked for");
    assert_eq!((raster.width, raster.height), (4096, 1));
    assert!(raster.counts.is_empty(), "nothing is selected, so nothing is drawn");
}

// ---------------------------------------------------------------------------
// Seed corpus writer
// ---------------------------------------------------------------------------

/// Rewrites `fuzz/corpus/*` (run by hand; see the module doc).
#[test]
#[ignore = "writes the committed seed corpus"]
fn write_seed_corpus() {
    let corpus = repo().join("fuzz/corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        std::fs::write(dir.join(name), bytes).expect("seed written");
    };
    // Tickets: one per feature of the protocol.
    let tickets = [
        ("histogram", r#"{"version":1,"dataset":"towers","views":[{"type":"histogram","dimension":"radio"}]}"#),
        (
            "crossfilter",
            r#"{"version":1,"dataset":"towers","filters":{"radio":{"categories":["LTE","GSM"]},"range":{"range":{"min":100,"max":5000}},"created":{"bins":[3,4,5]}},"views":[{"type":"histogram","dimension":"radio"},{"type":"histogram","dimension":"range"},{"type":"histogram","dimension":"created"}]}"#,
        ),
        (
            "raster",
            r#"{"version":1,"dataset":"towers","viewport":{"west":-30,"south":30,"east":40,"north":70},"viewportFilter":true,"views":[{"type":"raster","width":80,"height":50},{"type":"histogram","dimension":"range"}]}"#,
        ),
        (
            "antimeridian",
            r#"{"version":1,"dataset":"towers","viewport":{"west":150,"south":-50,"east":-150,"north":10},"views":[{"type":"raster","width":16,"height":16},{"type":"sample","limit":5}]}"#,
        ),
        ("sample", r#"{"version":1,"dataset":"towers","views":[{"type":"sample","limit":20}]}"#),
        (
            "temporal",
            r#"{"version":1,"dataset":"towers","filters":{"created":{"range":{"min":1262304000,"max":1577836800}}},"views":[{"type":"histogram","dimension":"created"},{"type":"sample","limit":3}]}"#,
        ),
    ];
    for (name, t) in tickets {
        write("ticket", &format!("{name}.json"), t.as_bytes());
    }
    // CSV and Parquet: a few generated rows of each preset.
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let generate = |preset: Preset, format: Format, rows: u64| -> Vec<u8> {
        let out = dir.path().join(format!("{}-{}", preset.as_str(), format.extension()));
        let mut opts = quiver_worker::synth::GenOptions::new(preset, rows, out.to_string_lossy().to_string());
        opts.format = format;
        opts.files = 1;
        rt.block_on(quiver_worker::synth::generate(&opts, false)).expect("generated");
        std::fs::read(out.join(opts.file_name(0))).expect("generated file")
    };
    let towers = generate(Preset::Celltowers, Format::Csv, 12);
    write("csv", "towers.csv", &towers);
    let text = String::from_utf8(towers).expect("generated CSV is UTF-8");
    let body = text.split_once('\n').expect("a header line").1;
    write("csv", "towers-headerless.csv", body.as_bytes());
    write("csv", "towers-crlf.csv", text.replace('\n', "\r\n").as_bytes());
    write("csv", "ais.csv", &generate(Preset::Ais, Format::Csv, 12));
    write("parquet", "towers.parquet", &generate(Preset::Celltowers, Format::Parquet, 20));
    write("parquet", "ais.parquet", &generate(Preset::Ais, Format::Parquet, 20));
    write("parquet", "towers-other-types.parquet", &other_types_parquet());
}

/// A celltowers-shaped Parquet file with the other column types the loader
/// accepts: dictionary text, f32 positions, i32 range, millisecond timestamps,
/// and nulls; two row groups.
fn other_types_parquet() -> Vec<u8> {
    use std::sync::Arc;

    use arrow_array::types::Int8Type;
    use arrow_array::{ArrayRef, DictionaryArray, Float32Array, Int32Array, RecordBatch, TimestampMillisecondArray};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    let radio: DictionaryArray<Int8Type> =
        vec![Some("LTE"), Some("GSM"), None, Some("NR"), Some("5G?")].into_iter().collect();
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("radio", Arc::new(radio)),
        ("lon", Arc::new(Float32Array::from(vec![Some(13.4), Some(-74.0), Some(2.35), None, Some(179.99)]))),
        ("lat", Arc::new(Float32Array::from(vec![Some(52.5), Some(40.7), Some(48.85), Some(0.0), Some(-85.0)]))),
        ("range", Arc::new(Int32Array::from(vec![Some(1000), None, Some(0), Some(-5), Some(i32::MAX)]))),
        (
            "created",
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(1_262_304_000_000),
                Some(-1),
                None,
                Some(i64::MAX),
                Some(i64::MIN),
            ])),
        ),
    ];
    let batch = RecordBatch::try_from_iter(cols).expect("batch");
    let props = WriterProperties::builder().set_max_row_group_row_count(Some(3)).build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    out
}
