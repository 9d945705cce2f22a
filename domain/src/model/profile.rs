//! The client's profile (Codat's `Profile`): name, branding and the post-link redirect.

use serde::{Deserialize, Serialize};

/// The client instance's profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Instance name.
    pub name: String,
    /// Logo URL.
    pub logo_url: Option<String>,
    /// Icon URL.
    pub icon_url: Option<String>,
    /// Where merchants are sent after linking; Codat placeholders are filled in.
    pub redirect_url: String,
    /// URLs allowed to talk to the instance.
    pub white_list_urls: Vec<String>,
}

impl Default for Profile {
    fn default() -> Self {
        Self { name: "Tributary".into(), logo_url: None, icon_url: None, redirect_url: String::new(), white_list_urls: Vec::new() }
    }
}
