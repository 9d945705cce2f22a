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

/// Longest URL a profile keeps.
pub const MAX_URL_LEN: usize = 2048;
/// Longest profile name.
pub const MAX_NAME_LEN: usize = 100;

/// Why a profile URL cannot be used, if it cannot. Placeholders (`{companyId}`, …) count as text.
fn url_problem(raw: &str) -> Option<String> {
    if raw.chars().any(char::is_control) {
        return Some("must not contain control characters (such as line breaks)".into());
    }
    if raw.len() > MAX_URL_LEN {
        return Some(format!("must be at most {MAX_URL_LEN} characters long"));
    }
    let filled: String = {
        // Codat's placeholders are filled in later: check the URL with a value in each.
        let mut out = String::with_capacity(raw.len());
        let mut in_braces = false;
        for c in raw.chars() {
            match c {
                '{' if !in_braces => in_braces = true,
                '}' if in_braces => {
                    in_braces = false;
                    out.push('x');
                }
                _ if in_braces => {}
                c => out.push(c),
            }
        }
        out
    };
    match url::Url::parse(&filled) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()) => None,
        Ok(_) => Some("must be an absolute http:// or https:// URL".into()),
        Err(e) => Some(format!("is not a URL ({e})")),
    }
}

impl Profile {
    /// Checks every field: a non-empty name without control characters, and absolute http(s)
    /// URLs without control characters (the redirect URL may be empty: the built-in done page).
    ///
    /// # Errors
    /// [`crate::DomainError::Validation`] with one item per field that is wrong.
    pub fn validate(&self) -> Result<(), crate::DomainError> {
        let mut items = Vec::new();
        let mut item = |field: &str, message: String| {
            items.push(crate::error::ValidationItem { item_id: Some(field.into()), message: format!("{field} {message}") });
        };
        if self.name.trim().is_empty() {
            item("name", "must not be empty".into());
        } else if self.name.chars().any(char::is_control) {
            item("name", "must not contain control characters".into());
        } else if self.name.chars().count() > MAX_NAME_LEN {
            item("name", format!("must be at most {MAX_NAME_LEN} characters long"));
        }
        if !self.redirect_url.is_empty()
            && let Some(p) = url_problem(&self.redirect_url)
        {
            item("redirectUrl", p);
        }
        for (field, value) in [("logoUrl", &self.logo_url), ("iconUrl", &self.icon_url)] {
            if let Some(p) = value.as_deref().filter(|v| !v.is_empty()).and_then(url_problem) {
                item(field, p);
            }
        }
        for (i, u) in self.white_list_urls.iter().enumerate() {
            if let Some(p) = url_problem(u) {
                item(&format!("whiteListUrls[{i}]"), p);
            }
        }
        if items.is_empty() {
            return Ok(());
        }
        let message = items.iter().map(|i| i.message.clone()).collect::<Vec<_>>().join("; ");
        Err(crate::DomainError::Validation { message: format!("The profile is not valid: {message}."), items })
    }
}

#[cfg(test)]
mod tests {
    use super::Profile;

    fn with(redirect: &str) -> Profile {
        Profile { name: "Acme".into(), redirect_url: redirect.into(), ..Profile::default() }
    }

    #[test]
    fn redirect_urls_with_line_breaks_or_other_schemes_are_refused_and_placeholders_pass() {
        for bad in [
            "https://x.example/\r\nSet-Cookie: a=b",
            "https://x.example/\n",
            "javascript:alert(1)",
            "ftp://x.example/",
            "/relative",
            "https://",
        ] {
            let e = with(bad).validate().unwrap_err();
            assert!(
                matches!(&e, crate::DomainError::Validation { items, .. } if items[0].item_id.as_deref() == Some("redirectUrl")),
                "{bad}: {e:?}"
            );
        }
        assert!(with(&format!("https://x.example/{}", "a".repeat(2100))).validate().is_err());
        for good in ["", "https://x.example/linked?company={companyId}&status={statusCode}", "http://127.0.0.1:3000/done"] {
            with(good).validate().unwrap_or_else(|e| panic!("{good}: {e:?}"));
        }
    }

    #[test]
    fn names_and_branding_urls_are_checked_too() {
        let p = Profile {
            name: " ".into(),
            logo_url: Some("data\u{0}".into()),
            icon_url: Some("https://cdn.example/i.png".into()),
            ..with("")
        };
        let Err(crate::DomainError::Validation { items, .. }) = p.validate() else { panic!("invalid") };
        let fields: Vec<_> = items.iter().filter_map(|i| i.item_id.clone()).collect();
        assert_eq!(fields, ["name", "logoUrl"]);
    }
}
