//! hydrant's integration tests: the real binary against a real OpenBao, one binary so the build
//! links once.

mod util;

mod agent;
mod agent_hcl;
mod certs;
mod chart;
mod cli;
mod consul_functions;
mod consul_template;
mod controller;
mod examples;
mod exec;
mod inject;
mod policy;
mod process;
mod registry;
mod render;
mod sidecar;
mod webhook;
