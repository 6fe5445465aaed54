//! What the shadow manager answered since the host started: requests by operation and result,
//! rejections by AWS code.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Requests by operation (`get`, `update`, `delete`, `list`): accepted and rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShadowCounts {
    /// Accepted and rejected requests per operation.
    pub requests: BTreeMap<String, Outcomes>,
    /// Rejections by code (400, 404, 409, 413, 429, 500, ...).
    pub rejections: BTreeMap<u16, u64>,
}

/// Accepted and rejected requests of one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcomes {
    /// Accepted.
    pub accepted: u64,
    /// Rejected.
    pub rejected: u64,
}

/// The operations counted, each listed from zero.
pub const OPERATIONS: [&str; 4] = ["delete", "get", "list", "update"];

impl ShadowCounts {
    /// Counts from zero for every operation.
    pub fn new() -> Self {
        Self {
            requests: OPERATIONS.iter().map(|op| ((*op).to_owned(), Outcomes::default())).collect(),
            ..Self::default()
        }
    }

    /// Counts one answer to `operation`: accepted, or rejected with `code`.
    pub fn count(&mut self, operation: &str, rejected: Option<u16>) {
        // Every operation is listed from the start: counting one allocates nothing.
        let outcomes = match self.requests.get_mut(operation) {
            Some(outcomes) => outcomes,
            None => self.requests.entry(operation.to_owned()).or_default(),
        };
        match rejected {
            None => outcomes.accepted += 1,
            Some(code) => {
                outcomes.rejected += 1;
                *self.rejections.entry(code).or_default() += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_by_operation_result_and_code() {
        let mut counts = ShadowCounts::new();
        counts.count("update", None);
        counts.count("update", Some(409));
        counts.count("get", Some(404));
        counts.count("get", Some(404));
        assert_eq!(counts.requests["update"], Outcomes { accepted: 1, rejected: 1 });
        assert_eq!(counts.requests["get"], Outcomes { accepted: 0, rejected: 2 });
        assert_eq!(counts.requests["delete"], Outcomes::default(), "listed from zero");
        assert_eq!(counts.rejections, [(404, 2), (409, 1)].into_iter().collect());
    }
}
