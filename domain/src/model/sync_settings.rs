//! Sync settings: per data type, whether to fetch on first link, how often, and how far back.

use crate::error::{DomainError, ValidationItem};
use crate::model::data_type::DataType;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One data type's sync setting (Codat's `SyncSetting`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncSetting {
    /// The data type.
    pub data_type: DataType,
    /// Queue a pull as soon as a connection is linked.
    pub fetch_on_first_link: bool,
    /// Refresh every this many hours.
    pub sync_schedule: i32,
    /// Order in which data types are queued.
    pub sync_order: i32,
    /// Fetch data from this date.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "syncFromUtc")]
    pub sync_from_utc: Option<DateTime<Utc>>,
    /// Fetch this many months of data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_from_window: Option<i32>,
    /// Months of data for report types (unused by commerce types).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub months_to_sync: Option<i32>,
    /// Locked settings cannot be changed by companies.
    #[serde(default)]
    pub is_locked: bool,
}

/// The built-in defaults: every commerce type, fetched on first link and refreshed daily.
pub fn default_settings() -> Vec<SyncSetting> {
    DataType::ALL
        .iter()
        .enumerate()
        .map(|(i, dt)| SyncSetting {
            data_type: *dt,
            fetch_on_first_link: true,
            sync_schedule: 24,
            sync_order: i32::try_from(i).unwrap_or(0),
            sync_from_utc: None,
            sync_from_window: None,
            months_to_sync: None,
            is_locked: false,
        })
        .collect()
}

/// Checks a settings list: no data type twice, a positive schedule, non-negative order and window,
/// and not both `syncFromUtc` and `syncFromWindow`.
pub fn validate(settings: &[SyncSetting]) -> Result<(), DomainError> {
    let mut items = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for s in settings {
        let id = Some(s.data_type.key().to_owned());
        if !seen.insert(s.data_type) {
            items.push(ValidationItem { item_id: id.clone(), message: format!("{} appears more than once.", s.data_type) });
        }
        if s.sync_schedule < 1 {
            items
                .push(ValidationItem { item_id: id.clone(), message: format!("syncSchedule of {} must be at least 1 hour.", s.data_type) });
        }
        if s.sync_order < 0 {
            items.push(ValidationItem { item_id: id.clone(), message: format!("syncOrder of {} must not be negative.", s.data_type) });
        }
        if s.sync_from_window.is_some_and(|w| w < 0) {
            items.push(ValidationItem { item_id: id.clone(), message: format!("syncFromWindow of {} must not be negative.", s.data_type) });
        }
        if s.sync_from_utc.is_some() && s.sync_from_window.is_some() {
            items
                .push(ValidationItem { item_id: id, message: format!("Set syncFromUtc or syncFromWindow for {}, not both.", s.data_type) });
        }
    }
    if items.is_empty() {
        Ok(())
    } else {
        Err(DomainError::Validation { message: items.iter().map(|i| i.message.as_str()).collect::<Vec<_>>().join(" "), items })
    }
}

/// Overlays company overrides on the client's settings, data type by data type.
pub fn effective(client: &[SyncSetting], company: Option<&[SyncSetting]>) -> Vec<SyncSetting> {
    let mut out = client.to_vec();
    if let Some(overrides) = company {
        for o in overrides {
            match out.iter().position(|s| s.data_type == o.data_type) {
                Some(i) if !out[i].is_locked => out[i] = o.clone(),
                Some(_) => {}
                None => out.push(o.clone()),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_cover_every_commerce_type_with_fetch_on_first_link() {
        let d = default_settings();
        assert_eq!(d.len(), 11);
        assert!(d.iter().all(|s| s.fetch_on_first_link && s.sync_schedule == 24));
        assert!(validate(&d).is_ok());
    }

    #[test]
    fn duplicate_types_and_bad_numbers_are_rejected() {
        let mut d = default_settings();
        d.push(d[0].clone());
        assert!(validate(&d).is_err());
        let mut d = default_settings();
        d[1].sync_schedule = 0;
        assert!(validate(&d).is_err());
    }

    #[test]
    fn company_overrides_replace_unlocked_client_settings_only() {
        let mut client = default_settings();
        client[0].is_locked = true;
        let mut o0 = client[0].clone();
        o0.sync_schedule = 1;
        let mut o1 = client[1].clone();
        o1.sync_schedule = 2;
        let eff = effective(&client, Some(&[o0, o1]));
        assert_eq!(eff[0].sync_schedule, 24, "locked setting kept");
        assert_eq!(eff[1].sync_schedule, 2);
    }
}
