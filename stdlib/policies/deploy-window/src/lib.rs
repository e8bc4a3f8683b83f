//! `stdlib:deploy-window`: change things only when people are around.
//!
//! Params:
//! - `days`: the weekdays the window opens on, `mon` … `sun` (one or a
//!   list; full names and any case work too). Required.
//! - `hours`: `"HH:MM-HH:MM"`, local time, such as `"09:00-17:00"`. The end
//!   may be `24:00`. A window whose end is not after its start runs past
//!   midnight (`"22:00-02:00"`) and belongs to the day it starts on: with
//!   `days "fri"`, it is open from Friday 22:00 to Saturday 02:00. Required.
//! - `zone`: an IANA time zone name, such as `Europe/Berlin`; default
//!   `UTC`. Local times follow the zone's daylight-saving rules.
//!
//! - gate: promotes when `now`, in the zone, is inside the window; holds
//!   otherwise, naming the local time and when the window next opens.
//! - filter: allows every candidate inside the window and denies every one
//!   outside it, with the same reason.
//!
//! The time zone database is jiff's, compiled into the module (jiff's
//! `tzdb-bundle-always`): a policy reads no files. Its only clock is the
//! input's `now`; nothing here may call `Timestamp::now`, `Zoned::now` or
//! `TimeZone::system` (a test checks this source for them).

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use keelson_policy::time::{ceil_minutes, format_duration};
use keelson_policy::{Context, Error, FilterInput, PromoteInput, Promotion, Verdict, Weekday};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(deserialize_with = "keelson_policy::one_or_many")]
    days: Vec<String>,
    hours: String,
    #[serde(default = "utc")]
    zone: String,
}

fn utc() -> String {
    "UTC".into()
}

/// A weekly window, in minutes of the local day.
struct Window {
    /// By Monday-first index.
    days: [bool; 7],
    start: u16,
    /// Up to 1440; at most `start` for a window that runs past midnight.
    end: u16,
    zone: TimeZone,
    zone_name: String,
}

impl Window {
    fn read(ctx: &Context) -> Result<Window, Error> {
        let params: Params = ctx.params()?;
        let bad = |e: Error| Error::new(format!("bad params: {e}"));
        if params.days.is_empty() {
            return Err(Error::new(
                "bad params: `days` is empty; name at least one, such as `mon`",
            ));
        }
        let mut days = [false; 7];
        for d in &params.days {
            days[usize::from(Weekday::parse(d).map_err(bad)?.monday_index())] = true;
        }
        let (start, end) = read_hours(&params.hours).ok_or_else(|| {
            Error::new(format!(
                "bad params: `hours` is `{}`; write it as `HH:MM-HH:MM`, such as `09:00-17:00` (or `22:00-02:00` past midnight)",
                params.hours
            ))
        })?;
        if start == end {
            return Err(Error::new(format!(
                "bad params: `hours` `{}` starts and ends at the same time; for a whole day write `00:00-24:00`",
                params.hours
            )));
        }
        let zone = TimeZone::get(&params.zone).map_err(|_| {
            Error::new(format!(
                "bad params: `{}` is not a time zone; use an IANA name, such as `Europe/Berlin` or `America/New_York`",
                params.zone
            ))
        })?;
        Ok(Window {
            days,
            start,
            end,
            zone,
            zone_name: params.zone,
        })
    }

    fn wraps(&self) -> bool {
        self.end <= self.start
    }

    fn on(&self, date: Date) -> bool {
        self.days[date.weekday().to_monday_zero_offset() as usize]
    }

    /// Whether the local time `local` is inside the window.
    fn contains(&self, local: &Zoned) -> bool {
        let t = local.hour() as u16 * 60 + local.minute() as u16;
        let today = local.date();
        if !self.wraps() {
            return self.on(today) && self.start <= t && t < self.end;
        }
        let yesterday = today.yesterday().map(|d| self.on(d)).unwrap_or(false);
        (self.on(today) && t >= self.start) || (yesterday && t < self.end)
    }

    /// When the window next opens after `local` (which is outside it).
    fn next_opening(&self, local: &Zoned) -> Option<Zoned> {
        let mut date = local.date();
        for _ in 0..=7 {
            if self.on(date) {
                let at = date.at((self.start / 60) as i8, (self.start % 60) as i8, 0, 0);
                // In a daylight-saving gap, the opening moves to the first
                // time after it (jiff's "compatible" disambiguation).
                let opening = at.to_zoned(self.zone.clone()).ok()?;
                if opening.timestamp() > local.timestamp() {
                    return Some(opening);
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// `mon-fri 09:00-17:00 Europe/Berlin`.
    fn describe(&self) -> String {
        format!(
            "{} {}-{} {}",
            describe_days(&self.days),
            hhmm(self.start),
            hhmm(self.end),
            self.zone_name
        )
    }
}

/// `"HH:MM-HH:MM"` as minutes of the day; the end may be `24:00`.
fn read_hours(text: &str) -> Option<(u16, u16)> {
    let (a, b) = text.trim().split_once('-')?;
    let minutes = |s: &str, end: bool| -> Option<u16> {
        let (h, m) = s.trim().split_once(':')?;
        if h.is_empty() || h.len() > 2 || m.len() != 2 {
            return None;
        }
        let h: u16 = h.parse().ok()?;
        let m: u16 = m.parse().ok()?;
        (h < 24 && m < 60 || end && h == 24 && m == 0).then_some(h * 60 + m)
    };
    Some((minutes(a, false)?, minutes(b, true)?))
}

fn hhmm(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// The days in week order, runs of three or more as `mon-fri`.
fn describe_days(days: &[bool; 7]) -> String {
    if days.iter().all(|d| *d) {
        return "every day".into();
    }
    let mut parts = Vec::new();
    let mut i = 0;
    while i < 7 {
        if !days[i] {
            i += 1;
            continue;
        }
        let mut j = i;
        while j + 1 < 7 && days[j + 1] {
            j += 1;
        }
        let name = |k: usize| Weekday::from_monday_index(k as u8).short();
        match j - i {
            0 => parts.push(name(i).to_string()),
            1 => parts.extend([name(i).to_string(), name(j).to_string()]),
            _ => parts.push(format!("{}-{}", name(i), name(j))),
        }
        i = j + 1;
    }
    parts.join(", ")
}

/// Whether `now` is inside the window, and the reason that says so.
fn judge(ctx: &Context) -> Result<(bool, String), Error> {
    let window = Window::read(ctx)?;
    let now = Timestamp::from_second(ctx.now.unix())
        .map_err(|e| Error::new(format!("`now` is out of range: {e}")))?;
    let local = now.to_zoned(window.zone.clone());
    let it_is = format!(
        "it is {} in {}",
        local.strftime("%a %H:%M"),
        window.zone_name
    );
    if window.contains(&local) {
        return Ok((
            true,
            format!("{it_is}, inside the deploy window ({})", window.describe()),
        ));
    }
    let next = match window.next_opening(&local) {
        Some(open) => format!(
            "; it next opens {}, in {}",
            open.strftime("%a %Y-%m-%d %H:%M"),
            format_duration(ceil_minutes(open.timestamp().as_second() - ctx.now.unix()))
        ),
        None => String::new(),
    };
    Ok((
        false,
        format!(
            "{it_is}, outside the deploy window ({}){next}",
            window.describe()
        ),
    ))
}

pub fn promote(input: &PromoteInput) -> Result<Promotion, Error> {
    let (inside, reason) = judge(&input.context)?;
    Ok(if inside {
        Promotion::promote(reason)
    } else {
        Promotion::hold(reason)
    })
}

pub fn filter(input: &FilterInput) -> Result<Vec<Verdict>, Error> {
    let (inside, reason) = judge(&input.context)?;
    Ok(input
        .candidates
        .iter()
        .map(|c| {
            if inside {
                Verdict::allow(&c.tag)
            } else {
                Verdict::deny(&c.tag, &reason)
            }
        })
        .collect())
}

keelson_policy::export!(filter = filter, promote = promote);

#[cfg(test)]
mod tests {
    use super::*;
    use keelson_policy::serde_json::{Value, json};
    use keelson_policy::{Candidate, Time};

    fn ctx(now: &str, params: Value) -> Context {
        Context {
            now: Time::parse(now).unwrap(),
            ..Context::default()
        }
        .with_params(params)
    }

    fn gate(now: &str, params: Value) -> Result<Promotion, Error> {
        promote(&PromoteInput {
            context: ctx(now, params),
            ..PromoteInput::default()
        })
    }

    fn office() -> Value {
        json!({"days": ["mon", "tue", "wed", "thu", "fri"], "hours": "09:00-17:00", "zone": "Europe/Berlin"})
    }

    #[test]
    fn promotes_inside_the_window() {
        // 2026-11-23 is a Monday; Berlin is UTC+1 in November.
        assert_eq!(
            gate("2026-11-23T09:30:00Z", office()).unwrap(),
            Promotion::promote(
                "it is Mon 10:30 in Europe/Berlin, inside the deploy window (mon-fri 09:00-17:00 Europe/Berlin)"
            )
        );
        assert!(gate("2026-11-23T08:00:00Z", office()).unwrap().is_promote());
        assert!(gate("2026-11-23T15:59:59Z", office()).unwrap().is_promote());
    }

    #[test]
    fn holds_outside_naming_the_next_opening() {
        assert_eq!(
            gate("2026-11-23T21:47:00Z", office()).unwrap(),
            Promotion::hold(
                "it is Mon 22:47 in Europe/Berlin, outside the deploy window (mon-fri 09:00-17:00 Europe/Berlin); it next opens Tue 2026-11-24 09:00, in 10h13m"
            )
        );
        assert!(!gate("2026-11-23T16:00:00Z", office()).unwrap().is_promote());
        assert!(!gate("2026-11-23T07:59:59Z", office()).unwrap().is_promote());
        // Friday evening: next Monday.
        assert_eq!(
            gate("2026-11-27T18:00:00Z", office()).unwrap().reason,
            "it is Fri 19:00 in Europe/Berlin, outside the deploy window (mon-fri 09:00-17:00 Europe/Berlin); it next opens Mon 2026-11-30 09:00, in 62h"
        );
    }

    #[test]
    fn follows_daylight_saving_time() {
        // Berlin is UTC+2 in July: 07:30Z is 09:30 local.
        assert!(gate("2026-07-06T07:30:00Z", office()).unwrap().is_promote());
        assert!(!gate("2026-07-06T15:30:00Z", office()).unwrap().is_promote());
        // And UTC+1 in January: 07:30Z is 08:30 local.
        assert!(!gate("2026-01-05T07:30:00Z", office()).unwrap().is_promote());
        // New York, across the March change (2026-03-08, 02:00 → 03:00).
        let ny = json!({"days": "sun", "hours": "02:30-04:00", "zone": "America/New_York"});
        // Sat 2026-03-07 23:00 EST: the window opens Sunday at 02:30, which
        // does not exist, so at 03:30 EDT (07:30Z), 3h30m later.
        assert_eq!(
            gate("2026-03-08T04:00:00Z", ny.clone()).unwrap().reason,
            "it is Sat 23:00 in America/New_York, outside the deploy window (sun 02:30-04:00 America/New_York); it next opens Sun 2026-03-08 03:30, in 3h30m"
        );
        assert!(gate("2026-03-08T07:30:00Z", ny).unwrap().is_promote());
    }

    #[test]
    fn a_window_past_midnight_belongs_to_its_first_day() {
        let night = json!({"days": "fri", "hours": "22:00-02:00"});
        assert!(
            !gate("2026-11-27T21:59:00Z", night.clone())
                .unwrap()
                .is_promote()
        ); // Fri
        assert!(
            gate("2026-11-27T22:00:00Z", night.clone())
                .unwrap()
                .is_promote()
        );
        assert!(
            gate("2026-11-28T01:59:00Z", night.clone())
                .unwrap()
                .is_promote()
        ); // Sat
        assert!(
            !gate("2026-11-28T02:00:00Z", night.clone())
                .unwrap()
                .is_promote()
        );
        // Thursday night is not Friday's window.
        assert_eq!(
            gate("2026-11-27T01:00:00Z", night).unwrap().reason,
            "it is Fri 01:00 in UTC, outside the deploy window (fri 22:00-02:00 UTC); it next opens Fri 2026-11-27 22:00, in 21h"
        );
    }

    #[test]
    fn whole_days_and_day_lists() {
        let all = json!({"days": ["Sat", "sunday"], "hours": "00:00-24:00"});
        assert!(
            gate("2026-11-28T00:00:00Z", all.clone())
                .unwrap()
                .is_promote()
        );
        assert!(
            gate("2026-11-29T23:59:59Z", all.clone())
                .unwrap()
                .is_promote()
        );
        assert!(!gate("2026-11-30T00:00:00Z", all).unwrap().is_promote());
        let mut days = [false; 7];
        assert_eq!(describe_days(&[true; 7]), "every day");
        days[0] = true;
        days[2] = true;
        days[3] = true;
        days[5] = true;
        days[6] = true;
        assert_eq!(describe_days(&days), "mon, wed, thu, sat, sun");
        assert_eq!(
            describe_days(&[true, true, true, false, true, true, true]),
            "mon-wed, fri-sun"
        );
    }

    #[test]
    fn filter_allows_inside_and_denies_outside() {
        let mut input = FilterInput {
            context: ctx("2026-11-23T09:30:00Z", office()),
            candidates: vec![Candidate::new("1.1.0"), Candidate::new("1.0.1")],
            ..FilterInput::default()
        };
        assert!(filter(&input).unwrap().iter().all(Verdict::is_allow));
        input.context.now = Time::parse("2026-11-22T09:30:00Z").unwrap(); // Sunday
        let v = filter(&input).unwrap();
        assert!(v.iter().all(|v| !v.is_allow()));
        assert_eq!(
            v[0].reason.as_deref(),
            Some(
                "it is Sun 10:30 in Europe/Berlin, outside the deploy window (mon-fri 09:00-17:00 Europe/Berlin); it next opens Mon 2026-11-23 09:00, in 22h30m"
            )
        );
    }

    #[test]
    fn bad_params() {
        for (params, want) in [
            (
                json!({"hours": "09:00-17:00"}),
                "bad params: missing field `days`",
            ),
            (json!({"days": "mon"}), "bad params: missing field `hours`"),
            (
                json!({"days": [], "hours": "09:00-17:00"}),
                "bad params: `days` is empty",
            ),
            (
                json!({"days": "mo", "hours": "09:00-17:00"}),
                "bad params: `mo` is not a weekday",
            ),
            (
                json!({"days": "mon", "hours": "9-17"}),
                "bad params: `hours` is `9-17`; write it as `HH:MM-HH:MM`",
            ),
            (
                json!({"days": "mon", "hours": "09:00-24:01"}),
                "bad params: `hours` is `09:00-24:01`",
            ),
            (
                json!({"days": "mon", "hours": "24:00-02:00"}),
                "bad params: `hours` is `24:00-02:00`",
            ),
            (
                json!({"days": "mon", "hours": "09:60-10:00"}),
                "bad params: `hours` is `09:60-10:00`",
            ),
            (
                json!({"days": "mon", "hours": "09:00-09:00"}),
                "bad params: `hours` `09:00-09:00` starts and ends at the same time",
            ),
            (
                json!({"days": "mon", "hours": "09:00-17:00", "zone": "Europe/Berlni"}),
                "bad params: `Europe/Berlni` is not a time zone",
            ),
            (
                json!({"days": "mon", "hours": "09:00-17:00", "tz": "UTC"}),
                "bad params: unknown field `tz`",
            ),
        ] {
            let e = gate("2026-11-23T09:30:00Z", params.clone()).unwrap_err();
            assert!(e.message().starts_with(want), "{params}: {e}");
        }
    }

    /// A policy has no clock: `now` comes in the input. The source must not
    /// ask jiff or std for the time or the machine's zone.
    #[test]
    fn never_reads_a_clock() {
        let source = include_str!("lib.rs");
        let code = &source[..source.find("#[cfg(test)]").unwrap()];
        for call in [
            "::now(",
            "TimeZone::system",
            "SystemTime",
            "Instant",
            "tz::db().reset",
        ] {
            let lines: Vec<&str> = code
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .filter(|l| l.contains(call))
                .collect();
            assert!(lines.is_empty(), "{call}: {lines:?}");
        }
    }
}
