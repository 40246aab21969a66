//! The simulated control plane's integration tests, one module a file, built as
//! one test binary (`cargo test -p quiver-kube-sim --test integration`): one link
//! instead of one a file.

mod cli;
mod controllers;
mod kube_client;
mod kubelet;
