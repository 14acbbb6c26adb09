//! Event time: milliseconds since the Unix epoch (UTC), RFC 3339 timestamps (and plain
//! dates) parsed and formatted, and calendar-month arithmetic — without a calendar library.

/// An event time: milliseconds since the Unix epoch, UTC.
pub type EventTime = i64;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// The earliest instant a four-digit RFC 3339 year can write in UTC (0001-01-01T00:00:00Z),
/// which PostgreSQL's `timestamptz` also holds (year 0 is 1 BC there).
pub const EARLIEST_RFC3339: EventTime = -62_135_596_800_000;
/// The latest such instant (9999-12-31T23:59:59.999Z).
pub const LATEST_RFC3339: EventTime = 253_402_300_799_999;

/// Milliseconds since the Unix epoch of `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`,
/// or `None` when the text is not such a timestamp or names an instant outside
/// [`EARLIEST_RFC3339`]..=[`LATEST_RFC3339`] (e.g. `9999-12-31T23:59:59-08:00`, which is in year
/// 10000 in UTC): every time it returns, [`format_rfc3339`] writes back.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    parse_any_year(text).filter(|time| (EARLIEST_RFC3339..=LATEST_RFC3339).contains(time))
}

fn parse_any_year(text: &str) -> Option<i64> {
    let text = text.trim();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.chars().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    if text.get(4..5)? != "-" || text.get(7..8)? != "-" || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut millis = days_from_civil(year, month, day) * DAY_MS;
    if text.len() == 10 {
        return Some(millis);
    }
    if !matches!(text.get(10..11)?, "T" | "t" | " ") || text.get(13..14)? != ":" || text.get(16..17)? != ":" {
        return None;
    }
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    millis += ((hour * 60 + minute) * 60 + second) * 1000;
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis += padded.parse::<i64>().ok()?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.get(3..4)? == ":" => {
            let sign = match rest.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            sign * (hours * 60 + minutes)
        }
        _ => return None,
    };
    Some(millis - offset_minutes * 60_000)
}

/// Formats milliseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_rfc3339(millis: i64) -> String {
    let days = millis.div_euclid(DAY_MS);
    let in_day = millis.rem_euclid(DAY_MS);
    let (year, month, day) = civil_from_days(days);
    let seconds = in_day / 1000;
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z", seconds / 3600, seconds / 60 % 60, seconds % 60, in_day % 1000)
}

/// The start of the calendar month (UTC) that `time` falls in.
pub fn month_start(time: EventTime) -> EventTime {
    let (year, month, _) = civil_from_days(time.div_euclid(DAY_MS));
    days_from_civil(year, month, 1) * DAY_MS
}

/// `time` moved by `months` calendar months, keeping the day of the month where it exists
/// (`time` is expected to be a month start, as [`month_start`] gives).
pub fn add_months(time: EventTime, months: i64) -> EventTime {
    let days = time.div_euclid(DAY_MS);
    let in_day = time.rem_euclid(DAY_MS);
    let (year, month, day) = civil_from_days(days);
    let index = year * 12 + (month - 1) + months;
    let (year, month) = (index.div_euclid(12), index.rem_euclid(12) + 1);
    days_from_civil(year, month, day.min(days_in_month(year, month))) * DAY_MS + in_day
}

/// Months since January 1970 of the month that `time` falls in (negative before).
pub fn month_index(time: EventTime) -> i64 {
    let (year, month, _) = civil_from_days(time.div_euclid(DAY_MS));
    (year - 1970) * 12 + month - 1
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(parse_rfc3339("1970-01-01"), Some(0));
        assert_eq!(parse_rfc3339("2024-03-01T12:00:00Z"), Some(1_709_294_400_000));
        assert_eq!(parse_rfc3339("2024-03-01T13:00:00.5+01:00"), Some(1_709_294_400_500));
        assert_eq!(parse_rfc3339("2000-02-29"), Some(951_782_400_000));
    }

    #[test]
    fn formatting_round_trips() {
        for millis in [0, 951_782_400_000, 1_709_294_400_500, -86_400_000, EARLIEST_RFC3339, LATEST_RFC3339] {
            assert_eq!(parse_rfc3339(&format_rfc3339(millis)), Some(millis));
        }
    }

    #[test]
    fn calendar_months() {
        let march = parse_rfc3339("2024-03-01").unwrap();
        assert_eq!(month_start(parse_rfc3339("2024-03-31T23:59:59Z").unwrap()), march);
        assert_eq!(add_months(march, -1), parse_rfc3339("2024-02-01").unwrap());
        assert_eq!(add_months(march, 10), parse_rfc3339("2025-01-01").unwrap());
        assert_eq!(month_start(-1), parse_rfc3339("1969-12-01").unwrap());
        assert_eq!(month_index(march), 54 * 12 + 2);
        assert_eq!(month_index(-1), -1);
    }

    #[test]
    fn rejects_what_is_not_a_timestamp() {
        for text in [
            "yesterday",
            "2023-02-29",
            "2024-13-01",
            "2024-03-01T25:00:00Z",
            "2024-03-01T12:00:00",
            "2024-3-1",
            "2024-03-01T12:00:00+24:00",
            "2024-03-01T12:00:00-01:60",
            "0000-06-15T00:00:00Z",
            "9999-12-31T23:59:59.999-08:00",
            "0001-01-01T00:00:00+00:01",
        ] {
            assert_eq!(parse_rfc3339(text), None, "{text}");
        }
    }
}
