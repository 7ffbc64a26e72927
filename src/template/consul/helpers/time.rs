//! Go's `time` package as Sprig's date functions use it: a `time.Time` with its location,
//! `Format` and `Parse` with Go's layouts, and `Duration`'s parsing and printing. Go spells a
//! layout with a reference time (`Mon Jan 2 15:04:05 MST 2006`), each element of which stands
//! for that element of the time being formatted; anything else is copied.
//!
//! Locations come from the system's time zone database (as Go's `time.LoadLocation` reads it)
//! through `jiff`; `Local` is the agent's own zone (`TZ`, else `/etc/localtime`, else UTC).

use std::sync::LazyLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// A Go `time.Time`: an instant, the location it is shown in, and for a time from `now` the
/// monotonic clock's reading that Go prints as `m=+0.001`.
#[derive(Clone, Debug)]
pub(crate) struct GoTime {
    /// Seconds since the Unix epoch.
    pub(crate) seconds: i64,
    /// Nanoseconds within the second.
    pub(crate) nanos: u32,
    /// Where the time is shown.
    pub(crate) zone: Zone,
    /// Nanoseconds since the agent's clock started (see [`start_clock`]).
    pub(crate) mono: Option<i64>,
}

/// A Go `*time.Location`.
#[derive(Clone, Debug)]
pub(crate) enum Zone {
    /// `time.UTC`.
    Utc,
    /// The agent's own zone.
    Local,
    /// A zone of the database, by name.
    Named(TimeZone),
    /// `time.FixedZone(name, offset)`: what `Parse` makes of an offset the local zone does not
    /// have.
    Fixed(String, i32),
}

/// When the agent's monotonic clock starts; Go's starts with the process.
static START: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Starts the monotonic clock that `now` reads (the first call starts it).
pub(crate) fn start_clock() {
    LazyLock::force(&START);
}

/// Go's zero `time.Time` (`0001-01-01 00:00:00 +0000 UTC`).
pub(crate) const ZERO_SECONDS: i64 = -62_135_596_800;

impl GoTime {
    /// `time.Now()`: in the local zone, with a monotonic reading.
    pub(crate) fn now() -> GoTime {
        let mono = i64::try_from(START.elapsed().as_nanos()).unwrap_or(i64::MAX);
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        GoTime {
            seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            nanos: since.subsec_nanos(),
            zone: Zone::Local,
            mono: Some(mono),
        }
    }

    /// `time.Unix(seconds, 0)`, in the local zone.
    pub(crate) fn unix(seconds: i64) -> GoTime {
        GoTime {
            seconds,
            nanos: 0,
            zone: Zone::Local,
            mono: None,
        }
    }

    /// Go's zero time.
    pub(crate) fn zero() -> GoTime {
        GoTime {
            seconds: ZERO_SECONDS,
            nanos: 0,
            zone: Zone::Utc,
            mono: None,
        }
    }

    /// `t.In(zone)`: the same instant shown elsewhere, without its monotonic reading.
    pub(crate) fn in_zone(&self, zone: Zone) -> GoTime {
        GoTime {
            zone,
            mono: None,
            ..self.clone()
        }
    }

    /// `t.Add(nanos)`.
    pub(crate) fn add(&self, nanos: i64) -> GoTime {
        let total = i128::from(self.nanos) + i128::from(nanos);
        let seconds = self
            .seconds
            .saturating_add(i64::try_from(total.div_euclid(1_000_000_000)).unwrap_or(0));
        GoTime {
            seconds,
            nanos: u32::try_from(total.rem_euclid(1_000_000_000)).unwrap_or(0),
            zone: self.zone.clone(),
            mono: self.mono.map(|m| m.saturating_add(nanos)),
        }
    }

    /// `time.Since(t)` in nanoseconds: by the monotonic clock when `t` has a reading.
    pub(crate) fn since(&self) -> i64 {
        let now = GoTime::now();
        if let (Some(then), Some(now)) = (self.mono, now.mono) {
            return now.saturating_sub(then);
        }
        let nanos = |t: &GoTime| i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
        i64::try_from(nanos(&now) - nanos(self)).unwrap_or(i64::MAX)
    }

    /// `t.Format(layout)`.
    pub(crate) fn format(&self, layout: &str) -> String {
        let (offset, name) = self.zone.lookup(self.seconds);
        format_in(layout, self.seconds, self.nanos, offset, &name)
    }

    /// `t.String()`: `2006-01-02 15:04:05.999999999 -0700 MST`, then `m=+0.001` for a time
    /// with a monotonic reading.
    pub(crate) fn go_string(&self) -> String {
        let mut out = self.format("2006-01-02 15:04:05.999999999 -0700 MST");
        if let Some(mono) = self.mono {
            let sign = if mono < 0 { '-' } else { '+' };
            let abs = mono.unsigned_abs();
            out.push_str(&format!(
                " m={sign}{}.{:09}",
                abs / 1_000_000_000,
                abs % 1_000_000_000
            ));
        }
        out
    }
}

impl Zone {
    /// Go's `time.LoadLocation(name)`, or UTC where Go fails (as Sprig then takes UTC).
    pub(crate) fn load(name: &str) -> Zone {
        match name {
            "" | "UTC" => return Zone::Utc,
            "Local" => return Zone::Local,
            _ => {}
        }
        if name.contains("..") || name.starts_with(['/', '\\']) {
            return Zone::Utc;
        }
        // The database's names are case-sensitive files for Go; jiff's lookup is not.
        match TimeZone::get(name) {
            Ok(tz) if tz.iana_name() == Some(name) => Zone::Named(tz),
            _ => Zone::Utc,
        }
    }

    /// The offset (seconds east of UTC) and the abbreviation in effect at `seconds`.
    pub(crate) fn lookup(&self, seconds: i64) -> (i32, String) {
        let info = |tz: &TimeZone| match Timestamp::from_second(seconds) {
            Ok(ts) => {
                let info = tz.to_offset_info(ts);
                (info.offset().seconds(), info.abbreviation().to_owned())
            }
            Err(_) => (0, "UTC".to_owned()),
        };
        match self {
            Zone::Utc => (0, "UTC".to_owned()),
            Zone::Local => info(&TimeZone::system()),
            Zone::Named(tz) => info(tz),
            Zone::Fixed(name, offset) => (*offset, name.clone()),
        }
    }

    /// Go's `time.Date` for a wall clock read as `wall` seconds (as if UTC): the instant, with
    /// Go's choice in a gap or an overlap.
    pub(crate) fn instant(&self, wall: i64) -> i64 {
        let (first, _) = self.lookup(wall);
        if first == 0 {
            return wall;
        }
        let (offset, _) = self.lookup(wall - i64::from(first));
        wall - i64::from(offset)
    }
}

/// `time.ParseInLocation(layout, value, Local)`: the time, or why not (never quoting the value).
pub(crate) fn parse_local(layout: &str, value: &str) -> Result<GoTime, &'static str> {
    let parsed = parse(layout, value)?;
    let time = |seconds: i64, zone: Zone| GoTime {
        seconds,
        nanos: parsed.nanos,
        zone,
        mono: None,
    };
    Ok(match parsed.zone {
        ParsedZone::Default => time(Zone::Local.instant(parsed.wall), Zone::Local),
        ParsedZone::Utc => time(parsed.wall, Zone::Utc),
        ParsedZone::Offset(offset, name) => {
            let seconds = parsed.wall - i64::from(offset);
            let (local, local_name) = Zone::Local.lookup(seconds);
            if local == offset && (name.is_empty() || name == local_name) {
                time(seconds, Zone::Local)
            } else {
                time(seconds, Zone::Fixed(name, offset))
            }
        }
        ParsedZone::Name(name) => {
            // Go looks the name up among the local zone's abbreviations.
            let seconds = Zone::Local.instant(parsed.wall);
            if Zone::Local.lookup(seconds).1 == name {
                time(seconds, Zone::Local)
            } else {
                // Go keeps the wall clock as UTC and shows it in a zone of that name.
                let offset = name
                    .strip_prefix("GMT")
                    .and_then(|n| n.parse::<i32>().ok())
                    .map_or(0, |hours| hours * 3600);
                time(parsed.wall, Zone::Fixed(name, offset))
            }
        }
    })
}

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
    format_in(layout, seconds, nanos, 0, "UTC")
}

/// Formats the time `seconds`.`nanos` after the Unix epoch with Go's `layout`, in a zone `offset`
/// seconds east of UTC whose abbreviation is `zone` (empty for a zone Go knows only by its
/// offset, which `MST` then prints as `-0700` does).
pub(crate) fn format_in(layout: &str, seconds: i64, nanos: u32, offset: i32, zone: &str) -> String {
    let t = civil(seconds.saturating_add(i64::from(offset)), nanos);
    let mut out = String::new();
    let mut rest = layout;
    while !rest.is_empty() {
        match token(rest) {
            Some((std, len)) => {
                out.push_str(&std.format(&t, offset, zone));
                rest = &rest[len..];
            }
            None => {
                let width = rest.chars().next().map_or(1, char::len_utf8);
                out.push_str(&rest[..width]);
                rest = &rest[width..];
            }
        }
    }
    out
}

/// One element of a layout (Go's `std*` constants).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Std {
    LongMonth,
    Month,
    LongWeekDay,
    WeekDay,
    Zone,
    LongYear,
    ZeroYearDay,
    ZeroMonth,
    ZeroDay,
    ZeroHour12,
    ZeroMinute,
    ZeroSecond,
    Year,
    UnderYearDay,
    UnderDay,
    Hour,
    NumMonth,
    Day,
    Hour12,
    Minute,
    Second,
    Pm(bool),
    /// `-07:00:00`, `-070000`, `-07:00`, `-0700`, `-07`; `Z` first when `iso`.
    NumZone {
        iso: bool,
        colons: bool,
        seconds: bool,
        minutes: bool,
    },
    /// `.000` or `.999` (or with a comma): how many digits, and whether trailing zeros go.
    Fraction {
        separator: char,
        digits: usize,
        trim: bool,
    },
}

/// The layout element at the start of `s`, and how many bytes it takes.
fn token(s: &str) -> Option<(Std, usize)> {
    const TOKENS: &[(&str, Std)] = &[
        ("January", Std::LongMonth),
        ("Jan", Std::Month),
        ("Monday", Std::LongWeekDay),
        ("Mon", Std::WeekDay),
        ("MST", Std::Zone),
        ("2006", Std::LongYear),
        ("002", Std::ZeroYearDay),
        ("01", Std::ZeroMonth),
        ("02", Std::ZeroDay),
        ("03", Std::ZeroHour12),
        ("04", Std::ZeroMinute),
        ("05", Std::ZeroSecond),
        ("06", Std::Year),
        ("__2", Std::UnderYearDay),
        ("_2", Std::UnderDay),
        ("15", Std::Hour),
        ("1", Std::NumMonth),
        ("2", Std::Day),
        ("3", Std::Hour12),
        ("4", Std::Minute),
        ("5", Std::Second),
        ("PM", Std::Pm(true)),
        ("pm", Std::Pm(false)),
    ];
    const ZONES: &[(&str, bool, bool, bool)] = &[
        // (suffix after "-" or "Z", colons, seconds, minutes)
        ("07:00:00", true, true, true),
        ("070000", false, true, true),
        ("07:00", true, false, true),
        ("0700", false, false, true),
        ("07", false, false, false),
    ];
    for (text, std) in TOKENS {
        if !s.starts_with(text) {
            continue;
        }
        let after = &s[text.len()..];
        // Go reads "Jan"/"Mon" only when no lower-case letter follows ("Janet" is text), and
        // "_2006" as "_" and the year.
        if matches!(std, Std::Month | Std::WeekDay)
            && after.starts_with(|c: char| c.is_ascii_lowercase())
            || *std == Std::UnderDay && after.starts_with("006")
        {
            continue;
        }
        return Some((*std, text.len()));
    }
    for (first, iso) in [('-', false), ('Z', true)] {
        let Some(rest) = s.strip_prefix(first) else {
            continue;
        };
        for (text, colons, seconds, minutes) in ZONES {
            if rest.starts_with(text) {
                let std = Std::NumZone {
                    iso,
                    colons: *colons,
                    seconds: *seconds,
                    minutes: *minutes,
                };
                return Some((std, 1 + text.len()));
            }
        }
    }
    // Fractional seconds: "." or "," then a run of 0s or 9s, not followed by a digit.
    let separator = s.chars().next().filter(|c| matches!(c, '.' | ','))?;
    let digit = s[1..].chars().next().filter(|c| matches!(c, '0' | '9'))?;
    let run = s[1..].chars().take_while(|c| *c == digit).count();
    if s[1 + run..].starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let std = Std::Fraction {
        separator,
        digits: run.min(9),
        trim: digit == '9',
    };
    Some((std, 1 + run))
}

impl Std {
    fn format(self, t: &Civil, offset: i32, zone: &str) -> String {
        let hour12 = if t.hour % 12 == 0 { 12 } else { t.hour % 12 };
        match self {
            Std::LongMonth => MONTHS[t.month].to_owned(),
            Std::Month => MONTHS[t.month][..3].to_owned(),
            Std::LongWeekDay => DAYS[t.weekday].to_owned(),
            Std::WeekDay => DAYS[t.weekday][..3].to_owned(),
            Std::Zone if !zone.is_empty() => zone.to_owned(),
            Std::Zone => numeric_zone(offset, false, false, true),
            Std::LongYear => format!("{:04}", t.year),
            Std::ZeroYearDay => format!("{:03}", t.year_day),
            Std::ZeroMonth => format!("{:02}", t.month + 1),
            Std::ZeroDay => format!("{:02}", t.day),
            Std::ZeroHour12 => format!("{hour12:02}"),
            Std::ZeroMinute => format!("{:02}", t.minute),
            Std::ZeroSecond => format!("{:02}", t.second),
            Std::Year => format!("{:02}", t.year.rem_euclid(100)),
            Std::UnderYearDay => format!("{:>3}", t.year_day),
            Std::UnderDay => format!("{:>2}", t.day),
            Std::Hour => format!("{:02}", t.hour),
            Std::NumMonth => (t.month + 1).to_string(),
            Std::Day => t.day.to_string(),
            Std::Hour12 => hour12.to_string(),
            Std::Minute => t.minute.to_string(),
            Std::Second => t.second.to_string(),
            Std::Pm(upper) => match (t.hour >= 12, upper) {
                (true, true) => "PM",
                (false, true) => "AM",
                (true, false) => "pm",
                (false, false) => "am",
            }
            .to_owned(),
            Std::NumZone { iso: true, .. } if offset == 0 => "Z".to_owned(),
            Std::NumZone {
                colons,
                seconds,
                minutes,
                ..
            } => numeric_zone(offset, colons, seconds, minutes),
            Std::Fraction {
                separator,
                digits,
                trim,
            } => {
                let all = format!("{:09}", t.nanos);
                let mut fraction = &all[..digits];
                if trim {
                    fraction = fraction.trim_end_matches('0');
                    if fraction.is_empty() {
                        return String::new();
                    }
                }
                format!("{separator}{fraction}")
            }
        }
    }
}

/// An offset as `-07:00:00` and its shorter forms; Go writes the seconds only when not zero
/// (`-07:00:00` asks for them).
fn numeric_zone(offset: i32, colons: bool, seconds: bool, minutes: bool) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let abs = offset.unsigned_abs();
    let (h, m, s) = (abs / 3600, abs / 60 % 60, abs % 60);
    let colon = if colons { ":" } else { "" };
    let mut out = format!("{sign}{h:02}");
    if minutes {
        out.push_str(&format!("{colon}{m:02}"));
    }
    if seconds {
        out.push_str(&format!("{colon}{s:02}"));
    }
    out
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days-from-civil).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in(month: i64, year: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// What Go's `time.Parse` read from a value: the wall clock, and the zone if the value named
/// one.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// Seconds from 1970-01-01T00:00:00 to the wall clock read, as if it were UTC.
    pub(crate) wall: i64,
    /// The fraction of the second read.
    pub(crate) nanos: u32,
    /// The zone read, if any.
    pub(crate) zone: ParsedZone,
}

/// The zone a parsed value gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ParsedZone {
    /// None: the location asked for.
    Default,
    /// `Z` or `UTC`.
    Utc,
    /// A numeric offset (seconds east), and a name if the value also had one.
    Offset(i32, String),
    /// A name only (`MST`): Go finds its offset in the local zone, else takes 0 (or GMT's).
    Name(String),
}

/// Go's `time.Parse` of `value` with `layout`, up to the zone. The error never quotes the
/// value.
pub(crate) fn parse(layout: &str, value: &str) -> Result<Parsed, &'static str> {
    let (mut year, mut month, mut day, mut year_day) = (0_i64, -1_i64, -1_i64, -1_i64);
    let (mut hour, mut minute, mut second, mut nanos) = (0_i64, 0_i64, 0_i64, 0_u32);
    let (mut pm, mut am) = (false, false);
    let (mut offset, mut zone_name, mut utc) = (None::<i32>, String::new(), false);
    let mut layout = layout;
    let mut value = value;
    loop {
        // The literal text up to the next element must match (a space matches any run).
        let mut literal_end = 0;
        let mut next = None;
        while literal_end < layout.len() {
            if let Some(found) = token(&layout[literal_end..]) {
                next = Some(found);
                break;
            }
            literal_end += layout[literal_end..]
                .chars()
                .next()
                .map_or(1, char::len_utf8);
        }
        value = skip(value, &layout[..literal_end])?;
        let Some((std, len)) = next else {
            break;
        };
        layout = &layout[literal_end + len..];
        // Go's `nextStdChunk`: the next element, wherever it is.
        let fraction_next = layout
            .char_indices()
            .find_map(|(i, _)| token(&layout[i..]))
            .is_some_and(|(std, _)| matches!(std, Std::Fraction { .. }));
        match std {
            Std::Year => {
                let (n, rest) = digits(value, 2, 2)?;
                year = if n >= 69 { 1900 + n } else { 2000 + n };
                value = rest;
            }
            Std::LongYear => {
                let (n, rest) = digits(value, 4, 4)?;
                year = n;
                value = rest;
            }
            Std::Month | Std::LongMonth => {
                let (i, rest) = lookup(value, &MONTHS, std == Std::Month)?;
                month = i as i64 + 1;
                value = rest;
            }
            Std::WeekDay | Std::LongWeekDay => {
                let (_, rest) = lookup(value, &DAYS, std == Std::WeekDay)?;
                value = rest;
            }
            Std::NumMonth | Std::ZeroMonth => {
                let (n, rest) = number(value, std == Std::ZeroMonth)?;
                if !(1..=12).contains(&n) {
                    return Err("month out of range");
                }
                month = n;
                value = rest;
            }
            Std::Day | Std::UnderDay | Std::ZeroDay => {
                if std == Std::UnderDay && value.starts_with(' ') {
                    value = &value[1..];
                }
                let (n, rest) = number(value, std == Std::ZeroDay)?;
                day = n;
                value = rest;
            }
            Std::UnderYearDay | Std::ZeroYearDay => {
                let mut v = value;
                if std == Std::UnderYearDay {
                    v = v.trim_start_matches(' ');
                }
                let (n, rest) = digits(v, 1, 3)?;
                if std == Std::ZeroYearDay && v.len() - rest.len() != 3 {
                    return Err("bad day of the year");
                }
                year_day = n;
                value = rest;
            }
            Std::Hour => {
                let (n, rest) = number(value, false)?;
                if !(0..24).contains(&n) {
                    return Err("hour out of range");
                }
                hour = n;
                value = rest;
            }
            Std::Hour12 | Std::ZeroHour12 => {
                let (n, rest) = number(value, std == Std::ZeroHour12)?;
                if !(0..=12).contains(&n) {
                    return Err("hour out of range");
                }
                hour = n;
                value = rest;
            }
            Std::Minute | Std::ZeroMinute | Std::Second | Std::ZeroSecond => {
                let zero = matches!(std, Std::ZeroMinute | Std::ZeroSecond);
                let (n, rest) = number(value, zero)?;
                if !(0..60).contains(&n) {
                    return Err("minute or second out of range");
                }
                value = rest;
                if matches!(std, Std::Minute | Std::ZeroMinute) {
                    minute = n;
                } else {
                    second = n;
                    // A fraction the layout does not spell is read anyway.
                    let mut chars = value.chars();
                    if !fraction_next
                        && matches!(chars.next(), Some('.' | ','))
                        && chars.next().is_some_and(|c| c.is_ascii_digit())
                    {
                        let run = value[1..].bytes().take_while(u8::is_ascii_digit).count();
                        nanos = fraction(&value[1..1 + run])?;
                        value = &value[1 + run..];
                    }
                }
            }
            Std::Pm(upper) => {
                let (p, a) = if upper { ("PM", "AM") } else { ("pm", "am") };
                if let Some(rest) = value.strip_prefix(p) {
                    pm = true;
                    value = rest;
                } else if let Some(rest) = value.strip_prefix(a) {
                    am = true;
                    value = rest;
                } else {
                    return Err("bad AM/PM");
                }
            }
            Std::NumZone {
                iso,
                colons,
                seconds,
                minutes,
            } => {
                if iso && let Some(rest) = value.strip_prefix('Z') {
                    utc = true;
                    value = rest;
                    continue;
                }
                let (seconds_east, rest) = parse_offset(value, colons, seconds, minutes)?;
                offset = Some(seconds_east);
                value = rest;
            }
            Std::Zone => {
                if let Some(rest) = value.strip_prefix("UTC") {
                    utc = true;
                    value = rest;
                    continue;
                }
                let len = zone_name_len(value).ok_or("bad zone name")?;
                zone_name = value[..len].to_owned();
                value = &value[len..];
            }
            Std::Fraction {
                separator, digits, ..
            } => {
                let mut chars = value.chars();
                let starts = chars.next() == Some(separator)
                    && chars.next().is_some_and(|c| c.is_ascii_digit());
                if let Std::Fraction { trim: false, .. } = std {
                    let run = value
                        .get(1..)
                        .map_or(0, |v| v.bytes().take_while(u8::is_ascii_digit).count());
                    if !starts || run < digits {
                        return Err("bad fractional second");
                    }
                    nanos = fraction(&value[1..1 + digits])?;
                    value = &value[1 + digits..];
                } else if starts {
                    let run = value[1..].bytes().take_while(u8::is_ascii_digit).count();
                    nanos = fraction(&value[1..1 + run])?;
                    value = &value[1 + run..];
                }
            }
        }
    }
    if !value.is_empty() {
        return Err("extra text");
    }
    if pm && hour < 12 {
        hour += 12;
    } else if am && hour == 12 {
        hour = 0;
    }
    if year_day >= 0 {
        let leap = i64::from(is_leap(year));
        if year_day < 1 || year_day > 365 + leap {
            return Err("day of the year out of range");
        }
        let (mut m, mut d) = (1, year_day);
        while d > days_in(m, year) {
            d -= days_in(m, year);
            m += 1;
        }
        if (month >= 0 && month != m) || (day >= 0 && day != d) {
            return Err("day of the year does not match the day");
        }
        (month, day) = (m, d);
    } else {
        month = month.max(1);
        if day < 0 {
            day = 1;
        }
    }
    if day < 1 || day > days_in(month, year) {
        return Err("day out of range");
    }
    let wall = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    let zone = if utc {
        ParsedZone::Utc
    } else if let Some(offset) = offset {
        ParsedZone::Offset(offset, zone_name)
    } else if !zone_name.is_empty() {
        ParsedZone::Name(zone_name)
    } else {
        ParsedZone::Default
    };
    Ok(Parsed { wall, nanos, zone })
}

/// Go's `skip`: `prefix` must start `value`, where a space in it matches any run of spaces.
fn skip<'a>(mut value: &'a str, mut prefix: &str) -> Result<&'a str, &'static str> {
    while let Some(c) = prefix.chars().next() {
        if c == ' ' {
            if !value.is_empty() && !value.starts_with(' ') {
                return Err("the text does not match the layout");
            }
            prefix = prefix.trim_start_matches(' ');
            value = value.trim_start_matches(' ');
            continue;
        }
        value = value
            .strip_prefix(c)
            .ok_or("the text does not match the layout")?;
        prefix = &prefix[c.len_utf8()..];
    }
    Ok(value)
}

/// Between `min` and `max` leading digits, as a number.
fn digits(value: &str, min: usize, max: usize) -> Result<(i64, &str), &'static str> {
    let run = value
        .bytes()
        .take(max)
        .take_while(u8::is_ascii_digit)
        .count();
    if run < min {
        return Err("bad number");
    }
    let n = value[..run].parse().map_err(|_| "bad number")?;
    Ok((n, &value[run..]))
}

/// Go's `getnum`: one or two digits; two when `fixed`.
fn number(value: &str, fixed: bool) -> Result<(i64, &str), &'static str> {
    let (n, rest) = digits(value, if fixed { 2 } else { 1 }, 2)?;
    Ok((n, rest))
}

/// A fraction's digits as nanoseconds (beyond nine digits, cut).
fn fraction(digits: &str) -> Result<u32, &'static str> {
    let mut padded: String = digits.chars().take(9).collect();
    while padded.len() < 9 {
        padded.push('0');
    }
    padded.parse().map_err(|_| "bad fractional second")
}

/// A month or day name, in any case; `short` for its first three letters.
fn lookup<'a>(
    value: &'a str,
    names: &[&str],
    short: bool,
) -> Result<(usize, &'a str), &'static str> {
    for (i, name) in names.iter().enumerate() {
        let name = if short { &name[..3] } else { name };
        if value.len() >= name.len()
            && value.is_char_boundary(name.len())
            && value[..name.len()].eq_ignore_ascii_case(name)
        {
            return Ok((i, &value[name.len()..]));
        }
    }
    Err("bad month or day name")
}

/// A numeric offset (`+01:00`...), as seconds east.
fn parse_offset(
    value: &str,
    colons: bool,
    seconds: bool,
    minutes: bool,
) -> Result<(i32, &str), &'static str> {
    let bad = "bad zone offset";
    let sign = match value.chars().next() {
        Some('+') => 1,
        Some('-') => -1,
        _ => return Err(bad),
    };
    let two = |v: &str| -> Result<i32, &'static str> {
        if v.len() >= 2 && v.as_bytes()[..2].iter().all(u8::is_ascii_digit) {
            v[..2].parse().map_err(|_| bad)
        } else {
            Err(bad)
        }
    };
    let mut rest = &value[1..];
    let h = two(rest)?;
    rest = &rest[2..];
    let mut total = h * 3600;
    for (wanted, scale) in [(minutes, 60), (seconds, 1)] {
        if !wanted {
            continue;
        }
        if colons {
            rest = rest.strip_prefix(':').ok_or(bad)?;
        }
        total += two(rest)? * scale;
        rest = &rest[2..];
    }
    Ok((sign * total, rest))
}

/// Go's `parseTimeZone`: how long the zone abbreviation at the start of `value` is.
fn zone_name_len(value: &str) -> Option<usize> {
    let bytes = value.as_bytes();
    if bytes.len() < 3 {
        return None;
    }
    if bytes.len() >= 4 && (&value[..4] == "ChST" || &value[..4] == "MeST") {
        return Some(4);
    }
    if &value[..3] == "GMT" {
        let rest = &value[3..];
        let sign = rest.chars().next().filter(|c| matches!(c, '+' | '-'));
        if sign.is_none() {
            return Some(3);
        }
        let run = rest[1..].bytes().take_while(u8::is_ascii_digit).count();
        return Some(if run == 0 { 3 } else { 4 + run });
    }
    if matches!(bytes[0], b'+' | b'-') {
        let run = bytes[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        return matches!(run, 2 | 4).then_some(1 + run);
    }
    let upper = bytes
        .iter()
        .take(6)
        .take_while(|b| b.is_ascii_uppercase())
        .count();
    match upper {
        3 => Some(3),
        4 if bytes[3] == b'T' || &value[..4] == "WITA" => Some(4),
        5 if bytes[4] == b'T' => Some(5),
        _ => None,
    }
}

/// Go's `time.ParseDuration`, in nanoseconds. `None` where Go returns an error.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    let (negative, mut s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let whole_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let whole: u64 = if whole_len == 0 {
            0
        } else {
            s[..whole_len].parse().ok()?
        };
        s = &s[whole_len..];
        let (mut fraction, mut scale, mut fraction_len) = (0_u64, 1_f64, 0);
        if let Some(rest) = s.strip_prefix('.') {
            fraction_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            for b in rest[..fraction_len].bytes() {
                // Go keeps what fits and drops the rest.
                if let Some(next) = fraction
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(b - b'0')))
                    .filter(|f| *f < 1 << 63)
                {
                    fraction = next;
                    scale *= 10.0;
                }
            }
            s = &rest[fraction_len..];
        }
        if whole_len == 0 && fraction_len == 0 {
            return None;
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        let unit: u64 = match &s[..unit_len] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        s = &s[unit_len..];
        let mut v = whole.checked_mul(unit).filter(|v| *v <= 1 << 63)?;
        if fraction > 0 {
            v = v.checked_add((fraction as f64 * (unit as f64 / scale)) as u64)?;
            if v > 1 << 63 {
                return None;
            }
        }
        total = total.checked_add(v).filter(|t| *t <= 1 << 63)?;
    }
    if negative {
        Some(0_i64.wrapping_sub_unsigned(total))
    } else {
        i64::try_from(total).ok()
    }
}

/// Go's `time.Duration.String`: `1h2m3.5s`, `1.5ms`, `0s`.
pub(crate) fn format_duration(nanos: i64) -> String {
    let mut u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (unit, precision) = match u {
            0 => return "0s".to_owned(),
            1..1_000 => ("ns", 0),
            1_000..1_000_000 => ("\u{b5}s", 3),
            _ => ("ms", 6),
        };
        let (fraction, whole) = fraction_digits(u, precision);
        out.push_str(&format!("{whole}{fraction}{unit}"));
    } else {
        let (fraction, whole) = fraction_digits(u, 9);
        u = whole;
        let seconds = format!("{}{fraction}s", u % 60);
        u /= 60;
        if u > 0 {
            let minutes = u % 60;
            u /= 60;
            if u > 0 {
                out.push_str(&format!("{u}h"));
            }
            out.push_str(&format!("{minutes}m"));
        }
        out.push_str(&seconds);
    }
    if nanos < 0 {
        out.insert(0, '-');
    }
    out
}

/// Go's `fmtFrac`: the last `precision` digits of `v` as a fraction without trailing zeros
/// (nothing when they are all zero), and what is left of `v`.
fn fraction_digits(v: u64, precision: u32) -> (String, u64) {
    let scale = 10_u64.pow(precision);
    let digits = format!("{:0width$}", v % scale, width = precision as usize);
    let digits = digits.trim_end_matches('0');
    let fraction = if digits.is_empty() {
        String::new()
    } else {
        format!(".{digits}")
    };
    (fraction, v / scale)
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

    #[test]
    fn zones_print_their_offsets_and_names_as_go_does() {
        let (s, n) = (1_709_211_845, 120_000_000);
        assert_eq!(
            format_in(
                "2006-01-02 15:04:05 -0700 MST Z07:00",
                s,
                n,
                -5 * 3600,
                "EST"
            ),
            "2024-02-29 08:04:05 -0500 EST -05:00"
        );
        // A zone known only by its offset prints it for MST.
        assert_eq!(format_in("MST", s, n, 5400, ""), "+0130");
        assert_eq!(format_in("-07:00:00 Z07", s, n, 0, "UTC"), "+00:00:00 Z");
        let utc = GoTime {
            seconds: s,
            nanos: n,
            zone: Zone::Utc,
            mono: Some(1_500_000_000),
        };
        assert_eq!(
            utc.go_string(),
            "2024-02-29 13:04:05.12 +0000 UTC m=+1.500000000"
        );
        assert_eq!(GoTime::zero().go_string(), "0001-01-01 00:00:00 +0000 UTC");
        let tokyo = utc.in_zone(Zone::load("Asia/Tokyo"));
        assert_eq!(tokyo.go_string(), "2024-02-29 22:04:05.12 +0900 JST");
        assert!(
            matches!(Zone::load("asia/tokyo"), Zone::Utc),
            "names are case-sensitive"
        );
        assert!(matches!(Zone::load("../etc/passwd"), Zone::Utc));
    }

    #[test]
    fn values_parse_as_go_parses_them() {
        let p = parse(RFC3339, "2024-02-29T13:04:05+01:30").expect("parses");
        assert_eq!(p.wall, 1_709_211_845);
        assert_eq!(p.zone, ParsedZone::Offset(5400, String::new()));
        let p = parse("2006-01-02T15:04:05Z07:00", "2024-02-29T13:04:05.25Z").expect("parses");
        assert_eq!((p.nanos, p.zone), (250_000_000, ParsedZone::Utc));
        let p = parse("Jan _2 3:04PM 2006 MST", "feb  9 1:04pm 2024 CET");
        assert!(p.is_err(), "pm must be PM");
        let p = parse("Jan _2 3:04PM 2006 MST", "FEB  9 1:04PM 2024 CET").expect("parses");
        assert_eq!(
            p.wall,
            days_from_civil(2024, 2, 9) * 86_400 + 13 * 3600 + 4 * 60
        );
        assert_eq!(p.zone, ParsedZone::Name("CET".into()));
        assert_eq!(
            parse("15:04", "10:30").expect("parses").wall,
            days_from_civil(0, 1, 1) * 86_400 + 10 * 3600 + 30 * 60,
            "year 0, January 1"
        );
        assert_eq!(parse("2006-01-02", "2023-02-29"), Err("day out of range"));
        assert_eq!(parse("2006-01-02", "2023-02-28x"), Err("extra text"));
        assert_eq!(
            parse("2006-002", "2024-060").expect("parses").wall,
            1_709_164_800
        );
        assert_eq!(parse("06 01 02", "69 1 2"), Err("bad number"));
        assert_eq!(
            parse("06  01 02", "69 01 02").expect("parses").wall,
            days_from_civil(1969, 1, 2) * 86_400,
            "a space matches any run of spaces"
        );
    }

    #[test]
    fn durations_parse_and_print_as_go_does() {
        assert_eq!(parse_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("-1.5s"), Some(-1_500_000_000));
        assert_eq!(parse_duration("300ms"), Some(300_000_000));
        assert_eq!(parse_duration("2µs"), Some(2_000));
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration(".5m"), Some(30_000_000_000));
        for bad in ["", "1", "1d", "h", "-", ".s", "9999999999h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(parse_duration("1.h"), Some(3_600_000_000_000));
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(1), "1ns");
        assert_eq!(format_duration(1_500), "1.5µs");
        assert_eq!(format_duration(1_500_000), "1.5ms");
        assert_eq!(format_duration(90_000_000_000), "1m30s");
        assert_eq!(format_duration(-3_600_000_000_001), "-1h0m0.000000001s");
        assert_eq!(format_duration(i64::MIN), "-2562047h47m16.854775808s");
    }
}
