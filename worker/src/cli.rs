//! What the three binaries' command lines share, in one place: the log setup,
//! duration and secret flags, and the shutdown signal. Errors are plain
//! strings naming the flag; each binary wraps them in its own error type.

use std::path::Path;
use std::time::Duration;

/// Log output format (`--log-format`, `QUIVER_LOG_FORMAT`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, the event's fields at the top level.
    Json,
}

/// Installs the process's `tracing` subscriber, writing to stderr. `RUST_LOG`
/// overrides `default_filter` (e.g. `"info,kube=warn"`).
pub fn init_logging(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// Parses a duration flag like `5s`, `250ms`, `12h`; zero is refused. The
/// error quotes the flag and the value.
pub fn parse_duration(flag: &str, value: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(value.trim())
        .map_err(|e| format!("--{flag} {value:?} is not a duration (e.g. 5s, 12h): {e}"))?;
    if d.is_zero() {
        return Err(format!("--{flag} {value:?} must be longer than zero"));
    }
    Ok(d)
}

/// Reads a secret given either as `--{flag}` or as a file (`--{flag}-file`).
/// Both at once, an empty value or an unreadable or empty file are errors;
/// neither gives `None`. A file's trailing newline is not part of the secret.
pub fn read_secret(flag: &str, value: Option<String>, file: Option<&Path>) -> Result<Option<String>, String> {
    let s = match (value, file) {
        (Some(_), Some(_)) => return Err(format!("give --{flag} or --{flag}-file, not both")),
        (Some(v), None) => v,
        (None, Some(path)) => {
            std::fs::read_to_string(path).map_err(|e| format!("cannot read --{flag}-file {}: {e}", path.display()))?
        }
        (None, None) => return Ok(None),
    };
    let s = s.trim_end_matches(['\n', '\r', ' ', '\t']).to_string();
    if s.is_empty() {
        return Err(format!("--{flag} is empty"));
    }
    Ok(Some(s))
}

/// Resolves on Ctrl-C or SIGTERM (the binaries' shutdown signal). If the
/// SIGTERM handler cannot be installed, only Ctrl-C ends the wait.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_name_the_flag_and_refuse_zero() {
        assert_eq!(parse_duration("ttl", " 250ms "), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("ttl", "12h"), Ok(Duration::from_secs(12 * 3600)));
        let e = parse_duration("session-ttl", "soon").unwrap_err();
        assert!(e.contains("--session-ttl \"soon\" is not a duration"), "{e}");
        let e = parse_duration("timeout", "0s").unwrap_err();
        assert!(e.contains("--timeout \"0s\" must be longer than zero"), "{e}");
    }

    #[test]
    fn secrets_come_from_one_place_and_are_never_empty() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert_eq!(read_secret("token", None, Some(&file)), Ok(Some("s3cret".into())));
        assert_eq!(read_secret("token", Some("abc".into()), None), Ok(Some("abc".into())));
        assert_eq!(read_secret("token", None, None), Ok(None));
        let e = read_secret("token", Some("abc".into()), Some(&file)).unwrap_err();
        assert_eq!(e, "give --token or --token-file, not both");
        assert_eq!(read_secret("token", Some(String::new()), None).unwrap_err(), "--token is empty");
        std::fs::write(&file, "\n").unwrap();
        assert_eq!(read_secret("worker-token", None, Some(&file)).unwrap_err(), "--worker-token is empty");
        let missing = dir.path().join("absent");
        let e = read_secret("token", None, Some(&missing)).unwrap_err();
        assert!(e.starts_with("cannot read --token-file ") && e.contains("absent"), "{e}");
        // The secret's value never appears in an error.
        std::fs::write(&file, "s3cret").unwrap();
        let e = read_secret("token", Some("s3cret".into()), Some(&file)).unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
    }
}
