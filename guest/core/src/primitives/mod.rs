//! Layer 1, primitives: pieces with no knowledge of OAuth messages. They
//! import nothing from the layers above (`tests/layers.rs` checks it).

pub mod entropy;
pub mod http_url;
pub mod json;
pub mod pkce;
pub mod scope;
pub mod url_safety;
pub mod www_authenticate;
