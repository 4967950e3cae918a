//! Layer 2, wire messages: what goes to and comes from the authorization
//! server, the IdP and the browser redirect, built and parsed, each checked
//! against its RFC. No state: every function takes what it needs.

pub mod authorization_request;
pub mod authorization_response;
pub mod callback_page;
pub mod client_auth;
pub mod device_authorization;
pub mod dpop;
pub mod grants;
pub mod metadata;
pub mod registration;
pub mod revocation;
pub mod token;
