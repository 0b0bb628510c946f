//! The Datadog HTTP client: sites, auth headers, request payloads and retry classes (knows nothing of the spool).

pub mod client;
pub mod error;
pub mod health;
pub mod payload;
pub mod secret;
pub mod site;
pub mod tls;

pub use client::{Client, ClientOptions, ClientSetupError, CurrentUser, Method, Request, Response};
pub use error::{ApiError, Retry};
pub use payload::Call;
pub use secret::Secret;
pub use site::{Api, Site, SiteError};
