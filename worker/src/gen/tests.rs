//! Tests of the generators: options, determinism, read-back of every format,
//! and the facts the data is meant to have.

use std::collections::HashMap;
use std::io::Read;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use arrow_select::concat::concat_batches;
use bytes::Bytes;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::*;

fn opts(preset: Preset, rows: u64, files: u32, format: Format, out: &str, seed: u64) -> GenOptions {
    GenOptions { preset, rows, out: out.to_string(), format, files, seed, s3: S3Defaults::default() }
}

fn dir_url(dir: &std::path::Path) -> String {
    url::Url::from_directory_path(dir).unwrap().to_string()
}

fn read_file(path: &std::path::Path, format: Format, schema: SchemaRef) -> RecordBatch {
    let bytes = Bytes::from(std::fs::read(path).unwrap());
    read_bytes(bytes, format, schema)
}

fn read_bytes(bytes: Bytes, format: Format, schema: SchemaRef) -> RecordBatch {
    let batches: Vec<RecordBatch> = match format {
        Format::Parquet => {
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap();
            reader.map(|b| b.unwrap()).collect()
        }
        Format::Csv | Format::CsvGz => {
            let text: Vec<u8> = if format == Format::CsvGz {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut out).unwrap();
                out
            } else {
                bytes.to_vec()
            };
            let reader = arrow_csv::ReaderBuilder::new(schema.clone())
                .with_header(true)
                .build(std::io::Cursor::new(text))
                .unwrap();
            reader.map(|b| b.unwrap()).collect()
        }
    };
    concat_batches(&schema, &batches).unwrap()
}

fn read_all(dir: &std::path::Path, o: &GenOptions) -> RecordBatch {
    let schema = World::new(o.preset).unwrap().schema();
    let parts: Vec<RecordBatch> =
        (0..o.files).map(|f| read_file(&dir.join(o.file_name(f)), o.format, schema.clone())).collect();
    concat_batches(&schema, &parts).unwrap()
}

#[test]
fn row_counts_parse_with_suffixes_and_garbage_is_refused() {
    assert_eq!(parse_count("1000000"), Ok(1_000_000));
    assert_eq!(parse_count("1_000_000"), Ok(1_000_000));
    assert_eq!(parse_count("40M"), Ok(40_000_000));
    assert_eq!(parse_count("2.5e6"), Ok(2_500_000));
    assert_eq!(parse_count("10k"), Ok(10_000));
    assert_eq!(parse_count("1.5G"), Ok(1_500_000_000));
    for bad in ["", "abc", "-5", "1.5", "M", "1e400", "nan"] {
        let e = parse_count(bad).unwrap_err();
        assert!(e.contains("not a row count"), "{bad}: {e}");
    }
}

#[test]
fn options_are_validated_and_rows_split_evenly() {
    assert_eq!(default_files(1), 1);
    assert_eq!(default_files(4_000_000), 1);
    assert_eq!(default_files(4_000_001), 2);
    assert_eq!(default_files(40_000_000), 10);
    let o = GenOptions::new(Preset::Celltowers, 10, "memory://x/");
    assert!(o.validate().is_ok());
    assert!(GenOptions { rows: 0, ..o.clone() }.validate().unwrap_err().to_string().contains("--rows"));
    assert!(GenOptions { files: 0, ..o.clone() }.validate().unwrap_err().to_string().contains("--files"));
    let e = GenOptions { files: 11, ..o.clone() }.validate().unwrap_err().to_string();
    assert!(e.contains("exceeds --rows"), "{e}");
    let o = GenOptions { rows: 1003, files: 4, ..o };
    let per: Vec<u64> = (0..4).map(|f| o.rows_in_file(f)).collect();
    assert_eq!(per.iter().sum::<u64>(), 1003);
    assert!(per.iter().max().unwrap() - per.iter().min().unwrap() <= 1, "{per:?}");
    assert_eq!(o.file_name(3), "part-00003.parquet");
    assert_eq!(GenOptions { format: Format::CsvGz, ..o }.file_name(12), "part-00012.csv.gz");
}

#[test]
fn cli_arguments_become_options() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: GenArgs,
    }
    let cli =
        Cli::try_parse_from(["gen", "ais", "--rows", "9M", "--out", "s3://b/ais/", "--format", "csv.gz"]).unwrap();
    let o = cli.args.options(S3Defaults::default()).unwrap();
    assert_eq!((o.preset, o.rows, o.files, o.format, o.seed), (Preset::Ais, 9_000_000, 3, Format::CsvGz, 42));
    assert!(Cli::try_parse_from(["gen", "ships", "--rows", "1", "--out", "x"]).is_err());
    let too_many = Cli::try_parse_from(["gen", "celltowers", "--rows", "2", "--files", "3", "--out", "x"]).unwrap();
    assert!(too_many.args.options(S3Defaults::default()).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_gives_identical_bytes_and_another_seed_does_not() {
    for (preset, format) in [(Preset::Celltowers, Format::Parquet), (Preset::Ais, Format::CsvGz)] {
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        for (i, d) in dirs.iter().enumerate() {
            let seed = if i == 2 { 43 } else { 42 };
            let s = generate(&opts(preset, 300_000, 3, format, &dir_url(d.path()), seed), false).await.unwrap();
            assert_eq!(s.files.len(), 3);
        }
        for f in 0..3 {
            let name = opts(preset, 1, 1, format, "", 0).file_name(f);
            let a = std::fs::read(dirs[0].path().join(&name)).unwrap();
            let b = std::fs::read(dirs[1].path().join(&name)).unwrap();
            let c = std::fs::read(dirs[2].path().join(&name)).unwrap();
            assert!(a == b, "{preset:?} {name}: same seed, different bytes");
            assert!(a != c, "{preset:?} {name}: different seeds, same bytes");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_reads_back_to_the_same_rows() {
    for preset in [Preset::Celltowers, Preset::Ais] {
        let mut tables = Vec::new();
        for format in [Format::Parquet, Format::Csv, Format::CsvGz] {
            let d = tempfile::tempdir().unwrap();
            let o = opts(preset, 150_001, 2, format, &dir_url(d.path()), 7);
            let s = generate(&o, false).await.unwrap();
            assert_eq!(s.rows, 150_001);
            let on_disk: u64 = (0..2).map(|f| std::fs::metadata(d.path().join(o.file_name(f))).unwrap().len()).sum();
            assert_eq!(s.bytes, on_disk);
            let t = read_all(d.path(), &o);
            assert_eq!(t.num_rows(), 150_001);
            let expected = match preset {
                Preset::Celltowers => celltowers_schema(),
                Preset::Ais => ais_schema(),
            };
            assert_eq!(t.schema().fields(), expected.fields());
            tables.push(t);
        }
        assert!(tables[0] == tables[1], "{preset:?}: parquet and csv differ");
        assert!(tables[0] == tables[2], "{preset:?}: parquet and csv.gz differ");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_hold_the_chunks_seeded_by_seed_file_and_chunk_only() {
    let d = tempfile::tempdir().unwrap();
    let rows = CHUNK_ROWS as u64 * 2 + 2 * 1000;
    let o = opts(Preset::Celltowers, rows, 2, Format::Parquet, &dir_url(d.path()), 5);
    generate(&o, false).await.unwrap();
    let world = World::new(Preset::Celltowers).unwrap();
    // Chunks drawn directly, in reverse order, match what the run wrote.
    let file1 = read_file(&d.path().join(o.file_name(1)), Format::Parquet, world.schema());
    let direct: Vec<RecordBatch> = vec![world.batch(5, 1, 1, 1000), world.batch(5, 1, 0, CHUNK_ROWS)];
    let direct = concat_batches(&world.schema(), [&direct[1], &direct[0]]).unwrap();
    assert!(file1 == direct);
    let meta =
        ParquetRecordBatchReaderBuilder::try_new(Bytes::from(std::fs::read(d.path().join(o.file_name(0))).unwrap()))
            .unwrap()
            .metadata()
            .clone();
    assert_eq!(meta.file_metadata().num_rows() as usize, CHUNK_ROWS + 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_to_a_memory_store_lists_as_the_summary_says() {
    let o = opts(Preset::Ais, 20_000, 3, Format::Parquet, "memory://gen-tests/ais/", 1);
    let s = generate(&o, false).await.unwrap();
    let loc = objstore::open("memory://gen-tests/ais/", None, &S3Defaults::default()).unwrap();
    let listed = objstore::list_files(&loc).await.unwrap();
    let urls: Vec<String> = listed.iter().map(|m| loc.url_of(&m.location)).collect();
    assert_eq!(urls, s.files);
    assert_eq!(listed.iter().map(|m| m.size).sum::<u64>(), s.bytes);
    let mut rows = 0;
    for m in &listed {
        let bytes = loc.store.get(&m.location).await.unwrap().bytes().await.unwrap();
        rows += read_bytes(bytes, Format::Parquet, ais_schema()).num_rows();
    }
    assert_eq!(rows, 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_output_is_a_multipart_upload_with_the_same_bytes_as_a_local_file() {
    use crate::source::objstore::testing::S3Server;
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("bucket")).unwrap();
    let server = S3Server::start(root.path()).await;
    // Over 16 MiB, so the upload takes more than one part.
    let rows = 500_000;
    let mut o = opts(Preset::Celltowers, rows, 1, Format::Parquet, "s3://bucket/gen/towers/", 9);
    o.s3 = server.defaults();
    let s = generate(&o, false).await.unwrap();
    assert_eq!(s.files, vec!["s3://bucket/gen/towers/part-00000.parquet".to_string()]);
    assert!(s.bytes > 16 << 20, "{} bytes is a single part", s.bytes);
    let on_server = std::fs::read(root.path().join("bucket/gen/towers/part-00000.parquet")).unwrap();
    assert_eq!(on_server.len() as u64, s.bytes);
    let local = tempfile::tempdir().unwrap();
    generate(&opts(Preset::Celltowers, rows, 1, Format::Parquet, &dir_url(local.path()), 9), false).await.unwrap();
    assert!(on_server == std::fs::read(local.path().join("part-00000.parquet")).unwrap());
    // A nested local directory that does not exist yet is created.
    let nested = local.path().join("a/b/c/");
    let s = generate(&opts(Preset::Ais, 1000, 1, Format::Csv, &dir_url(&nested), 9), false).await.unwrap();
    assert_eq!(s.files.len(), 1);
    assert!(nested.join("part-00000.csv").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_destination_fails_with_its_url() {
    let d = tempfile::tempdir().unwrap();
    // A regular file where the output directory should be.
    let blocker = d.path().join("blocked");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let out = format!("{}/", url::Url::from_file_path(&blocker).unwrap());
    let e = generate(&opts(Preset::Celltowers, 300_000, 2, Format::Csv, &out, 1), false).await.unwrap_err();
    assert!(matches!(e, Error::Store { .. }), "{e:?}");
    assert!(e.to_string().contains("blocked"), "{e}");
}

#[tokio::test(flavor = "current_thread")]
async fn works_on_a_single_threaded_runtime() {
    let o = opts(Preset::Celltowers, 5_000, 2, Format::Csv, "memory://gen-tests/single/", 3);
    let s = generate(&o, false).await.unwrap();
    assert_eq!(s.files.len(), 2);
    assert!(s.bytes > 5_000 * 40);
}

// ---- facts about the data ----

fn col_f64<'a>(b: &'a RecordBatch, name: &str) -> &'a arrow_array::Float64Array {
    b.column_by_name(name).unwrap().as_primitive::<Float64Type>()
}
fn col_i64<'a>(b: &'a RecordBatch, name: &str) -> &'a arrow_array::Int64Array {
    b.column_by_name(name).unwrap().as_primitive::<Int64Type>()
}
fn col_i32<'a>(b: &'a RecordBatch, name: &str) -> &'a arrow_array::Int32Array {
    b.column_by_name(name).unwrap().as_primitive::<Int32Type>()
}
fn col_str<'a>(b: &'a RecordBatch, name: &str) -> &'a arrow_array::StringArray {
    b.column_by_name(name).unwrap().as_string::<i32>()
}

fn all(preset: Preset, rows: u64, seed: u64) -> RecordBatch {
    let schema = World::new(preset).unwrap().schema();
    let parts: Vec<RecordBatch> = batches(preset, rows, seed).unwrap().collect();
    concat_batches(&schema, &parts).unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn tower_radios_dates_ranges_and_samples_look_like_opencellid() {
    let b = all(Preset::Celltowers, 200_000, 11);
    let n = b.num_rows() as f64;
    let radio = col_str(&b, "radio");
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for r in radio.iter() {
        *counts.entry(r.unwrap()).or_default() += 1;
    }
    for (name, share) in [("GSM", 0.40), ("UMTS", 0.25), ("LTE", 0.30), ("CDMA", 0.03), ("NR", 0.02)] {
        let got = *counts.get(name).unwrap_or(&0) as f64 / n;
        assert!((got - share).abs() < 0.02, "{name}: {got:.3} vs {share}");
    }
    assert_eq!(counts.len(), 5, "{counts:?}");

    const Y2003: i64 = 1_041_379_200;
    const Y2010: i64 = 1_262_304_000;
    const Y2019: i64 = 1_546_300_800;
    const Y2022: i64 = 1_640_995_200;
    let (created, updated) = (col_i64(&b, "created"), col_i64(&b, "updated"));
    for i in 0..b.num_rows() {
        let (c, u, r) = (created.value(i), updated.value(i), radio.value(i));
        assert!((Y2003..Y2022).contains(&c), "created {c}");
        assert!(u >= c && u < Y2022, "updated {u} before created {c}");
        match r {
            "NR" => assert!(c >= Y2019, "NR created {c} before 2019"),
            "LTE" => assert!(c >= Y2010, "LTE created {c} before 2010"),
            "CDMA" => assert!(c < Y2019, "CDMA created {c} after 2018"),
            _ => {}
        }
    }
    let range: Vec<f64> = col_i64(&b, "range").values().iter().map(|&v| v as f64).collect();
    assert!(range.iter().all(|&r| (1.0..=100_000.0).contains(&r)));
    let m = median(range.clone());
    assert!((1_300.0..=1_800.0).contains(&m), "median range {m}");
    assert!(range.iter().filter(|&&r| r > 20_000.0).count() > 100, "range has a long tail");
    let samples: Vec<f64> = col_i64(&b, "samples").values().iter().map(|&v| v as f64).collect();
    assert!(samples.iter().all(|&s| s >= 1.0));
    let sm = median(samples.clone());
    let p99 = {
        let mut s = samples.clone();
        s.sort_by(f64::total_cmp);
        s[s.len() * 99 / 100]
    };
    assert!(p99 > 15.0 * sm, "samples should be heavy-tailed: median {sm}, p99 {p99}");
    let changeable = col_i32(&b, "changeable");
    assert!(changeable.values().iter().all(|&c| c == 0 || c == 1));
    let signal = col_i32(&b, "averageSignal");
    let zeros = signal.values().iter().filter(|&&s| s == 0).count() as f64 / n;
    assert!(zeros > 0.7 && signal.values().iter().all(|&s| (-140..=0).contains(&s)), "{zeros}");
    let unit = col_i32(&b, "unit");
    assert!(unit.null_count() > 0 && unit.null_count() < b.num_rows() / 2);
}

#[test]
fn towers_cluster_around_cities_of_their_country() {
    use super::cities::{CITIES, MCC};
    use super::sphere::{distance_km, distance_to_segment_km, to_v3};
    let b = all(Preset::Celltowers, 60_000, 3);
    let (lat, lon, mcc) = (col_f64(&b, "lat"), col_f64(&b, "lon"), col_i32(&b, "mcc"));
    let mccs_of = |cc: &str| MCC.iter().find(|m| m.0 == cc).map(|m| m.1).unwrap();
    // Roads: pairs of cities of one country less than 500 km apart.
    let mut roads = Vec::new();
    for (i, a) in CITIES.iter().enumerate() {
        for c in &CITIES[i + 1..] {
            if a.1 == c.1 && distance_km(a.2, a.3, c.2, c.3) <= 500.0 {
                roads.push((to_v3(a.2, a.3), to_v3(c.2, c.3), a.1));
            }
        }
    }
    let mut per_city = vec![0usize; CITIES.len()];
    let mut near_centre = 0;
    for i in 0..b.num_rows() {
        let (la, lo, m) = (lat.value(i), lon.value(i), mcc.value(i) as u16);
        let mut countries = Vec::new();
        let mut nearest = (f64::INFINITY, 0);
        for (j, c) in CITIES.iter().enumerate() {
            let d = distance_km(la, lo, c.2, c.3);
            if d < nearest.0 {
                nearest = (d, j);
            }
            // The farthest a tower is placed from its city: 20 spreads, at most 150 km.
            let cap = (20.0 * (1.0 + 1.6 * (c.4 as f64 / 1000.0).powf(0.45))).min(150.0);
            // Positions use flat geometry around the centre: allow its tiny error.
            if d <= cap * 1.005 + 0.05 {
                countries.push(c.1);
            }
        }
        // Rural towers may lie near a foreign city: look at the roads when the cities do not explain them.
        if !countries.iter().any(|cc| mccs_of(cc).contains(&m)) {
            let p = to_v3(la, lo);
            countries.extend(roads.iter().filter(|r| distance_to_segment_km(p, r.0, r.1) <= 20.5).map(|r| r.2));
        }
        assert!(!countries.is_empty(), "tower at {la},{lon} is far from every city and road", lon = lo);
        assert!(
            countries.iter().any(|cc| mccs_of(cc).contains(&m)),
            "tower at {la},{lo} has mcc {m}, not one of {countries:?}"
        );
        if nearest.0 < 25.0 {
            near_centre += 1;
            per_city[nearest.1] += 1;
        }
    }
    assert!(near_centre as f64 > 0.7 * b.num_rows() as f64, "{near_centre}");
    let idx = |name: &str| CITIES.iter().position(|c| c.0 == name).unwrap();
    // Tokyo (37M) has far more towers than Lyon (2.3M).
    assert!(per_city[idx("Tokyo")] > 5 * per_city[idx("Lyon")], "{} {}", per_city[idx("Tokyo")], per_city[idx("Lyon")]);
}

#[test]
fn ais_reports_are_january_2024_tracks_with_plausible_ships() {
    let b = all(Preset::Ais, 120_000, 5);
    let n = b.num_rows();
    let mmsi = col_i64(&b, "MMSI");
    let time = col_str(&b, "BaseDateTime");
    let (sog, cog, heading) = (col_f64(&b, "SOG"), col_f64(&b, "COG"), col_i32(&b, "Heading"));
    let (vt, status) = (col_i32(&b, "VesselType"), col_i32(&b, "Status"));
    let (length, width) = (col_f64(&b, "Length"), col_f64(&b, "Width"));
    let (imo, class) = (col_str(&b, "IMO"), col_str(&b, "TransceiverClass"));
    let (lat, lon) = (col_f64(&b, "LAT"), col_f64(&b, "LON"));
    for i in 0..n {
        let t = time.value(i);
        assert_eq!(t.len(), 19, "{t}");
        assert!(t.starts_with("2024-01-") && &t[10..11] == "T", "{t}");
        let day: u32 = t[8..10].parse().unwrap();
        let (h, m, s): (u32, u32, u32) =
            (t[11..13].parse().unwrap(), t[14..16].parse().unwrap(), t[17..19].parse().unwrap());
        assert!((1..=31).contains(&day) && h < 24 && m < 60 && s < 60, "{t}");
        assert!((100_000_000..=999_999_999).contains(&mmsi.value(i)));
        assert!((0.0..360.0).contains(&cog.value(i)));
        assert!((0..360).contains(&heading.value(i)) || heading.value(i) == 511);
        assert!(lat.value(i).abs() <= 90.0 && lon.value(i).abs() <= 180.0);
        if i > 0 && mmsi.value(i) == mmsi.value(i - 1) {
            assert!(t > time.value(i - 1), "track goes back in time: {} then {t}", time.value(i - 1));
        }
        let ty = vt.value(i);
        if !length.is_null(i) {
            let (lo, hi) = super::ais::length_range(ty).unwrap();
            let l = length.value(i);
            assert!(l >= lo.floor() && l <= hi.ceil(), "type {ty} length {l}");
            assert!(width.value(i) < l, "type {ty} width {} >= length {l}", width.value(i));
        }
        if (70..=79).contains(&ty) && status.is_valid(i) && status.value(i) == 0 {
            assert!((8.0..=24.0).contains(&sog.value(i)), "cargo underway at {} kn", sog.value(i));
        }
        if ty == 30 {
            assert!(sog.value(i) <= 6.5, "fishing at {} kn", sog.value(i));
        }
        if class.value(i) == "B" {
            assert!(imo.is_null(i) && status.is_null(i));
        } else {
            assert_eq!(class.value(i), "A");
        }
        if imo.is_valid(i) {
            let d: Vec<u32> = imo.value(i)[3..].bytes().map(|c| (c - b'0') as u32).collect();
            assert_eq!(d.len(), 7);
            let check: u32 = (0..6).map(|k| d[k] * (7 - k as u32)).sum::<u32>() % 10;
            assert_eq!(check, d[6], "bad IMO check digit in {}", imo.value(i));
        }
    }
    // The mix has every major kind of traffic.
    let share = |f: &dyn Fn(i32) -> bool| vt.values().iter().filter(|&&t| f(t)).count() as f64 / n as f64;
    assert!(share(&|t| (70..=79).contains(&t)) > 0.15);
    assert!(share(&|t| (80..=89).contains(&t)) > 0.05);
    for group in [&[30][..], &[31, 32, 52], &[36, 37], &[60, 61, 69]] {
        assert!(share(&|t| group.contains(&t)) > 0.005, "{group:?}");
    }
    // Heading follows the course over ground when moving.
    let (mut ok, mut total) = (0, 0);
    for i in 0..n {
        if heading.value(i) != 511 && sog.value(i) > 2.0 {
            total += 1;
            let d = (heading.value(i) as f64 - cog.value(i)).rem_euclid(360.0);
            ok += usize::from(d.min(360.0 - d) < 20.0);
        }
    }
    assert!(ok as f64 > 0.98 * total as f64, "{ok}/{total}");
    // The course over ground points where the ship goes next.
    let (mut ok, mut total) = (0, 0);
    for i in 1..n {
        let moving = |k: usize| status.is_valid(k) && status.value(k) == 0 && sog.value(k) > 5.0;
        if mmsi.value(i) == mmsi.value(i - 1) && moving(i) && moving(i - 1) && (70..=89).contains(&vt.value(i)) {
            let b = super::sphere::bearing(lat.value(i - 1), lon.value(i - 1), lat.value(i), lon.value(i));
            let d = (b - cog.value(i - 1)).rem_euclid(360.0);
            total += 1;
            ok += usize::from(d.min(360.0 - d) < 20.0);
        }
    }
    assert!(total > 1000 && ok as f64 > 0.9 * total as f64, "{ok}/{total}");
}

#[test]
fn ais_traffic_is_even_across_january() {
    let b = all(Preset::Ais, 400_000, 2);
    let time = col_str(&b, "BaseDateTime");
    let mut days = [0usize; 31];
    for t in time.iter() {
        days[t.unwrap()[8..10].parse::<usize>().unwrap() - 1] += 1;
    }
    let even = b.num_rows() as f64 / 31.0;
    for (d, &n) in days.iter().enumerate() {
        // No ramp-up from an empty sea on the 1st, no fade-out on the 31st.
        assert!(
            n as f64 > 0.6 * even && (n as f64) < 1.6 * even,
            "2024-01-{:02}: {n} reports, {even:.0} on average",
            d + 1
        );
    }
}

#[test]
fn ais_positions_stay_on_the_sea_lanes() {
    use super::sphere::{distance_to_segment_km, to_v3};
    let segs = super::ais::network_segments().unwrap();
    // Index segments by 1-degree cells they pass near.
    let mut grid: HashMap<(i32, i32), Vec<usize>> = HashMap::new();
    let cell = |lat: f64, lon: f64| (lat.floor() as i32, lon.floor().rem_euclid(360.0) as i32);
    for (k, &[(la1, lo1), (la2, lo2)]) in segs.iter().enumerate() {
        let (a, b) = (to_v3(la1, lo1), to_v3(la2, lo2));
        let steps = (super::sphere::angle(a, b) * super::sphere::EARTH_KM / 10.0).ceil().max(1.0) as usize;
        for s in 0..=steps {
            let (la, lo) = super::sphere::to_latlon(super::sphere::slerp(
                a,
                b,
                super::sphere::angle(a, b),
                s as f64 / steps as f64,
            ));
            let (ci, cj) = cell(la, lo);
            for di in -1..=1 {
                for dj in -1..=1 {
                    let e = grid.entry((ci + di, (cj + dj).rem_euclid(360))).or_default();
                    if e.last() != Some(&k) {
                        e.push(k);
                    }
                }
            }
        }
    }
    let b = all(Preset::Ais, 60_000, 9);
    let (lat, lon) = (col_f64(&b, "LAT"), col_f64(&b, "LON"));
    for i in 0..b.num_rows() {
        let (la, lo) = (lat.value(i), lon.value(i));
        let p = to_v3(la, lo);
        let near = grid.get(&cell(la, lo)).map_or(f64::INFINITY, |ks| {
            ks.iter()
                .map(|&k| {
                    let [(a1, o1), (a2, o2)] = segs[k];
                    distance_to_segment_km(p, to_v3(a1, o1), to_v3(a2, o2))
                })
                .fold(f64::INFINITY, f64::min)
        });
        assert!(near <= 16.0, "report at {la},{lo} is {near:.1} km from the lane network");
    }
}

#[test]
fn the_sea_network_connects_every_port() {
    // Building it checks every name and that every port reaches every other.
    let ais = super::ais::Ais::new();
    assert!(ais.is_ok(), "{:?}", ais.err());
}

#[test]
fn january_timestamps_format_exactly() {
    let mut buf = [0u8; 19];
    super::ais::january_2024(0, &mut buf);
    assert_eq!(&buf, b"2024-01-01T00:00:00");
    super::ais::january_2024(14 * 86_400 + 13 * 3600 + 45 * 60 + 7, &mut buf);
    assert_eq!(&buf, b"2024-01-15T13:45:07");
    super::ais::january_2024(super::ais::MONTH_SECONDS - 1, &mut buf);
    assert_eq!(&buf, b"2024-01-31T23:59:59");
}
