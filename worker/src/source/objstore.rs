//! One place that turns a dataset URL into an object store and a prefix, so
//! loading, generation and tests reach S3, local files and memory the same way.
//!
//! Supported: `s3://bucket/prefix` (and `s3a://`), `file:///abs/path`, a bare
//! local path (made absolute), and `memory://...` (one process-wide in-memory
//! store, so a test can generate into it and load from it).
//!
//! S3 settings are layered: the standard `AWS_*` environment variables, then the
//! worker's `--s3-*` defaults, then the dataset's own [`S3Options`]. Error
//! messages name the URL (without user info or query) and never a credential.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{BackoffConfig, ObjectMeta, ObjectStore, ObjectStoreExt, RetryConfig};
use url::Url;

use crate::error::{Error, Result};
use crate::spec::S3Options;

/// Defaults from the worker's flags and environment (`--s3-endpoint` etc.),
/// applied below a dataset's own [`S3Options`].
#[derive(Clone, Default, PartialEq)]
pub struct S3Defaults {
    /// Endpoint URL for S3-compatible stores, e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    /// Region, e.g. `us-east-1`.
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token for temporary credentials.
    pub session_token: Option<String>,
    /// Allow plain `http://` endpoints.
    pub allow_http: Option<bool>,
}

impl std::fmt::Debug for S3Defaults {
    // Secrets are shown only as present or absent, so the struct can be logged.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Defaults")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &redacted(&self.access_key_id))
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// An opened source or destination: the store, the prefix inside it, and the
/// URL it came from.
#[derive(Clone, Debug)]
pub struct Location {
    /// The object store.
    pub store: Arc<dyn ObjectStore>,
    /// Path of the prefix (or single object) inside the store; no leading or trailing `/`.
    pub prefix: Path,
    /// The URL as given (after turning a bare path into `file://`).
    pub url: Url,
}

impl Location {
    /// The path of `name` under the prefix.
    pub fn child(&self, name: &str) -> Path {
        let mut p = self.prefix.clone();
        for part in name.split('/').filter(|s| !s.is_empty()) {
            p = p.join(part);
        }
        p
    }

    /// The URL of an object of this store, for messages and summaries.
    pub fn url_of(&self, path: &Path) -> String {
        match self.url.scheme() {
            "file" | "memory" => format!("{}:///{}", self.url.scheme(), path),
            scheme => format!("{scheme}://{}/{}", self.url.host_str().unwrap_or(""), path),
        }
    }

    /// The URL for messages: no user info, no query, no fragment.
    pub fn display_url(&self) -> String {
        display_url(&self.url)
    }
}

/// The process-wide in-memory store behind every `memory://` URL.
fn memory_store() -> Arc<InMemory> {
    static MEMORY: OnceLock<Arc<InMemory>> = OnceLock::new();
    MEMORY.get_or_init(|| Arc::new(InMemory::new())).clone()
}

/// A URL as it may appear in messages: user info, query and fragment removed.
pub fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// Parses a source URL; a string without a scheme is a local path.
pub fn parse_url(url: &str) -> Result<Url> {
    let url = url.trim();
    if url.is_empty() {
        return Err(Error::InvalidSpec("empty source URL".into()));
    }
    let looks_like_path = url.starts_with('/') || url.starts_with('.') || !url.contains("://");
    if looks_like_path && !url.starts_with("memory:") {
        let abs = std::path::absolute(url).map_err(|e| {
            Error::InvalidSpec(format!("cannot resolve local path {:?}: {e}", crate::spec::truncate(url, 200)))
        })?;
        // A trailing slash or an existing directory both mean "this prefix".
        let as_dir = url.ends_with('/') || abs.is_dir();
        let parsed = if as_dir { Url::from_directory_path(&abs) } else { Url::from_file_path(&abs) };
        return parsed.map_err(|()| {
            Error::InvalidSpec(format!("local path {:?} is not valid", crate::spec::truncate(url, 200)))
        });
    }
    Url::parse(url).map_err(|e| {
        // Url's error does not echo the input, so credentials in it stay out of the message.
        Error::InvalidSpec(format!("source is not a valid URL ({e})"))
    })
}

fn store_err(url: &Url, e: impl std::fmt::Display) -> Error {
    Error::Store { location: display_url(url), message: e.to_string() }
}

/// Opens the store behind `url`. `s3` is the dataset's S3 settings (they win over
/// `defaults`, which win over the `AWS_*` environment).
pub fn open(url: &str, s3: Option<&S3Options>, defaults: &S3Defaults) -> Result<Location> {
    let url = parse_url(url)?;
    let bad_path =
        |e: object_store::path::Error| Error::InvalidSpec(format!("{}: invalid object path: {e}", display_url(&url)));
    match url.scheme() {
        "file" => {
            if url.host_str().is_some_and(|h| !h.is_empty() && h != "localhost") {
                return Err(Error::InvalidSpec(format!(
                    "{}: file URLs must be absolute paths on this host (file:///path)",
                    display_url(&url)
                )));
            }
            let prefix = Path::from_url_path(url.path()).map_err(bad_path)?;
            let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
            Ok(Location { store, prefix, url })
        }
        "memory" => {
            // `memory://a/b` and `memory:///a/b` both name the prefix `a/b`.
            let host = url.host_str().unwrap_or("");
            let joined = format!("{host}/{}", url.path().trim_start_matches('/'));
            let prefix = Path::from_url_path(&joined).map_err(bad_path)?;
            Ok(Location { store: memory_store(), prefix, url })
        }
        "s3" | "s3a" => {
            let bucket = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| {
                Error::InvalidSpec(format!("{}: S3 URL has no bucket (s3://bucket/prefix)", display_url(&url)))
            })?;
            let prefix = Path::from_url_path(url.path()).map_err(bad_path)?;
            let builder = s3_builder(bucket, s3, defaults).map_err(|e| match e {
                Error::InvalidSpec(m) => Error::InvalidSpec(format!("{}: {m}", display_url(&url))),
                other => other,
            })?;
            let store = builder.build().map_err(|e| store_err(&url, e))?;
            Ok(Location { store: Arc::new(store), prefix, url })
        }
        other => Err(Error::InvalidSpec(format!(
            "{}: unsupported URL scheme {other:?}; expected s3://, file:// or memory://",
            display_url(&url)
        ))),
    }
}

/// Credentials read from a mounted Secret directory.
struct FileCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

fn read_credentials_dir(dir: &str) -> Result<FileCredentials> {
    let read = |name: &str, required: bool| -> Result<Option<String>> {
        let path = std::path::Path::new(dir).join(name);
        match std::fs::read_to_string(&path) {
            Ok(s) => {
                let v = s.trim().to_string();
                if v.is_empty() && required {
                    return Err(Error::InvalidSpec(format!("credentials file {} is empty", path.display())));
                }
                Ok(Some(v).filter(|v| !v.is_empty()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
            // The message names the file only, never its contents.
            Err(e) => Err(Error::InvalidSpec(format!("cannot read credentials file {}: {e}", path.display()))),
        }
    };
    Ok(FileCredentials {
        access_key_id: read("accessKeyId", true)?.unwrap_or_default(),
        secret_access_key: read("secretAccessKey", true)?.unwrap_or_default(),
        session_token: read("sessionToken", false)?,
    })
}

/// The effective S3 settings after layering, without the environment.
#[derive(Debug, PartialEq)]
struct S3Layered {
    endpoint: Option<String>,
    region: Option<String>,
    allow_http: Option<bool>,
    virtual_hosted: Option<bool>,
    anonymous: bool,
}

fn layer(s3: Option<&S3Options>, defaults: &S3Defaults) -> S3Layered {
    let o = s3.cloned().unwrap_or_default();
    let endpoint = o.endpoint.clone().or_else(|| defaults.endpoint.clone()).filter(|e| !e.is_empty());
    let region = o.region.clone().or_else(|| defaults.region.clone()).filter(|r| !r.is_empty());
    // An explicit http:// endpoint implies plain HTTP unless told otherwise.
    let allow_http = o
        .allow_http
        .or(defaults.allow_http)
        .or_else(|| endpoint.as_deref().map(|e| e.starts_with("http://")).filter(|b| *b));
    // Custom endpoints (MinIO, Ceph...) expect path-style requests by default.
    let path_style = o.path_style.or(endpoint.as_ref().map(|_| true));
    S3Layered {
        endpoint,
        region,
        allow_http,
        virtual_hosted: path_style.map(|p| !p),
        anonymous: o.anonymous.unwrap_or(false),
    }
}

fn s3_builder(bucket: &str, s3: Option<&S3Options>, defaults: &S3Defaults) -> Result<AmazonS3Builder> {
    let l = layer(s3, defaults);
    // Retries are for transient faults; an unreachable endpoint should fail in seconds,
    // not the minutes of the library default.
    let retry =
        RetryConfig { backoff: BackoffConfig::default(), max_retries: 5, retry_timeout: Duration::from_secs(30) };
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(retry);
    if let Some(r) = &l.region {
        b = b.with_region(r);
    } else if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
        b = b.with_region("us-east-1");
    }
    if let Some(e) = &l.endpoint {
        b = b.with_endpoint(e);
    }
    if let Some(h) = l.allow_http {
        b = b.with_allow_http(h);
    }
    if let Some(v) = l.virtual_hosted {
        b = b.with_virtual_hosted_style_request(v);
    }
    if let Some(k) = &defaults.access_key_id {
        b = b.with_access_key_id(k);
    }
    if let Some(k) = &defaults.secret_access_key {
        b = b.with_secret_access_key(k);
    }
    if let Some(t) = &defaults.session_token {
        b = b.with_token(t);
    }
    if let Some(dir) = s3.and_then(|o| o.credentials_dir.as_deref()) {
        let c = read_credentials_dir(dir)?;
        b = b.with_access_key_id(c.access_key_id).with_secret_access_key(c.secret_access_key);
        if let Some(t) = c.session_token {
            b = b.with_token(t);
        }
    }
    if l.anonymous {
        b = b.with_skip_signature(true);
    }
    Ok(b)
}

/// True for names that are not data: hidden files and markers such as `_SUCCESS`.
fn is_marker(path: &Path) -> bool {
    path.filename().is_none_or(|f| f.starts_with('.') || f.starts_with('_'))
}

/// Lists the objects under the location, recursively, sorted by path. A URL
/// naming one object lists just that object. Hidden files and `_`-prefixed
/// markers are skipped. Nothing to list is an error naming the URL.
pub async fn list_files(loc: &Location) -> Result<Vec<ObjectMeta>> {
    let prefix = (!loc.prefix.is_root()).then_some(&loc.prefix);
    let mut files: Vec<ObjectMeta> = loc
        .store
        .list(prefix)
        .try_filter(|m| futures::future::ready(!is_marker(&m.location)))
        .try_collect()
        .await
        .map_err(|e| store_err(&loc.url, e))?;
    if files.is_empty() && prefix.is_some() {
        match loc.store.head(&loc.prefix).await {
            Ok(meta) => files.push(meta),
            Err(object_store::Error::NotFound { .. }) => {}
            // A directory on a local file system is not an object; it was simply empty.
            Err(_) if loc.url.scheme() == "file" => {}
            Err(e) => return Err(store_err(&loc.url, e)),
        }
    }
    if files.is_empty() {
        return Err(Error::Store { location: loc.display_url(), message: "no files found".into() });
    }
    files.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(files)
}

/// An S3 server for tests: `s3s-fs` over a directory (each subdirectory is a
/// bucket) on 127.0.0.1, with one access key.
#[cfg(test)]
pub(crate) mod testing {
    /// Access key id the test server accepts.
    pub const ACCESS_KEY: &str = "objstore-test-key";
    /// Secret the test server accepts.
    pub const SECRET_KEY: &str = "objstore-test-secret-9876543210";

    /// A running server; stops when dropped.
    pub struct S3Server {
        /// `http://127.0.0.1:PORT`.
        pub endpoint: String,
        task: tokio::task::JoinHandle<()>,
    }

    impl S3Server {
        pub async fn start(root: &std::path::Path) -> S3Server {
            let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs root");
            let mut builder = s3s::service::S3ServiceBuilder::new(fs);
            builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            let service = builder.build();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("local addr");
            let task = tokio::spawn(async move {
                while let Ok((sock, _)) = listener.accept().await {
                    let svc = service.clone();
                    tokio::spawn(async move {
                        let http = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                        let _ = http.serve_connection(hyper_util::rt::TokioIo::new(sock), svc).await;
                    });
                }
            });
            S3Server { endpoint: format!("http://{addr}"), task }
        }

        /// Dataset S3 settings that reach this server.
        pub fn options(&self) -> crate::spec::S3Options {
            crate::spec::S3Options {
                endpoint: Some(self.endpoint.clone()),
                region: Some("us-east-1".into()),
                ..Default::default()
            }
        }

        /// Worker defaults carrying the server's credentials.
        pub fn defaults(&self) -> super::S3Defaults {
            super::S3Defaults {
                endpoint: Some(self.endpoint.clone()),
                region: Some("us-east-1".into()),
                access_key_id: Some(ACCESS_KEY.into()),
                secret_access_key: Some(SECRET_KEY.into()),
                ..Default::default()
            }
        }
    }

    impl Drop for S3Server {
        fn drop(&mut self) {
            self.task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::PutPayload;

    #[test]
    fn s3_url_gives_bucket_and_prefix_without_slashes() {
        let loc = open("s3://towers-bucket/data/2024/", None, &S3Defaults::default()).unwrap();
        assert_eq!(loc.prefix.as_ref(), "data/2024");
        assert_eq!(loc.url_of(&loc.child("part-00000.parquet")), "s3://towers-bucket/data/2024/part-00000.parquet");
        let root = open("s3a://b", None, &S3Defaults::default()).unwrap();
        assert!(root.prefix.is_root());
    }

    #[test]
    fn file_url_and_bare_path_name_the_same_prefix() {
        let a = open("file:///tmp/quiver-x/towers/", None, &S3Defaults::default()).unwrap();
        let b = open("/tmp/quiver-x/towers/", None, &S3Defaults::default()).unwrap();
        assert_eq!(a.prefix.as_ref(), "tmp/quiver-x/towers");
        assert_eq!(a.prefix, b.prefix);
        assert_eq!(a.url_of(&a.child("f.csv")), "file:///tmp/quiver-x/towers/f.csv");
    }

    #[test]
    fn memory_url_host_is_the_first_segment() {
        let a = open("memory://bucket/p", None, &S3Defaults::default()).unwrap();
        let b = open("memory:///bucket/p/", None, &S3Defaults::default()).unwrap();
        assert_eq!(a.prefix.as_ref(), "bucket/p");
        assert_eq!(a.prefix, b.prefix);
    }

    #[test]
    fn bad_urls_are_rejected_with_the_reason() {
        let d = S3Defaults::default();
        let e = open("gopher://x/y", None, &d).unwrap_err().to_string();
        assert!(e.contains("unsupported URL scheme"), "{e}");
        let e = open("file://otherhost/x", None, &d).unwrap_err().to_string();
        assert!(e.contains("absolute paths"), "{e}");
        let e = open("s3:///nobucket", None, &d).unwrap_err().to_string();
        assert!(e.contains("no bucket"), "{e}");
        assert!(open("", None, &d).is_err());
    }

    #[test]
    fn messages_never_show_url_credentials() {
        let url = Url::parse("s3://AKIDEXAMPLE:SuperSecret@bucket/p?token=abc").unwrap();
        let shown = display_url(&url);
        assert!(!shown.contains("SuperSecret") && !shown.contains("AKIDEXAMPLE") && !shown.contains("abc"), "{shown}");
        let e = open("gopher://user:SuperSecret@x/y", None, &S3Defaults::default()).unwrap_err().to_string();
        assert!(!e.contains("SuperSecret"), "{e}");
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let d = S3Defaults {
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some("SuperSecret".into()),
            ..Default::default()
        };
        let shown = format!("{d:?}");
        assert!(!shown.contains("SuperSecret") && !shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn dataset_options_win_over_worker_defaults() {
        let defaults = S3Defaults {
            endpoint: Some("http://defaults:9000".into()),
            region: Some("eu-west-1".into()),
            ..Default::default()
        };
        let l = layer(None, &defaults);
        assert_eq!(l.endpoint.as_deref(), Some("http://defaults:9000"));
        assert_eq!(l.allow_http, Some(true), "http endpoint implies allow_http");
        assert_eq!(l.virtual_hosted, Some(false), "custom endpoint implies path style");
        let opts = S3Options {
            endpoint: Some("https://minio.storage:9000".into()),
            region: Some("us-west-2".into()),
            path_style: Some(false),
            anonymous: Some(true),
            ..Default::default()
        };
        let l = layer(Some(&opts), &defaults);
        assert_eq!(l.endpoint.as_deref(), Some("https://minio.storage:9000"));
        assert_eq!(l.region.as_deref(), Some("us-west-2"));
        assert_eq!(l.allow_http, None);
        assert_eq!(l.virtual_hosted, Some(true));
        assert!(l.anonymous);
        let plain = layer(None, &S3Defaults::default());
        assert_eq!(
            plain,
            S3Layered { endpoint: None, region: None, allow_http: None, virtual_hosted: None, anonymous: false }
        );
    }

    #[test]
    fn credentials_dir_must_hold_both_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("accessKeyId"), "AKIDEXAMPLE\n").unwrap();
        let opts = S3Options { credentials_dir: Some(dir.path().display().to_string()), ..Default::default() };
        let e = open("s3://b/p", Some(&opts), &S3Defaults::default()).unwrap_err().to_string();
        assert!(e.contains("secretAccessKey") && !e.contains("AKIDEXAMPLE"), "{e}");
        std::fs::write(dir.path().join("secretAccessKey"), "SuperSecret").unwrap();
        let c = read_credentials_dir(&dir.path().display().to_string()).unwrap();
        assert_eq!(c.access_key_id, "AKIDEXAMPLE");
        assert_eq!(c.secret_access_key, "SuperSecret");
        assert_eq!(c.session_token, None);
        assert!(open("s3://b/p", Some(&opts), &S3Defaults::default()).is_ok());
    }

    #[tokio::test]
    async fn listing_a_directory_is_recursive_sorted_and_skips_markers() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/nested")).unwrap();
        for name in ["b/nested/z.csv", "a.csv", "b/c.csv", "_SUCCESS", ".hidden"] {
            std::fs::write(root.join(name), "x,y\n1,2\n").unwrap();
        }
        let url = Url::from_directory_path(root).unwrap();
        let loc = open(url.as_str(), None, &S3Defaults::default()).unwrap();
        let names: Vec<String> = list_files(&loc)
            .await
            .unwrap()
            .iter()
            .map(|m| m.location.as_ref().rsplit_once(loc.prefix.as_ref()).unwrap().1.to_string())
            .collect();
        assert_eq!(names, vec!["/a.csv", "/b/c.csv", "/b/nested/z.csv"]);
    }

    #[tokio::test]
    async fn a_url_naming_one_file_lists_just_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("one.csv"), "x\n1\n").unwrap();
        std::fs::write(dir.path().join("one.csv.bak"), "x\n1\n").unwrap();
        let url = Url::from_file_path(dir.path().join("one.csv")).unwrap();
        let loc = open(url.as_str(), None, &S3Defaults::default()).unwrap();
        let files = list_files(&loc).await.unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].location, loc.prefix);
        assert_eq!(files[0].size, 4);
    }

    #[tokio::test]
    async fn an_empty_or_missing_prefix_is_an_error_naming_the_url() {
        let dir = tempfile::tempdir().unwrap();
        let url = Url::from_directory_path(dir.path().join("missing")).unwrap();
        let loc = open(url.as_str(), None, &S3Defaults::default()).unwrap();
        let e = list_files(&loc).await.unwrap_err();
        assert!(matches!(e, Error::Store { .. }));
        assert!(e.to_string().contains("missing") && e.to_string().contains("no files"), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_listing_signs_with_a_credentials_dir_and_reports_failures_by_url() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("lake/towers/2024")).unwrap();
        std::fs::write(root.path().join("lake/towers/b.csv"), "x\n1\n").unwrap();
        std::fs::write(root.path().join("lake/towers/2024/a.csv"), "x\n1\n2\n").unwrap();
        std::fs::write(root.path().join("lake/towers/_SUCCESS"), "").unwrap();
        let server = testing::S3Server::start(root.path()).await;
        let creds = tempfile::tempdir().unwrap();
        std::fs::write(creds.path().join("accessKeyId"), testing::ACCESS_KEY).unwrap();
        std::fs::write(creds.path().join("secretAccessKey"), format!("{}\n", testing::SECRET_KEY)).unwrap();
        let opts = S3Options { credentials_dir: Some(creds.path().display().to_string()), ..server.options() };
        let none = S3Defaults::default();

        let loc = open("s3://lake/towers/", Some(&opts), &none).unwrap();
        let files = list_files(&loc).await.unwrap();
        let names: Vec<&str> = files.iter().map(|m| m.location.as_ref()).collect();
        assert_eq!(names, vec!["towers/2024/a.csv", "towers/b.csv"]);
        assert_eq!(files[0].size, 6);
        assert_eq!(loc.url_of(&files[1].location), "s3://lake/towers/b.csv");

        let one = open("s3://lake/towers/b.csv", Some(&opts), &none).unwrap();
        assert_eq!(list_files(&one).await.unwrap().len(), 1);

        let missing = open("s3://lake/nothing/", Some(&opts), &none).unwrap();
        let e = list_files(&missing).await.unwrap_err().to_string();
        assert!(e.contains("s3://lake/nothing/"), "{e}");

        // Worker defaults alone also sign; a wrong secret fails without showing it.
        let loc = open("s3://lake/towers/", None, &server.defaults()).unwrap();
        assert_eq!(list_files(&loc).await.unwrap().len(), 2);
        let wrong = S3Defaults { secret_access_key: Some("wrong-secret-value".into()), ..server.defaults() };
        let e = list_files(&open("s3://lake/towers/", None, &wrong).unwrap()).await.unwrap_err();
        assert!(matches!(e, Error::Store { .. }));
        let e = e.to_string();
        assert!(e.contains("s3://lake/towers/") && !e.contains("wrong-secret-value"), "{e}");
    }

    #[tokio::test]
    async fn memory_urls_share_one_store_across_opens() {
        let w = open("memory://objstore-test/data/", None, &S3Defaults::default()).unwrap();
        w.store.put(&w.child("2.csv"), PutPayload::from_static(b"a\n")).await.unwrap();
        w.store.put(&w.child("1.csv"), PutPayload::from_static(b"a\n")).await.unwrap();
        w.store.put(&w.child("sub/3.csv"), PutPayload::from_static(b"a\n")).await.unwrap();
        let r = open("memory:///objstore-test/data", None, &S3Defaults::default()).unwrap();
        let files = list_files(&r).await.unwrap();
        let paths: Vec<&str> = files.iter().map(|m| m.location.as_ref()).collect();
        assert_eq!(paths, vec!["objstore-test/data/1.csv", "objstore-test/data/2.csv", "objstore-test/data/sub/3.csv"]);
        let other = open("memory://objstore-test/nothing", None, &S3Defaults::default()).unwrap();
        assert!(list_files(&other).await.is_err());
    }
}
