//! How hydrant reads YAML files the operator gives it (config containers, manifests for
//! `hydrant inject`): with bounds sized for a platform team's files rather than
//! serde-saphyr's defaults, which are meant for input from the network.

use serde_saphyr::budget::{Budget, BudgetBreach};

/// The most YAML documents one operator file may hold. serde-saphyr's default, 1,024, refused
/// a platform team's file of 10,000 containers.
pub const MAX_FILE_DOCUMENTS: usize = 1_000_000;

/// The most YAML nodes (scalars, sequences, maps) one operator file may hold: about 50 for
/// each of [`MAX_FILE_DOCUMENTS`] (serde-saphyr's default is 250,000).
pub const MAX_FILE_NODES: usize = 50_000_000;

/// The most parser events one operator file may give: two for each node, and some.
pub const MAX_FILE_EVENTS: usize = 2 * MAX_FILE_NODES + 4 * MAX_FILE_DOCUMENTS;

/// The most scalar text one operator file may hold, in bytes (serde-saphyr's default: 64 MiB).
pub const MAX_FILE_SCALAR_BYTES: usize = 1024 * 1024 * 1024;

/// The budget for a file the operator gives: still bounded (anchors, aliases, depth and
/// merge keys keep serde-saphyr's defaults, which stop alias bombs), but with room for large
/// files.
pub fn file_budget() -> Budget {
    let mut budget = Budget::default();
    budget.max_documents = MAX_FILE_DOCUMENTS;
    budget.max_nodes = MAX_FILE_NODES;
    budget.max_events = MAX_FILE_EVENTS;
    budget.max_total_scalar_bytes = MAX_FILE_SCALAR_BYTES;
    budget
}

/// A YAML error in a file, in words that say what to do (the caller names the file): a
/// breached budget names the bound and asks for the file to be split; any other error is the
/// first line of the parser's own message.
pub fn describe(error: &serde_saphyr::Error) -> String {
    let serde_saphyr::Error::Budget { breach, location } = error.without_snippet() else {
        return first_line(&error.to_string()).to_owned();
    };
    let what = match breach {
        BudgetBreach::Documents { .. } => {
            format!("more than {MAX_FILE_DOCUMENTS} YAML documents")
        }
        BudgetBreach::Nodes { .. } => format!("more than {MAX_FILE_NODES} YAML nodes"),
        BudgetBreach::Events { .. } => format!("more than {MAX_FILE_EVENTS} YAML events"),
        BudgetBreach::ScalarBytes { .. } => {
            format!("more than {MAX_FILE_SCALAR_BYTES} bytes of YAML values")
        }
        other => format!("more YAML than hydrant reads from one file ({other:?})"),
    };
    let at = if location.line() > 0 {
        format!(" (at line {})", location.line())
    } else {
        String::new()
    };
    format!(
        "it holds {what}{at}, the most hydrant reads from one file; split it into several files"
    )
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_breached_budget_names_the_file_the_bound_and_the_fix() {
        let text = "---\na: 1\n".repeat(3);
        let mut budget = file_budget();
        budget.max_documents = 2;
        let options = serde_saphyr::options! { budget: Some(budget) };
        let error = serde_saphyr::from_multiple_with_options::<serde_json::Value>(&text, options)
            .expect_err("over the budget");
        let message = describe(&error);
        assert!(
            message.starts_with(&format!(
                "it holds more than {MAX_FILE_DOCUMENTS} YAML documents"
            )),
            "{message}"
        );
        assert!(
            message.ends_with("the most hydrant reads from one file; split it into several files"),
            "{message}"
        );
    }

    #[test]
    fn other_errors_keep_the_parsers_first_line() {
        let error = serde_saphyr::from_str::<serde_json::Value>("a: [unclosed").expect_err("bad");
        let message = describe(&error);
        assert!(!message.is_empty() && !message.contains('\n'), "{message}");
    }
}
