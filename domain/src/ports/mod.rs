//! Ports: the traits adapters implement. Repositories (one per aggregate), the OAuth provider, the
//! commerce data source, the secret cipher, the clock and the webhook sender.

pub mod cipher;
pub mod clock;
pub mod oauth;
pub mod repository;
pub mod source;
pub mod webhook;

pub use cipher::{CipherError, SecretCipher};
pub use clock::{Clock, SystemClock, Timer};
pub use oauth::{Grant, OAuthError, OAuthProvider};
pub use repository::*;
pub use source::{CommerceDataSource, PlannedPartition, RecordPage, SourceError, StagedLookup};
pub use webhook::{WebhookRequest, WebhookResponse, WebhookSender};
