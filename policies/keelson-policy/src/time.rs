//! Times as the ABI writes them: RFC 3339 in UTC, whole seconds.
//!
//! [`Time`] is a count of seconds since 1970-01-01T00:00:00Z, so comparing
//! and adding are plain integer operations. It parses any RFC 3339 time
//! (`2026-11-23T09:30:00Z`, fractional seconds, `+00:00` or another offset,
//! which is converted to UTC) and prints `YYYY-MM-DDTHH:MM:SSZ`. Time zones
//! other than UTC are out of scope: a policy that needs them brings its own
//! database (the standard `deploy-window` uses `jiff`).

use std::fmt;
use std::ops::{Add, Sub};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// A point in time, in whole seconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(i64);

/// A calendar date (proleptic Gregorian), such as `2026-11-23`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

/// A day of the week, Monday first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// Earliest and latest times [`Time::parse`] accepts: years 0000 to 9999.
const MIN_YEAR: i32 = 0;
const MAX_YEAR: i32 = 9999;

impl Time {
    /// 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Time = Time(0);

    pub const fn from_unix(seconds: i64) -> Time {
        Time(seconds)
    }

    /// Seconds since the Unix epoch.
    pub const fn unix(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 time: `YYYY-MM-DDTHH:MM:SS`, optional fractional
    /// seconds (dropped), then `Z` or an offset `±HH:MM`. `t`, `z` and a
    /// space for `T` are accepted too.
    pub fn parse(text: &str) -> Result<Time, Error> {
        parse_rfc3339(text).ok_or_else(|| {
            Error::new(format!(
                "`{text}` is not an RFC 3339 time such as `2026-11-23T09:30:00Z`"
            ))
        })
    }

    /// A UTC time from its calendar fields, when they are valid.
    pub fn from_civil(date: Date, hour: u8, minute: u8, second: u8) -> Option<Time> {
        if !date.is_valid() || hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let days = days_from_civil(date.year, date.month, date.day);
        Some(Time(
            days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second),
        ))
    }

    /// The UTC date.
    pub fn date(self) -> Date {
        let (year, month, day) = civil_from_days(self.0.div_euclid(86_400));
        Date { year, month, day }
    }

    /// Hour, minute and second of the UTC day.
    pub fn hms(self) -> (u8, u8, u8) {
        let s = self.0.rem_euclid(86_400);
        ((s / 3600) as u8, (s / 60 % 60) as u8, (s % 60) as u8)
    }

    /// The UTC weekday.
    pub fn weekday(self) -> Weekday {
        self.date().weekday()
    }

    /// Midnight UTC of this time's date.
    pub fn start_of_day(self) -> Time {
        Time(self.0 - self.0.rem_euclid(86_400))
    }

    /// `self + seconds` (saturating).
    pub fn plus_seconds(self, seconds: i64) -> Time {
        Time(self.0.saturating_add(seconds))
    }

    /// `self − earlier`, in seconds (negative if `earlier` is later).
    pub fn seconds_since(self, earlier: Time) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<std::time::Duration> for Time {
    type Output = Time;
    /// Adds whole seconds (sub-second parts are dropped).
    fn add(self, d: std::time::Duration) -> Time {
        self.plus_seconds(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

impl Sub<std::time::Duration> for Time {
    type Output = Time;
    /// Subtracts whole seconds (sub-second parts are dropped).
    fn sub(self, d: std::time::Duration) -> Time {
        self.plus_seconds(-i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

impl fmt::Display for Time {
    /// `YYYY-MM-DDTHH:MM:SSZ`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, m, s) = self.hms();
        write!(f, "{}T{h:02}:{m:02}:{s:02}Z", self.date())
    }
}

impl std::str::FromStr for Time {
    type Err = Error;
    fn from_str(s: &str) -> Result<Time, Error> {
        Time::parse(s)
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Time::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Date {
    /// `YYYY-MM-DD`, when it is a real date.
    pub fn parse(text: &str) -> Result<Date, Error> {
        let b = text.as_bytes();
        let date = (b.len() == 10 && b[4] == b'-' && b[7] == b'-')
            .then(|| {
                Some(Date {
                    year: digits(&b[0..4])? as i32,
                    month: digits(&b[5..7])? as u8,
                    day: digits(&b[8..10])? as u8,
                })
            })
            .flatten()
            .filter(Date::is_valid);
        date.ok_or_else(|| Error::new(format!("`{text}` is not a date such as `2026-12-24`")))
    }

    pub fn new(year: i32, month: u8, day: u8) -> Option<Date> {
        Some(Date { year, month, day }).filter(Date::is_valid)
    }

    fn is_valid(&self) -> bool {
        (MIN_YEAR..=MAX_YEAR).contains(&self.year)
            && (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
    }

    /// Midnight UTC at the start of the date.
    pub fn start(self) -> Time {
        Time(days_from_civil(self.year, self.month, self.day) * 86_400)
    }

    pub fn weekday(self) -> Weekday {
        // 1970-01-01 was a Thursday.
        let days = days_from_civil(self.year, self.month, self.day);
        Weekday::from_monday_index((days + 3).rem_euclid(7) as u8)
    }

    /// The date `n` days later (earlier when negative).
    pub fn plus_days(self, n: i64) -> Date {
        self.start().plus_seconds(n * 86_400).date()
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl Weekday {
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// 0 for Monday … 6 for Sunday.
    pub fn monday_index(self) -> u8 {
        self as u8
    }

    /// The weekday of `index` modulo 7, Monday being 0.
    pub fn from_monday_index(index: u8) -> Weekday {
        Weekday::ALL[usize::from(index % 7)]
    }

    /// `mon` … `sun`, also full names, any case.
    pub fn parse(text: &str) -> Result<Weekday, Error> {
        let lower = text.to_ascii_lowercase();
        Weekday::ALL
            .into_iter()
            .find(|d| lower == d.short() || lower == d.long())
            .ok_or_else(|| {
                Error::new(format!(
                    "`{text}` is not a weekday: use mon, tue, wed, thu, fri, sat or sun"
                ))
            })
    }

    /// `mon` … `sun`.
    pub fn short(self) -> &'static str {
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][self as usize]
    }

    fn long(self) -> &'static str {
        [
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
        ][self as usize]
    }
}

impl fmt::Display for Weekday {
    /// `Mon` … `Sun`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][*self as usize])
    }
}

/// A span of seconds for people: `45s`, `10m`, `3h10m`, `48h`, and from 72
/// hours on `4d3h`. Rounds down to the unit it prints; negative spans get
/// a `-`.
pub fn format_duration(seconds: i64) -> String {
    if seconds < 0 {
        return format!("-{}", format_duration(seconds.saturating_neg()));
    }
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
    );
    match () {
        _ if seconds < 60 => format!("{s}s"),
        _ if h == 0 => format!("{m}m"),
        _ if h < 72 && m == 0 => format!("{h}h"),
        _ if h < 72 => format!("{h}h{m}m"),
        _ if h % 24 == 0 => format!("{d}d"),
        _ => format!("{d}d{}h", h % 24),
    }
}

/// Rounds a span of seconds up to whole minutes: "how long to go" reads
/// better rounded up (`20h50m to go` rather than `20h49m` with 30s left).
pub fn ceil_minutes(seconds: i64) -> i64 {
    if seconds <= 0 {
        seconds
    } else {
        seconds.div_euclid(60) * 60 + if seconds % 60 == 0 { 0 } else { 60 }
    }
}

fn parse_rfc3339(text: &str) -> Option<Time> {
    let b = text.as_bytes();
    if b.len() < 20 || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let date = Date::parse(&text[..10]).ok()?;
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hour, minute, second) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    let mut rest = &b[19..];
    if let [b'.', tail @ ..] = rest {
        let n = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = &tail[n..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let offset = i64::from(h * 3600 + m * 60);
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return None,
    };
    let local = Time::from_civil(date, hour as u8, minute as u8, second as u8)?;
    Some(local.plus_seconds(-offset))
}

/// ASCII digits as a number.
fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |n, c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

fn is_leap(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `days` after 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as i32, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time {
        Time::parse(s).unwrap()
    }

    #[test]
    fn parses_and_prints_the_abi_format() {
        assert_eq!(t("1970-01-01T00:00:00Z").unix(), 0);
        assert_eq!(t("2026-11-23T09:30:00Z").unix(), 1_795_426_200);
        assert_eq!(
            t("2026-11-23T09:30:00Z").to_string(),
            "2026-11-23T09:30:00Z"
        );
        assert_eq!(Time::from_unix(-1).to_string(), "1969-12-31T23:59:59Z");
        assert_eq!(
            t("2000-02-29T23:59:59Z").to_string(),
            "2000-02-29T23:59:59Z"
        );
        assert_eq!(
            t("9999-12-31T23:59:59Z").to_string(),
            "9999-12-31T23:59:59Z"
        );
        assert_eq!(
            t("0000-01-01T00:00:00Z").to_string(),
            "0000-01-01T00:00:00Z"
        );
    }

    #[test]
    fn accepts_fractions_offsets_and_lowercase() {
        let want = t("2026-11-23T09:30:00Z");
        assert_eq!(t("2026-11-23T09:30:00.999999Z"), want);
        assert_eq!(t("2026-11-23T09:30:00+00:00"), want);
        assert_eq!(t("2026-11-23T09:30:00-00:00"), want);
        assert_eq!(t("2026-11-23T10:30:00+01:00"), want);
        assert_eq!(t("2026-11-23T04:00:00-05:30"), want);
        assert_eq!(t("2026-11-23t09:30:00z"), want);
        assert_eq!(t("2026-11-23 09:30:00.5+00:00"), want);
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for bad in [
            "",
            "2026-11-23",
            "2026-11-23T09:30Z",
            "2026-11-23T09:30:00",
            "2026-11-23T09:30:00.Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T09:60:00Z",
            "2026-11-23T09:30:60Z",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2026-11-23T09:30:00+0100",
            "2026-11-23T09:30:00+24:00",
            "2026-11-23X09:30:00Z",
            "２026-11-23T09:30:00Z",
            "+2026-11-23T09:30:00Z",
            "2026-11-23T09:30:00ZZ",
        ] {
            let e = Time::parse(bad).unwrap_err();
            assert!(
                e.message().contains("is not an RFC 3339 time"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn round_trips_every_day_for_centuries() {
        let mut day = Date::new(1600, 1, 1).unwrap().start();
        let end = Date::new(2400, 12, 31).unwrap().start();
        let mut weekday = day.weekday();
        while day <= end {
            let d = day.date();
            assert_eq!(d.start(), day);
            assert_eq!(Date::parse(&d.to_string()).unwrap(), d);
            assert_eq!(day.weekday(), weekday);
            weekday = Weekday::from_monday_index(weekday.monday_index() + 1);
            day = day.plus_seconds(86_400);
        }
    }

    #[test]
    fn calendar_fields() {
        let x = t("2026-11-23T09:30:05Z");
        assert_eq!(x.date(), Date::new(2026, 11, 23).unwrap());
        assert_eq!(x.hms(), (9, 30, 5));
        assert_eq!(x.weekday(), Weekday::Mon);
        assert_eq!(t("1970-01-01T00:00:00Z").weekday(), Weekday::Thu);
        assert_eq!(x.start_of_day(), t("2026-11-23T00:00:00Z"));
        assert_eq!(
            Time::from_civil(Date::new(2026, 11, 23).unwrap(), 9, 30, 5),
            Some(x)
        );
        assert_eq!(
            Time::from_civil(Date::new(2026, 11, 23).unwrap(), 24, 0, 0),
            None
        );
        assert_eq!(Date::new(2026, 2, 29), None);
        assert_eq!(
            Date::new(2028, 2, 29).unwrap().plus_days(1),
            Date::new(2028, 3, 1).unwrap()
        );
        assert_eq!(
            Date::new(2027, 1, 1).unwrap().plus_days(-1),
            Date::new(2026, 12, 31).unwrap()
        );
    }

    #[test]
    fn arithmetic_and_order() {
        let a = t("2026-11-22T09:00:00Z");
        let b = t("2026-11-23T09:30:00Z");
        assert!(a < b);
        assert_eq!(b.seconds_since(a), 88_200);
        assert_eq!(a.seconds_since(b), -88_200);
        assert_eq!(a + std::time::Duration::from_secs(88_200), b);
        assert_eq!(b - std::time::Duration::from_secs(88_200), a);
        assert_eq!(a.plus_seconds(-86_400), t("2026-11-21T09:00:00Z"));
        assert_eq!(Time::from_unix(i64::MAX).plus_seconds(1).unix(), i64::MAX);
    }

    #[test]
    fn weekdays() {
        assert_eq!(Weekday::parse("mon").unwrap(), Weekday::Mon);
        assert_eq!(Weekday::parse("Sunday").unwrap(), Weekday::Sun);
        assert_eq!(Weekday::parse("FRI").unwrap(), Weekday::Fri);
        assert!(
            Weekday::parse("mo")
                .unwrap_err()
                .message()
                .contains("not a weekday")
        );
        assert_eq!(Weekday::Wed.to_string(), "Wed");
        assert_eq!(Weekday::Wed.short(), "wed");
        assert_eq!(Weekday::from_monday_index(13), Weekday::Sun);
    }

    #[test]
    fn dates() {
        assert_eq!(Date::parse("2026-12-24").unwrap().to_string(), "2026-12-24");
        for bad in [
            "2026-12-32",
            "2026-1-01",
            "26-12-24",
            "2026/12/24",
            "2026-12-24T",
        ] {
            assert!(Date::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(45), "45s");
        assert_eq!(format_duration(60), "1m");
        assert_eq!(format_duration(599), "9m");
        assert_eq!(format_duration(3 * 3600 + 10 * 60 + 59), "3h10m");
        assert_eq!(format_duration(88_200), "24h30m");
        assert_eq!(format_duration(48 * 3600), "48h");
        assert_eq!(format_duration(72 * 3600), "3d");
        assert_eq!(format_duration(99 * 3600 + 1800), "4d3h");
        assert_eq!(format_duration(-90), "-1m");
        assert_eq!(ceil_minutes(75_030), 75_060);
        assert_eq!(ceil_minutes(75_000), 75_000);
        assert_eq!(ceil_minutes(-5), -5);
    }

    #[test]
    fn serde_uses_the_string_form() {
        let x: Time = serde_json::from_str(r#""2026-11-23T09:30:00+00:00""#).unwrap();
        assert_eq!(
            serde_json::to_string(&x).unwrap(),
            r#""2026-11-23T09:30:00Z""#
        );
        let e = serde_json::from_str::<Time>(r#""yesterday""#).unwrap_err();
        assert!(e.to_string().contains("not an RFC 3339 time"), "{e}");
        assert!(serde_json::from_str::<Time>("12").is_err());
    }
}
