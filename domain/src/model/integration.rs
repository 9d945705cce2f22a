//! Integrations (Codat "platforms"): the two built-in Stripe integrations and their client settings.

use crate::ids::PlatformKey;
use crate::model::data_type::DataType;
use crate::model::secret::SealedSecret;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// Stripe's mode: test data or live data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Test mode (`sk_test_…`).
    Test,
    /// Live mode (`sk_live_…`).
    Live,
}

/// The OAuth scope the integration requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// `read_only` (the default).
    #[default]
    ReadOnly,
    /// `read_write` (opt-in).
    ReadWrite,
}

impl Scope {
    /// Stripe's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read_only",
            Self::ReadWrite => "read_write",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read_only" => Ok(Self::ReadOnly),
            "read_write" => Ok(Self::ReadWrite),
            other => Err(format!("'{other}' is not a scope (read_only or read_write)")),
        }
    }
}

/// Codat's `featureState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeatureState {
    /// Released.
    Release,
    /// Not supported by the platform.
    NotSupported,
}

/// A built-in integration: what never changes at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationDefinition {
    /// The platform key.
    pub key: &'static str,
    /// Display name.
    pub name: &'static str,
    /// Stripe mode.
    pub mode: Mode,
    /// Stable integration id.
    pub integration_id: Uuid,
    /// Stable source id.
    pub source_id: Uuid,
    /// Who provides the data.
    pub data_provided_by: &'static str,
    /// Alternative text for logos and buttons.
    pub logo_alt: &'static str,
}

impl IntegrationDefinition {
    /// The platform key as a typed key.
    pub fn platform_key(&self) -> PlatformKey {
        self.key.parse().expect("built-in keys are valid")
    }

    /// `Release` for the six data types Stripe provides, `NotSupported` for the other five.
    pub fn feature_state(&self, dt: DataType) -> FeatureState {
        if dt.supported_by_stripe() { FeatureState::Release } else { FeatureState::NotSupported }
    }

    /// Codat's `sourceType` for every built-in integration.
    pub fn source_type(&self) -> &'static str {
        "Commerce"
    }
}

/// `exgd`: Stripe, live mode.
pub const STRIPE: IntegrationDefinition = IntegrationDefinition {
    key: "exgd",
    name: "Stripe",
    mode: Mode::Live,
    integration_id: Uuid::from_u128(0x7f3b_2c1e_5a4d_4e8f_9b6a_1c2d_3e4f_5a01),
    source_id: Uuid::from_u128(0x0b8e_6d2a_3c4f_4a1b_8e7d_5f6a_7b8c_9d01),
    data_provided_by: "Stripe",
    logo_alt: "Stripe logo",
};

/// `yzth`: Stripe Test, test mode.
pub const STRIPE_TEST: IntegrationDefinition = IntegrationDefinition {
    key: "yzth",
    name: "Stripe Test",
    mode: Mode::Test,
    integration_id: Uuid::from_u128(0x7f3b_2c1e_5a4d_4e8f_9b6a_1c2d_3e4f_5a02),
    source_id: Uuid::from_u128(0x0b8e_6d2a_3c4f_4a1b_8e7d_5f6a_7b8c_9d02),
    data_provided_by: "Stripe",
    logo_alt: "Stripe Test logo",
};

/// Every built-in integration, in key order.
pub const BUILT_IN: [IntegrationDefinition; 2] = [STRIPE, STRIPE_TEST];

/// Looks up a built-in integration by platform key.
pub fn definition(key: &str) -> Option<&'static IntegrationDefinition> {
    BUILT_IN.iter().find(|d| d.key == key)
}

/// The settings a client keeps for an integration. Secrets are sealed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IntegrationSettings {
    /// Connect client id (`ca_…`).
    pub client_id: Option<String>,
    /// Platform secret key, sealed.
    pub secret_key: Option<SealedSecret>,
    /// Connect webhook signing secret, sealed.
    pub webhook_secret: Option<SealedSecret>,
    /// Requested OAuth scope.
    pub scope: Scope,
    /// Whether merchants may link with it.
    pub enabled: bool,
    /// Set when the source last refused the platform's secret key (cleared by a new key or a pull
    /// that completes with it).
    pub key_refused: Option<KeyRefused>,
}

/// The source refused an integration's platform secret key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRefused {
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
    /// What the source said.
    pub message: String,
}

impl IntegrationSettings {
    /// Whether the settings hold what linking needs (client id and secret key).
    pub fn is_configured(&self) -> bool {
        self.client_id.is_some() && self.secret_key.is_some()
    }
}

/// A built-in integration together with the client's settings for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    /// What never changes.
    pub definition: &'static IntegrationDefinition,
    /// What the client configured.
    pub settings: IntegrationSettings,
}

/// What `GET /integrations?query=` and `orderBy` accept.
pub const QUERY_SCHEMA: crate::query::Schema = {
    use crate::query::{FieldDef, FieldType};
    crate::query::Schema {
        entity: "Integration",
        fields: &[
            FieldDef::scalar("key", FieldType::String),
            FieldDef::scalar("name", FieldType::String),
            FieldDef::scalar("enabled", FieldType::Bool),
            FieldDef::scalar("sourceType", FieldType::Enum(crate::model::company::SOURCE_TYPES)),
            FieldDef::scalar("integrationId", FieldType::String),
            FieldDef::scalar("sourceId", FieldType::String),
            FieldDef::scalar("dataProvidedBy", FieldType::String),
            FieldDef::scalar("isBeta", FieldType::Bool),
            FieldDef::scalar("isOfflineConnector", FieldType::Bool),
        ],
        open: None,
    }
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_integrations_are_stripe_live_and_stripe_test() {
        assert_eq!(definition("exgd").unwrap().name, "Stripe");
        assert_eq!(definition("exgd").unwrap().mode, Mode::Live);
        assert_eq!(definition("yzth").unwrap().name, "Stripe Test");
        assert_eq!(definition("yzth").unwrap().mode, Mode::Test);
        assert!(definition("abcd").is_none());
        assert_ne!(STRIPE.integration_id, STRIPE_TEST.integration_id);
    }

    #[test]
    fn six_data_types_are_released_and_five_not_supported() {
        let released = DataType::ALL.iter().filter(|d| STRIPE_TEST.feature_state(**d) == FeatureState::Release).count();
        assert_eq!(released, 6);
        assert_eq!(STRIPE.feature_state(DataType::Orders), FeatureState::NotSupported);
    }
}
