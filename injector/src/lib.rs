//! The contract between hydrant's webhook and its agent, and (with the webhook issue) the pure pod
//! mutation. This crate does no I/O: no files, no network, no clock.
//!
//! The webhook writes the names defined here into pods; the agent reads them back from the same
//! constants, so the two can never disagree.

pub mod agent_config;

pub use agent_config::AgentConfig;

/// The environment variable through which an injected agent container receives its configuration,
/// as one JSON document (the schema of [`AgentConfig`]). Read only when `--config` is absent.
pub const AGENT_CONFIG_ENV: &str = "HYDRANT_AGENT_CONFIG";
