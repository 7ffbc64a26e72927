//! The environment variables hydrant reads, and the trait it reads them through so that tests
//! pass a map instead of changing the process environment.

use std::collections::HashMap;

/// The log filter, in `EnvFilter` syntax (`info`, `hydrant=debug,warn`). Unset or empty: `info`.
pub const HYDRANT_LOG: &str = injector::LOG_ENV;

/// The log format: `plain` (human-readable lines) or `json` (one object per line). Unset or
/// empty: `plain`.
pub const HYDRANT_LOG_FORMAT: &str = injector::LOG_FORMAT_ENV;

/// Read-only access to environment variables.
pub trait Env: Send + Sync {
    /// The variable's value; `None` when unset or not valid UTF-8.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// The variable's value, treating empty as unset.
pub fn non_empty(env: &dyn Env, name: &str) -> Option<String> {
    env.var(name).filter(|v| !v.trim().is_empty())
}
