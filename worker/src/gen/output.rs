//! Writing generated batches: a synchronous encoder (Parquet, CSV, gzip'd CSV)
//! on a blocking thread feeds bytes through a bounded channel to an async task
//! that streams them to the object store as a multipart upload. Encoding never
//! blocks the runtime and memory stays bounded by the channel.

use std::io::{self, Write};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::ArrowError;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::spec::{Format, Preset};

/// Bytes handed to the uploader at a time.
const SINK_CHUNK: usize = 8 << 20;
/// Multipart part size (S3 needs at least 5 MiB for all but the last part).
const PART_SIZE: usize = 16 << 20;
/// Rows per Parquet row group.
pub(super) const ROW_GROUP_ROWS: usize = 1 << 20;

pub(super) enum Msg {
    Data(Bytes),
    /// The encoder finished; the upload may complete. Without it the upload is aborted.
    Done,
}

/// `io::Write` end of the pipe; lives on a blocking thread.
pub(super) struct ChannelSink {
    tx: mpsc::Sender<Msg>,
    buf: Vec<u8>,
    sent: u64,
}

impl ChannelSink {
    pub(super) fn new(tx: mpsc::Sender<Msg>) -> ChannelSink {
        ChannelSink { tx, buf: Vec::with_capacity(SINK_CHUNK), sent: 0 }
    }

    fn ship(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(SINK_CHUNK));
        self.sent += chunk.len() as u64;
        self.tx
            .blocking_send(Msg::Data(Bytes::from(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }

    /// Sends what is buffered and the end marker; returns the bytes written.
    pub(super) fn finish(mut self) -> io::Result<u64> {
        self.ship()?;
        self.tx
            .blocking_send(Msg::Done)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))?;
        Ok(self.sent)
    }
}

impl Write for ChannelSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= SINK_CHUNK {
            self.ship()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunks are shipped when full or at finish; a flush alone need not cut one.
        Ok(())
    }
}

/// Receives bytes and uploads them; completes the object only on [`Msg::Done`].
pub(super) async fn upload(
    store: Arc<dyn ObjectStore>,
    path: Path,
    url: String,
    mut rx: mpsc::Receiver<Msg>,
) -> Result<u64> {
    let store_err = |e: &dyn std::fmt::Display| Error::Store { location: url.clone(), message: e.to_string() };
    // Four parts in flight keep an S3 upload busy and bound the memory per file.
    let mut w = BufWriter::with_capacity(store, path, PART_SIZE).with_max_concurrency(4);
    let mut bytes = 0u64;
    loop {
        match rx.recv().await {
            Some(Msg::Data(b)) => {
                bytes += b.len() as u64;
                if let Err(e) = w.put(b).await {
                    let _ = w.abort().await;
                    return Err(store_err(&e));
                }
            }
            Some(Msg::Done) => {
                w.shutdown().await.map_err(|e| store_err(&e))?;
                return Ok(bytes);
            }
            None => {
                let _ = w.abort().await;
                return Err(store_err(&"generation stopped before the file was complete"));
            }
        }
    }
}

/// A format's encoder over the sink.
pub(super) enum Encoder {
    Parquet(Box<ArrowWriter<ChannelSink>>),
    Csv(Box<arrow_csv::Writer<ChannelSink>>),
    CsvGz(Box<arrow_csv::Writer<flate2::write::GzEncoder<ChannelSink>>>),
}

fn parquet_err(e: parquet::errors::ParquetError) -> Error {
    Error::Arrow(ArrowError::ParquetError(e.to_string()))
}

/// Writer settings: ~1M-row row groups; dictionaries where values repeat; snappy
/// only where it pays (random coordinates and dictionary indices do not compress,
/// and compressing them would cost a third of the encoding time); no min/max
/// statistics on free-text columns.
pub(super) fn parquet_properties(preset: Preset) -> WriterProperties {
    let (dictionary, uncompressed, no_stats): (&[&str], &[&str], &[&str]) = match preset {
        Preset::Celltowers => (
            &["radio", "mcc", "net", "unit", "changeable", "averageSignal"],
            &["radio", "mcc", "net", "area", "unit", "lon", "lat"],
            &[],
        ),
        Preset::Ais => (
            &[
                "MMSI",
                "Heading",
                "VesselName",
                "IMO",
                "CallSign",
                "VesselType",
                "Status",
                "Length",
                "Width",
                "Draft",
                "Cargo",
                "TransceiverClass",
            ],
            &["LAT", "LON", "Heading"],
            &["VesselName", "IMO", "CallSign", "TransceiverClass"],
        ),
    };
    let mut b = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_dictionary_enabled(false);
    for c in dictionary {
        b = b.set_column_dictionary_enabled(ColumnPath::from(*c), true);
    }
    for c in uncompressed {
        b = b.set_column_compression(ColumnPath::from(*c), Compression::UNCOMPRESSED);
    }
    for c in no_stats {
        b = b.set_column_statistics_enabled(ColumnPath::from(*c), EnabledStatistics::None);
    }
    b.build()
}

impl Encoder {
    pub(super) fn new(format: Format, preset: Preset, schema: SchemaRef, sink: ChannelSink) -> Result<Encoder> {
        let csv = || arrow_csv::WriterBuilder::new().with_header(true);
        Ok(match format {
            Format::Parquet => Encoder::Parquet(Box::new(
                ArrowWriter::try_new(sink, schema, Some(parquet_properties(preset))).map_err(parquet_err)?,
            )),
            Format::Csv => Encoder::Csv(Box::new(csv().build(sink))),
            // Level 1: gzip's fastest setting; generation speed matters more than size here.
            Format::CsvGz => {
                Encoder::CsvGz(Box::new(csv().build(flate2::write::GzEncoder::new(sink, flate2::Compression::new(1)))))
            }
        })
    }

    pub(super) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            Encoder::Parquet(w) => w.write(batch).map_err(parquet_err),
            Encoder::Csv(w) => w.write(batch).map_err(Error::from),
            Encoder::CsvGz(w) => w.write(batch).map_err(Error::from),
        }
    }

    /// Writes footers and trailers and returns the sink.
    pub(super) fn finish(self) -> Result<ChannelSink> {
        match self {
            Encoder::Parquet(w) => w.into_inner().map_err(parquet_err),
            Encoder::Csv(w) => Ok((*w).into_inner()),
            Encoder::CsvGz(w) => Ok((*w).into_inner().finish()?),
        }
    }
}
