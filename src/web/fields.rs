//! How a form is shown back: each field's value with its error beside it
//! (the templates add `aria-invalid`, `aria-describedby` and `autofocus`
//! on the first field in error, so focus moves there without script), a
//! summary linking to the fields, and the choices of the select controls
//! (the time zones are `web::zones`).

use crate::domain::{weekday_name, FieldError};
use chrono::Weekday;
use serde::Serialize;

/// One input as the page shows it.
#[derive(Debug, Serialize)]
pub(super) struct Field {
    pub value: String,
    pub error: Option<String>,
    pub autofocus: bool,
}

/// One line of the error summary, linking to its field.
#[derive(Debug, Serialize)]
pub(super) struct ErrorLink {
    pub field: &'static str,
    pub message: String,
}

/// The errors of one submitted form, attached to fields by name.
pub(super) struct Errors<'a> {
    errors: &'a [FieldError],
    /// The first field in page order that has an error: it gets focus.
    first: Option<&'static str>,
}

impl<'a> Errors<'a> {
    /// `order` lists the form's field names as they appear on the page.
    pub(super) fn new(errors: &'a [FieldError], order: &[&'static str]) -> Errors<'a> {
        let first = order
            .iter()
            .copied()
            .find(|name| errors.iter().any(|e| e.field == *name));
        Errors { errors, first }
    }

    /// The field `name` showing `value`, with its messages if any.
    pub(super) fn field(&self, name: &str, value: impl Into<String>) -> Field {
        let messages: Vec<&str> = self
            .errors
            .iter()
            .filter(|e| e.field == name)
            .map(|e| e.message.as_str())
            .collect();
        Field {
            value: value.into(),
            error: (!messages.is_empty()).then(|| messages.join(" ")),
            autofocus: self.first == Some(name),
        }
    }

    pub(super) fn summary(&self) -> Vec<ErrorLink> {
        self.errors
            .iter()
            .map(|e| ErrorLink {
                field: e.field,
                message: e.message.clone(),
            })
            .collect()
    }
}

/// One `<option>` of a select control.
#[derive(Debug, Serialize)]
pub(super) struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// How often, with the day of a weekly digest in the same control: the
/// day is asked only for a weekly digest, with or without script.
/// `current` is the encoded frequency (`daily`, `weekdays`, `weekly:friday`).
pub(super) fn frequency_choices(current: &str) -> Vec<Choice> {
    let mut out = vec![
        choice("daily", "Every day".into(), current == "daily"),
        choice(
            "weekdays",
            "Weekdays, Monday to Friday".into(),
            current == "weekdays",
        ),
    ];
    for day in WEEK {
        let value = format!("weekly:{}", weekday_name(day));
        let selected = current == value;
        out.push(choice(
            &value,
            format!("Weekly, on {day_label}", day_label = day_label(day)),
            selected,
        ));
    }
    out
}

const WEEK: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

/// "Monday": the day as a sentence shows it.
fn day_label(day: Weekday) -> String {
    let name = weekday_name(day);
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn choice(value: &str, label: String, selected: bool) -> Choice {
    Choice {
        value: value.to_string(),
        label,
        selected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_field_in_page_order_gets_focus_and_its_message() {
        let errors = vec![
            FieldError {
                field: "time_zone",
                message: "Unknown time zone.".into(),
            },
            FieldError {
                field: "topics",
                message: "Too many.".into(),
            },
        ];
        let e = Errors::new(&errors, &["email", "topics", "time_zone"]);
        let topics = e.field("topics", "x");
        assert!(topics.autofocus);
        assert_eq!(topics.error.as_deref(), Some("Too many."));
        let zone = e.field("time_zone", "Nowhere/City");
        assert!(!zone.autofocus && zone.error.is_some());
        assert!(e.field("email", "").error.is_none());
        assert_eq!(e.summary().len(), 2);
    }

    #[test]
    fn weekly_choices_name_capitalised_days() {
        let c = frequency_choices("weekly:friday");
        let picked: Vec<&Choice> = c.iter().filter(|c| c.selected).collect();
        assert_eq!(picked.len(), 1);
        assert_eq!(picked[0].label, "Weekly, on Friday");
        assert_eq!(c.len(), 9);
    }
}
