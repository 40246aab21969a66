//! `quiver-worker gen`: realistic synthetic data in the published schemas,
//! written to any object store, deterministic from a seed.
//!
//! ```text
//! rows ─split─▶ files part-00000.<ext> … (one worker thread per core takes files in turn)
//!   per file: generator thread ─chunks of 128Ki rows─▶ encoder (parquet | csv | csv.gz)
//!             ─bytes─▶ async multipart upload to the object store
//! ```
//!
//! Chunk `c` of file `f` is drawn from a generator seeded with `(seed, f, c)`
//! only, so the output is byte-identical for the same seed, rows, files and
//! format whatever the number of threads.

mod ais;
mod cities;
mod output;
mod sea;
mod sphere;
#[cfg(test)]
mod tests;
mod towers;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use indicatif::{ProgressBar, ProgressStyle};
use object_store::ObjectStore;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use ais::ais_schema;
pub use towers::celltowers_schema;

use crate::error::{Error, Result};
use crate::source::objstore::{self, S3Defaults};
pub use crate::spec::{Format, Preset};

/// Rows per generated chunk (one record batch).
pub const CHUNK_ROWS: usize = 128 * 1024;
/// Default rows per file when `--files` is not given.
pub const DEFAULT_ROWS_PER_FILE: u64 = 4_000_000;
/// Most files one run may write (file names have five digits).
pub const MAX_FILES: u32 = 100_000;

/// `quiver-worker gen celltowers|ais --rows N --out URL [--format F] [--files K] [--seed S]`.
/// S3 settings come from the top-level `--s3-*` flags (see [`GenArgs::options`]).
#[derive(clap::Args, Clone, Debug)]
pub struct GenArgs {
    /// Dataset to generate: `celltowers` (OpenCelliD schema) or `ais` (MarineCadastre schema).
    #[arg(value_name = "PRESET")]
    pub dataset: Preset,
    /// Number of rows, e.g. 1000000, 40M, 2.5e6.
    #[arg(long, value_parser = parse_count)]
    pub rows: u64,
    /// Destination prefix: file:///abs/dir/, s3://bucket/prefix/, memory://name/ or a local directory.
    #[arg(long)]
    pub out: String,
    /// File format: parquet, csv or csv.gz.
    #[arg(long, default_value = "parquet")]
    pub format: Format,
    /// Number of files [default: one per 4M rows, at least 1].
    #[arg(long)]
    pub files: Option<u32>,
    /// Random seed; the same seed, rows, files and format give identical files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Do not draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

impl GenArgs {
    /// Validated options, with the worker's S3 defaults.
    pub fn options(&self, s3: S3Defaults) -> Result<GenOptions> {
        let files = match self.files {
            Some(f) => f,
            None => default_files(self.rows),
        };
        let opts = GenOptions {
            preset: self.dataset,
            rows: self.rows,
            out: self.out.clone(),
            format: self.format,
            files,
            seed: self.seed,
            s3,
        };
        opts.validate()?;
        Ok(opts)
    }
}

/// Parses a row count: `1000000`, `1_000_000`, `40M`, `2.5e6`, `10k`, `1G`.
pub fn parse_count(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim().replace('_', "");
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        Some('g' | 'G' | 'b' | 'B') => (&t[..t.len() - 1], 1e9),
        _ => (t.as_str(), 1.0),
    };
    if let Ok(n) = num.parse::<u64>()
        && mult == 1.0
    {
        return Ok(n);
    }
    match num.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 && (x * mult).fract() == 0.0 && x * mult <= u64::MAX as f64 => {
            Ok((x * mult) as u64)
        }
        _ => Err(format!("{s:?} is not a row count (e.g. 1000000, 40M, 2.5e6)")),
    }
}

/// One file per [`DEFAULT_ROWS_PER_FILE`] rows, at least one.
pub fn default_files(rows: u64) -> u32 {
    rows.div_ceil(DEFAULT_ROWS_PER_FILE).clamp(1, MAX_FILES as u64) as u32
}

/// What to generate and where.
#[derive(Clone, Debug)]
pub struct GenOptions {
    /// Which dataset.
    pub preset: Preset,
    /// Total rows over all files.
    pub rows: u64,
    /// Destination prefix URL.
    pub out: String,
    /// File format.
    pub format: Format,
    /// Number of files.
    pub files: u32,
    /// Random seed.
    pub seed: u64,
    /// S3 settings for `s3://` destinations.
    pub s3: S3Defaults,
}

impl GenOptions {
    /// Options with the defaults: parquet, one file per 4M rows, seed 42.
    pub fn new(preset: Preset, rows: u64, out: impl Into<String>) -> GenOptions {
        GenOptions {
            preset,
            rows,
            out: out.into(),
            format: Format::Parquet,
            files: default_files(rows),
            seed: 42,
            s3: S3Defaults::default(),
        }
    }

    /// Rejects zero rows, zero files, more files than rows, too many files.
    pub fn validate(&self) -> Result<()> {
        if self.rows == 0 {
            return Err(Error::InvalidSpec("--rows must be at least 1".into()));
        }
        if self.files == 0 || self.files > MAX_FILES {
            return Err(Error::InvalidSpec(format!("--files must be between 1 and {MAX_FILES}, got {}", self.files)));
        }
        if self.files as u64 > self.rows {
            return Err(Error::InvalidSpec(format!(
                "--files {} exceeds --rows {}: every file needs at least one row",
                self.files, self.rows
            )));
        }
        Ok(())
    }

    /// Rows in file `f`: an even split, the first files taking the remainder.
    pub fn rows_in_file(&self, f: u32) -> u64 {
        let base = self.rows / self.files as u64;
        base + u64::from((f as u64) < self.rows % self.files as u64)
    }

    /// The file name of file `f`.
    pub fn file_name(&self, f: u32) -> String {
        format!("part-{f:05}.{}", self.format.extension())
    }
}

/// What a run wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct GenSummary {
    /// Rows written.
    pub rows: u64,
    /// URLs of the files written, in order.
    pub files: Vec<String>,
    /// Bytes written.
    pub bytes: u64,
    /// Wall time.
    pub seconds: f64,
}

impl GenSummary {
    /// Rows per second over the whole run.
    pub fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.seconds.max(1e-9)
    }
}

/// The generator tables of one preset.
enum World {
    Towers(towers::Towers),
    Ais(ais::Ais),
}

impl World {
    fn new(preset: Preset) -> Result<World> {
        Ok(match preset {
            Preset::Celltowers => World::Towers(towers::Towers::new()),
            Preset::Ais => {
                World::Ais(ais::Ais::new().map_err(|e| Error::InvalidSpec(format!("built-in sea lane tables: {e}")))?)
            }
        })
    }

    fn schema(&self) -> SchemaRef {
        match self {
            World::Towers(_) => celltowers_schema(),
            World::Ais(_) => ais_schema(),
        }
    }

    fn batch(&self, seed: u64, file: u32, chunk: u32, rows: usize) -> RecordBatch {
        let mut rng = ChaCha8Rng::seed_from_u64(chunk_seed(seed, file, chunk));
        match self {
            World::Towers(t) => t.batch(&mut rng, rows),
            World::Ais(a) => a.batch(&mut rng, rows),
        }
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of one chunk: depends on the run's seed, the file and the chunk only.
fn chunk_seed(seed: u64, file: u32, chunk: u32) -> u64 {
    splitmix64(splitmix64(seed) ^ (((file as u64) << 32) | chunk as u64))
}

/// Generates `rows` rows of a preset (file 0, from the start), for tests and benchmarks
/// that want batches without writing files.
pub fn batches(preset: Preset, rows: u64, seed: u64) -> Result<impl Iterator<Item = RecordBatch>> {
    let world = World::new(preset)?;
    let chunks = rows.div_ceil(CHUNK_ROWS as u64) as u32;
    Ok((0..chunks).map(move |c| {
        let n = (rows - c as u64 * CHUNK_ROWS as u64).min(CHUNK_ROWS as u64) as usize;
        world.batch(seed, 0, c, n)
    }))
}

struct Job {
    opts: GenOptions,
    world: World,
    store: Arc<dyn ObjectStore>,
    loc: objstore::Location,
    progress: ProgressBar,
    stop: AtomicBool,
    next_file: AtomicUsize,
    handle: tokio::runtime::Handle,
}

impl Job {
    /// Runs on a blocking thread: one worker per core takes files in turn.
    fn run(&self) -> Result<Vec<u64>> {
        let files = self.opts.files as usize;
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let workers = cores.min(files);
        let results: Mutex<Vec<Option<Result<u64>>>> = Mutex::new((0..files).map(|_| None).collect());
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    loop {
                        if self.stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let f = self.next_file.fetch_add(1, Ordering::Relaxed);
                        if f >= files {
                            break;
                        }
                        let r = self.write_file(f as u32);
                        if r.is_err() {
                            self.stop.store(true, Ordering::Relaxed);
                        }
                        results.lock().unwrap_or_else(|e| e.into_inner())[f] = Some(r);
                    }
                });
            }
        });
        let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
        // The first failure in file order is the one reported.
        let mut sizes = Vec::with_capacity(files);
        for r in results {
            match r {
                Some(Ok(n)) => sizes.push(n),
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        if sizes.len() != files {
            return Err(Error::Store { location: self.loc.display_url(), message: "generation stopped early".into() });
        }
        Ok(sizes)
    }

    fn write_file(&self, f: u32) -> Result<u64> {
        let path = self.loc.child(&self.opts.file_name(f));
        let url = self.loc.url_of(&path);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let uploader = self.handle.spawn(output::upload(self.store.clone(), path, url.clone(), rx));
        let encoded = self.encode_file(f, output::ChannelSink::new(tx));
        let uploaded = self
            .handle
            .block_on(uploader)
            .map_err(|e| Error::Store { location: url.clone(), message: format!("upload task failed: {e}") });
        // An upload failure explains an encoder's broken pipe, so it wins.
        let uploaded = uploaded.and_then(|r| r);
        match (encoded, uploaded) {
            (Ok(_), Ok(bytes)) => {
                tracing::debug!(file = %url, bytes, "generated file");
                Ok(bytes)
            }
            (_, Err(e)) | (Err(e), Ok(_)) => Err(e),
        }
    }

    /// Generates file `f` chunk by chunk on a helper thread while this thread encodes.
    fn encode_file(&self, f: u32, sink: output::ChannelSink) -> Result<u64> {
        let rows = self.opts.rows_in_file(f);
        let chunks = rows.div_ceil(CHUNK_ROWS as u64) as u32;
        let mut encoder = output::Encoder::new(self.opts.format, self.opts.preset, self.world.schema(), sink)?;
        std::thread::scope(|s| {
            let (btx, brx) = std::sync::mpsc::sync_channel::<RecordBatch>(2);
            s.spawn(move || {
                for c in 0..chunks {
                    let n = (rows - c as u64 * CHUNK_ROWS as u64).min(CHUNK_ROWS as u64) as usize;
                    if btx.send(self.world.batch(self.opts.seed, f, c, n)).is_err() {
                        break;
                    }
                }
            });
            // Dropping `brx` on an early return stops the generator thread.
            for batch in brx {
                if self.stop.load(Ordering::Relaxed) {
                    return Err(Error::Store {
                        location: self.loc.display_url(),
                        message: "stopped after another file failed".into(),
                    });
                }
                encoder.write(&batch)?;
                self.progress.inc(batch.num_rows() as u64);
            }
            Ok(())
        })?;
        Ok(encoder.finish()?.finish()?)
    }
}

/// Files already in the destination that this run will not overwrite would be
/// loaded along with the new ones; say so (one level only, so it stays cheap).
async fn warn_about_other_files(loc: &objstore::Location, opts: &GenOptions) {
    let Ok(listing) = loc.store.list_with_delimiter(Some(&loc.prefix)).await else {
        return;
    };
    let ours: std::collections::HashSet<String> =
        (0..opts.files).map(|f| loc.child(&opts.file_name(f)).to_string()).collect();
    let others =
        listing.objects.iter().filter(|m| !ours.contains(m.location.as_ref())).count() + listing.common_prefixes.len();
    if others > 0 {
        tracing::warn!(
            out = %loc.display_url(),
            others,
            "the destination already holds other files or folders; a dataset reading this prefix will include them"
        );
    }
}

fn progress_bar(total: u64, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] [{wide_bar}] {human_pos}/{human_len} rows  {per_sec}  eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style.progress_chars("=> "));
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// Generates the dataset described by `opts`; draws a progress bar on stderr when
/// `show_progress`. Must be called inside a Tokio runtime (uploads run on it;
/// generation and encoding run on their own threads).
pub async fn generate(opts: &GenOptions, show_progress: bool) -> Result<GenSummary> {
    opts.validate()?;
    let loc = objstore::open(&opts.out, None, &opts.s3)?;
    let started = Instant::now();
    tracing::info!(
        preset = opts.preset.as_str(),
        rows = opts.rows,
        files = opts.files,
        format = opts.format.extension(),
        out = %loc.display_url(),
        "generating"
    );
    warn_about_other_files(&loc, opts).await;
    let job = Arc::new(Job {
        world: World::new(opts.preset)?,
        store: loc.store.clone(),
        progress: progress_bar(opts.rows, show_progress),
        stop: AtomicBool::new(false),
        next_file: AtomicUsize::new(0),
        handle: tokio::runtime::Handle::current(),
        opts: opts.clone(),
        loc: loc.clone(),
    });
    let runner = job.clone();
    let sizes = tokio::task::spawn_blocking(move || runner.run())
        .await
        .map_err(|e| Error::Store { location: loc.display_url(), message: format!("generator failed: {e}") })??;
    job.progress.finish_and_clear();
    let summary = GenSummary {
        rows: opts.rows,
        files: (0..opts.files).map(|f| loc.url_of(&loc.child(&opts.file_name(f)))).collect(),
        bytes: sizes.iter().sum(),
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        rows = summary.rows,
        files = summary.files.len(),
        bytes = summary.bytes,
        seconds = summary.seconds,
        rows_per_second = summary.rows_per_second() as u64,
        "generated"
    );
    Ok(summary)
}
