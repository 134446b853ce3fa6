//! Catalog definitions (locations, SKUs) and the validation of codes and names.
//!
//! These types are both what callers pass in and what the log records, so they derive rkyv's
//! traits. Their `validate` methods are the single place where a definition's bounds live.

use rkyv::{Archive, Deserialize, Serialize};

use crate::error::FieldError;
use crate::limits::*;

/// Checks a SKU, location or lot code: `[A-Za-z0-9._-]{1,64}`.
pub fn check_code(field: &str, code: &str, errors: &mut Vec<FieldError>) {
    if code.is_empty() || code.len() > CODE_LEN_MAX {
        errors.push(FieldError::new(field, format!("must be 1 to {CODE_LEN_MAX} characters")));
    } else if !code.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        errors.push(FieldError::new(field, "may contain only letters, digits, '.', '_' and '-'"));
    }
}

/// Checks a bounded free-text field (names, notes, customer references).
pub fn check_text(field: &str, text: &str, max: usize, errors: &mut Vec<FieldError>) {
    // Characters, as JSON Schema's maxLength counts them; at most four bytes each.
    if text.len() > max && text.chars().count() > max {
        errors.push(FieldError::new(field, format!("must be at most {max} characters")));
    }
    if text.chars().any(char::is_control) {
        errors.push(FieldError::new(field, "must not contain control characters"));
    }
}

/// Checks a channel name (`web`, `app`, `pos`, `social`, ...): a short lowercase code.
pub fn check_channel(field: &str, channel: &str, errors: &mut Vec<FieldError>) {
    if channel.is_empty()
        || channel.len() > CHANNEL_LEN_MAX
        || !channel.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
    {
        errors.push(FieldError::new(field, format!("must be 1 to {CHANNEL_LEN_MAX} of a-z, 0-9, '_' and '-'")));
    }
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationKind {
    Warehouse,
    Store,
    Locker,
}

impl LocationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LocationKind::Warehouse => "warehouse",
            LocationKind::Store => "store",
            LocationKind::Locker => "locker",
        }
    }
}

/// A warehouse, store or locker of the network.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LocationDef {
    pub code: String,
    pub name: String,
    pub kind: LocationKind,
    pub lat: f64,
    pub lon: f64,
    /// Channels this location sells to (`web`, `app`, `pos`, `social`, ...).
    pub channels: Vec<String>,
    /// Customers may collect orders here.
    pub pickup: bool,
    /// May ship to customers.
    pub ships: bool,
    /// Lower first when sourcing ties.
    pub priority: i32,
}

impl LocationDef {
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        check_code("code", &self.code, &mut errors);
        check_text("name", &self.name, NAME_LEN_MAX, &mut errors);
        if !(-90.0..=90.0).contains(&self.lat) {
            errors.push(FieldError::new("lat", "must be between -90 and 90"));
        }
        if !(-180.0..=180.0).contains(&self.lon) {
            errors.push(FieldError::new("lon", "must be between -180 and 180"));
        }
        if self.channels.len() > CHANNELS_PER_LOCATION_MAX {
            errors.push(FieldError::new("channels", format!("at most {CHANNELS_PER_LOCATION_MAX} channels")));
        }
        for (i, channel) in self.channels.iter().enumerate() {
            check_channel(&format!("channels[{i}]"), channel, &mut errors);
        }
        finish(errors)
    }

    pub fn sells_to(&self, channel: &str) -> bool {
        self.channels.iter().any(|c| c == channel)
    }
}

/// A sellable article.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SkuDef {
    pub code: String,
    pub name: String,
    /// Integer minor units of the deployment's currency.
    pub price: i64,
    /// Sorted by key, keys unique.
    pub attributes: Vec<(String, String)>,
    pub active: bool,
}

impl SkuDef {
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        check_code("code", &self.code, &mut errors);
        check_text("name", &self.name, NAME_LEN_MAX, &mut errors);
        if self.price < 0 {
            errors.push(FieldError::new("price", "must not be negative"));
        }
        if self.attributes.len() > ATTRIBUTES_MAX {
            errors.push(FieldError::new("attributes", format!("at most {ATTRIBUTES_MAX} attributes")));
        }
        for (key, value) in &self.attributes {
            if key.is_empty() {
                errors.push(FieldError::new("attributes", "keys must not be empty"));
            }
            check_text(&format!("attributes.{key}"), key, ATTRIBUTE_LEN_MAX, &mut errors);
            check_text(&format!("attributes.{key}"), value, ATTRIBUTE_LEN_MAX, &mut errors);
        }
        if self.attributes.windows(2).any(|w| w[0].0 >= w[1].0) {
            errors.push(FieldError::new("attributes", "keys must be unique and sorted"));
        }
        finish(errors)
    }
}

pub(crate) fn finish(errors: Vec<FieldError>) -> Result<(), Vec<FieldError>> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        for (code, ok) in [
            ("SKU-1", true),
            ("a.b_c-D9", true),
            ("", false),
            ("has space", false),
            ("ü", false),
            (&"x".repeat(64), true),
            (&"x".repeat(65), false),
        ] {
            let mut errors = Vec::new();
            check_code("code", code, &mut errors);
            assert_eq!(errors.is_empty(), ok, "{code:?}");
        }
    }
}
