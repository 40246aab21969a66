//! The dashboard's integration tests, one module a file, built as one test binary
//! (`cargo test -p quiver-dashboard --test integration`; a module's tests with
//! `-- fanout::`): one link instead of one a file, which is most of what CI
//! spends building tests.

mod common;

mod api;
mod auth;
mod export;
mod fanout;
mod replicas;
mod resume;
mod serve;
