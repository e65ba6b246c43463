//! The time-zone control: a plain `<select>` (it works without script),
//! its options grouped by region, each labelled with its city and its
//! current offset from UTC ("Berlin (UTC+01:00)"), without the names tzdb
//! keeps only for backward compatibility.

use super::fields::Choice;
use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// The regions of the IANA names a person would pick from, with the label
/// of their group; the legacy aliases outside them (`US/Eastern`,
/// `Etc/GMT+5`, `EST`) still parse but are not offered.
const REGIONS: &[(&str, &str)] = &[
    ("Africa", "Africa"),
    ("America", "Americas"),
    ("Antarctica", "Antarctica"),
    ("Arctic", "Arctic"),
    ("Asia", "Asia"),
    ("Atlantic", "Atlantic Ocean"),
    ("Australia", "Australia"),
    ("Europe", "Europe"),
    ("Indian", "Indian Ocean"),
    ("Pacific", "Pacific Ocean"),
];

/// Names inside those regions that tzdb's `backward` file keeps only so
/// old configurations still work (release 2025b, the one chrono-tz 0.10.4
/// compiles in): old spellings (`Asia/Calcutta` for `Asia/Kolkata`),
/// names renamed in 1995 (`America/Buenos_Aires`) and places whose clocks
/// have matched another zone's since 1970 and that are not a country's
/// main zone (`America/Montreal`, which is `America/Toronto`). Each still
/// parses, and a reader who saved one keeps it; it is just not offered
/// twice. The merged zones that are a country's entry in `zone.tab`
/// (`Europe/Amsterdam`, `Africa/Accra`) stay: people look for them.
const BACKWARD_LINKS: &[&str] = &[
    "Africa/Asmera",
    "Africa/Timbuktu",
    "America/Argentina/ComodRivadavia",
    "America/Atka",
    "America/Buenos_Aires",
    "America/Catamarca",
    "America/Coral_Harbour",
    "America/Cordoba",
    "America/Ensenada",
    "America/Fort_Wayne",
    "America/Godthab",
    "America/Indianapolis",
    "America/Jujuy",
    "America/Knox_IN",
    "America/Louisville",
    "America/Mendoza",
    "America/Montreal",
    "America/Nipigon",
    "America/Pangnirtung",
    "America/Porto_Acre",
    "America/Rainy_River",
    "America/Rosario",
    "America/Santa_Isabel",
    "America/Shiprock",
    "America/Thunder_Bay",
    "America/Virgin",
    "America/Yellowknife",
    "Antarctica/South_Pole",
    "Asia/Ashkhabad",
    "Asia/Calcutta",
    "Asia/Choibalsan",
    "Asia/Chongqing",
    "Asia/Chungking",
    "Asia/Dacca",
    "Asia/Harbin",
    "Asia/Istanbul",
    "Asia/Kashgar",
    "Asia/Katmandu",
    "Asia/Macao",
    "Asia/Rangoon",
    "Asia/Saigon",
    "Asia/Tel_Aviv",
    "Asia/Thimbu",
    "Asia/Ujung_Pandang",
    "Asia/Ulan_Bator",
    "Atlantic/Faeroe",
    "Atlantic/Jan_Mayen",
    "Australia/ACT",
    "Australia/Canberra",
    "Australia/Currie",
    "Australia/LHI",
    "Australia/NSW",
    "Australia/North",
    "Australia/Queensland",
    "Australia/South",
    "Australia/Tasmania",
    "Australia/Victoria",
    "Australia/West",
    "Australia/Yancowinna",
    "Europe/Belfast",
    "Europe/Kiev",
    "Europe/Nicosia",
    "Europe/Tiraspol",
    "Europe/Uzhgorod",
    "Europe/Zaporozhye",
    "Pacific/Enderbury",
    "Pacific/Johnston",
    "Pacific/Ponape",
    "Pacific/Samoa",
    "Pacific/Truk",
    "Pacific/Yap",
];

/// One `<optgroup>`.
#[derive(Debug, Serialize)]
pub(super) struct ZoneGroup {
    label: &'static str,
    options: Vec<Choice>,
}

/// The time-zone select's options: UTC (and a saved name that is not
/// offered, so saving the form never changes it silently) first, then the
/// groups.
#[derive(Debug, Serialize)]
pub(super) struct ZoneChoices {
    first: Vec<Choice>,
    groups: Vec<ZoneGroup>,
}

/// "UTC+05:30", "UTC-03:00", "UTC+00:00": `tz`'s offset at `now`.
pub(super) fn utc_offset(tz: Tz, now: DateTime<Utc>) -> String {
    let secs = tz
        .offset_from_utc_datetime(&now.naive_utc())
        .fix()
        .local_minus_utc();
    let sign = if secs < 0 { '-' } else { '+' };
    let m = secs.abs() / 60;
    format!("UTC{sign}{:02}:{:02}", m / 60, m % 60)
}

/// "New York", "Argentina / Buenos Aires": a zone name without its region.
pub(super) fn city(name: &str) -> String {
    let place = name.split_once('/').map_or(name, |(_, rest)| rest);
    place.replace('_', " ").replace('/', " / ")
}

/// Every offered zone, `current` selected, offsets as of `now`.
pub(super) fn zone_choices(current: &str, now: DateTime<Utc>) -> ZoneChoices {
    let label = |tz: Tz| format!("{} ({})", city(tz.name()), utc_offset(tz, now));
    let mut groups: Vec<ZoneGroup> = REGIONS
        .iter()
        .map(|&(_, label)| ZoneGroup {
            label,
            options: Vec::new(),
        })
        .collect();
    let mut offered = false;
    for tz in chrono_tz::TZ_VARIANTS {
        let name = tz.name();
        let Some(g) = name
            .split_once('/')
            .and_then(|(region, _)| REGIONS.iter().position(|r| r.0 == region))
        else {
            continue;
        };
        if BACKWARD_LINKS.contains(&name) {
            continue;
        }
        offered |= name == current;
        groups[g].options.push(Choice {
            value: name.to_string(),
            label: label(tz),
            selected: name == current,
        });
    }
    for g in &mut groups {
        g.options.sort_by(|a, b| a.label.cmp(&b.label));
    }
    let mut first = vec![Choice {
        value: "UTC".into(),
        label: "UTC".into(),
        selected: current == "UTC",
    }];
    if !offered && current != "UTC" && !current.is_empty() {
        let label = current.parse::<Tz>().map_or_else(
            |_| current.to_string(),
            |tz| format!("{} ({})", tz.name(), utc_offset(tz, now)),
        );
        first.insert(
            0,
            Choice {
                value: current.to_string(),
                label,
                selected: true,
            },
        );
    }
    ZoneChoices { first, groups }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn options(z: &ZoneChoices) -> Vec<&Choice> {
        z.first
            .iter()
            .chain(z.groups.iter().flat_map(|g| &g.options))
            .collect()
    }

    #[test]
    fn zones_are_grouped_by_region_with_their_current_offset() {
        let winter = zone_choices("Europe/Berlin", at("2026-01-15T12:00:00Z"));
        let europe = winter.groups.iter().find(|g| g.label == "Europe").unwrap();
        let berlin = europe
            .options
            .iter()
            .find(|o| o.value == "Europe/Berlin")
            .unwrap();
        assert_eq!(berlin.label, "Berlin (UTC+01:00)");
        assert!(berlin.selected);
        let summer = zone_choices("UTC", at("2026-07-15T12:00:00Z"));
        let all = options(&summer);
        let label = |v: &str| all.iter().find(|o| o.value == v).unwrap().label.clone();
        assert_eq!(label("Europe/Berlin"), "Berlin (UTC+02:00)");
        assert_eq!(label("America/New_York"), "New York (UTC-04:00)");
        assert_eq!(label("Asia/Kolkata"), "Kolkata (UTC+05:30)");
        assert_eq!(
            label("America/Argentina/Buenos_Aires"),
            "Argentina / Buenos Aires (UTC-03:00)"
        );
        assert_eq!(all[0].value, "UTC");
        assert_eq!(all.iter().filter(|o| o.selected).count(), 1);
        assert!(all.iter().all(|o| !o.value.starts_with("Etc/")));
    }

    #[test]
    fn backward_compatibility_names_are_not_offered_but_a_saved_one_is_kept() {
        let now = at("2026-06-12T12:00:00Z");
        let z = zone_choices("UTC", now);
        let all = options(&z);
        for gone in ["Asia/Calcutta", "Europe/Kiev", "America/Buenos_Aires"] {
            assert!(all.iter().all(|o| o.value != gone), "{gone} is offered");
        }
        for kept in [
            "Asia/Kolkata",
            "Europe/Kyiv",
            "Europe/Amsterdam",
            "Africa/Accra",
        ] {
            assert!(all.iter().any(|o| o.value == kept), "{kept} is missing");
        }
        // Every listed link is a name chrono-tz knows, so the list is not
        // stale for the tzdb release compiled in.
        for name in BACKWARD_LINKS {
            assert!(name.parse::<Tz>().is_ok(), "{name}");
        }
        let saved = zone_choices("Asia/Calcutta", now);
        assert_eq!(saved.first[0].value, "Asia/Calcutta");
        assert!(saved.first[0].selected);
        assert_eq!(options(&saved).iter().filter(|o| o.selected).count(), 1);
    }
}
