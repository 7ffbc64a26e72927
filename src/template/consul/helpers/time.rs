//! Go's `time.Time.Format` for a UTC time: Go spells a layout with a reference time
//! (`Mon Jan 2 15:04:05 MST 2006`), each element of which stands for that element of the time
//! being formatted; anything else is copied.

/// Go's `time.RFC3339`.
pub(crate) const RFC3339: &str = "2006-01-02T15:04:05Z07:00";

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A UTC time broken into its parts.
struct Civil {
    year: i64,
    month: usize,
    day: i64,
    year_day: i64,
    weekday: usize,
    hour: i64,
    minute: i64,
    second: i64,
    nanos: u32,
}

fn civil(seconds: i64, nanos: u32) -> Civil {
    let days = seconds.div_euclid(86_400);
    let rem = seconds.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    const BEFORE: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let month_index = usize::try_from(month - 1).unwrap_or(0);
    let year_day = BEFORE[month_index] + day + i64::from(leap && month > 2);
    Civil {
        year,
        month: month_index,
        day,
        year_day,
        weekday: usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0),
        hour: rem / 3600,
        minute: rem % 3600 / 60,
        second: rem % 60,
        nanos,
    }
}

/// Formats the UTC time `seconds`.`nanos` after the Unix epoch with Go's `layout`.
pub(crate) fn format(layout: &str, seconds: i64, nanos: u32) -> String {
    let t = civil(seconds, nanos);
    let mut out = String::new();
    let mut rest = layout;
    while !rest.is_empty() {
        let (consumed, text) = element(rest, &t);
        match text {
            Some(text) => out.push_str(&text),
            None => out.push_str(&rest[..consumed]),
        }
        rest = &rest[consumed..];
    }
    out
}

/// The element at the start of `s`: how many bytes it takes, and its text (`None` to copy them).
fn element(s: &str, t: &Civil) -> (usize, Option<String>) {
    const TOKENS: &[&str] = &[
        "January",
        "Jan",
        "Monday",
        "Mon",
        "MST",
        "2006",
        "002",
        "01",
        "02",
        "03",
        "04",
        "05",
        "06",
        "__2",
        "_2",
        "15",
        "1",
        "2",
        "3",
        "4",
        "5",
        "PM",
        "pm",
        "-07:00:00",
        "-070000",
        "-07:00",
        "-0700",
        "-07",
        "Z07:00:00",
        "Z070000",
        "Z07:00",
        "Z0700",
        "Z07",
    ];
    let hour12 = if t.hour % 12 == 0 { 12 } else { t.hour % 12 };
    for token in TOKENS {
        if !s.starts_with(token) {
            continue;
        }
        let after = &s[token.len()..];
        // Go reads "Jan"/"Mon" only when no lower-case letter follows ("Janet" is text), and
        // "_2006" as "_" and the year.
        if matches!(*token, "Jan" | "Mon") && after.starts_with(|c: char| c.is_ascii_lowercase())
            || *token == "_2" && after.starts_with("006")
        {
            continue;
        }
        let text = match *token {
            "January" => MONTHS[t.month].to_owned(),
            "Jan" => MONTHS[t.month][..3].to_owned(),
            "Monday" => DAYS[t.weekday].to_owned(),
            "Mon" => DAYS[t.weekday][..3].to_owned(),
            "MST" => "UTC".to_owned(),
            "2006" => format!("{:04}", t.year),
            "002" => format!("{:03}", t.year_day),
            "01" => format!("{:02}", t.month + 1),
            "02" => format!("{:02}", t.day),
            "03" => format!("{hour12:02}"),
            "04" => format!("{:02}", t.minute),
            "05" => format!("{:02}", t.second),
            "06" => format!("{:02}", t.year.rem_euclid(100)),
            "__2" => format!("{:>3}", t.year_day),
            "_2" => format!("{:>2}", t.day),
            "15" => format!("{:02}", t.hour),
            "1" => (t.month + 1).to_string(),
            "2" => t.day.to_string(),
            "3" => hour12.to_string(),
            "4" => t.minute.to_string(),
            "5" => t.second.to_string(),
            "PM" => if t.hour >= 12 { "PM" } else { "AM" }.to_owned(),
            "pm" => if t.hour >= 12 { "pm" } else { "am" }.to_owned(),
            "-07:00:00" => "+00:00:00".to_owned(),
            "-070000" => "+000000".to_owned(),
            "-07:00" => "+00:00".to_owned(),
            "-0700" => "+0000".to_owned(),
            "-07" => "+00".to_owned(),
            _ => "Z".to_owned(),
        };
        return (token.len(), Some(text));
    }
    // Fractional seconds: "." or "," then a run of 0s or 9s, not followed by a digit, after
    // which Go keeps the separator.
    if let Some(sep) = s.chars().next().filter(|c| matches!(c, '.' | ','))
        && let Some(digit) = s[1..].chars().next().filter(|c| matches!(c, '0' | '9'))
    {
        let run = s[1..].chars().take_while(|c| *c == digit).count();
        if !s[1 + run..].starts_with(|c: char| c.is_ascii_digit()) {
            let digits = format!("{:09}", t.nanos);
            let mut fraction = digits[..run.min(9)].to_owned();
            if digit == '9' {
                fraction = fraction.trim_end_matches('0').to_owned();
                if fraction.is_empty() {
                    return (1 + run, Some(String::new()));
                }
            }
            return (1 + run, Some(format!("{sep}{fraction}")));
        }
    }
    let width = s.chars().next().map_or(1, char::len_utf8);
    (width, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_format_as_go_formats_them() {
        // 2024-02-29T13:04:05.120Z, a Thursday, day 60.
        let (s, n) = (1_709_211_845, 120_000_000);
        assert_eq!(format(RFC3339, s, n), "2024-02-29T13:04:05Z");
        assert_eq!(
            format("Mon Jan _2 15:04:05 MST 2006", s, n),
            "Thu Feb 29 13:04:05 UTC 2024"
        );
        assert_eq!(
            format("Monday, 02-January-06 03:4:5 PM -0700 002 .000 .999", s, n),
            "Thursday, 29-February-24 01:4:5 PM +0000 060 .120 .12"
        );
        assert_eq!(format("Janet 20060102 _2006", s, n), "Janet 20240229 _2024");
        assert_eq!(format(RFC3339, 0, 0), "1970-01-01T00:00:00Z");
    }
}
