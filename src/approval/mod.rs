//! Approvals: turns an approval requirement into allowed or denied through Case Management (create a case,
//! poll it, cancel it on Ctrl-C, link incidents), behind the [`CaseApi`] and [`Approver`] traits so that
//! the flow is tested without HTTP.

pub mod api;
pub mod error;
pub mod flow;
pub mod grants;
pub mod http;
pub mod incidents;
pub mod request;
pub mod ui;

pub use api::{ApiFailure, CaseApi, CaseInfo, Incident, UserRef};
pub use error::ApprovalError;
pub use flow::{Approved, Approver, CaseApprover, FlowOptions};
pub use grants::{CaseRef, Grant, GrantStore};
pub use request::ApprovalRequest;

#[cfg(test)]
mod flow_tests;
