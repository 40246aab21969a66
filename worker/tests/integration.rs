//! The worker's integration tests, one module a file, built as one test binary
//! (`cargo test -p quiver-worker --test integration`; a module's tests with
//! `-- kernels::`): one link instead of one a file. The fuzz regressions stay a
//! binary of their own: they count panics on every background thread of the
//! process, which other tests' deliberate faults would trip.

mod support;

mod details;
mod flight;
mod kernels;
