//! The operator's integration tests, one module a file, built as one test binary
//! (`cargo test -p quiver-operator --test integration`; a module's tests with
//! `-- reconcile::`): one link and one instantiation of kube's generics instead of
//! one a file, which is most of what CI spends building tests.

mod common;

mod activity;
mod api_budget;
mod children;
mod golden;
mod leader;
mod reconcile;
mod replicas;
mod resharding;
mod resume;
