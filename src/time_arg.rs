//! Event times on the command line: `2018-09-01`, `2018-09-01T12:00:00Z`
//! (UTC; an offset like `+02:00` is applied) or epoch milliseconds.

/// Parses a time into epoch milliseconds, or says what is accepted.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || {
        format!(
            "`{s}` is not a time: use a date (2018-09-01), a UTC date-time (2018-09-01T12:00:00Z) or epoch milliseconds"
        )
    };
    let (date, rest) = s.split_at(s.find(['T', ' ']).unwrap_or(s.len()));
    let mut parts = date.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let (y, m, d): (i64, i64, i64) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let mut ms = days_from_civil(y, m, d) * 86_400_000;
    let rest = rest.trim_start_matches(['T', ' ']);
    if rest.is_empty() {
        return Ok(ms);
    }
    let (clock, offset_ms) = if let Some(c) = rest.strip_suffix('Z') {
        (c, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (c, off) = rest.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, mi) = off[1..].split_once(':').ok_or_else(bad)?;
        let h: i64 = h.parse().map_err(|_| bad())?;
        let mi: i64 = mi.parse().map_err(|_| bad())?;
        (c, sign * (h * 3_600_000 + mi * 60_000))
    } else {
        (rest, 0)
    };
    let mut fields = clock.split(':');
    let h: i64 = fields.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
    let mi: i64 = fields.next().unwrap_or("0").parse().map_err(|_| bad())?;
    let sec: f64 = fields.next().unwrap_or("0").parse().map_err(|_| bad())?;
    if fields.next().is_some() || h > 23 || mi > 59 || !(0.0..61.0).contains(&sec) {
        return Err(bad());
    }
    ms += h * 3_600_000 + mi * 60_000 + (sec * 1000.0).round() as i64;
    Ok(ms - offset_ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_parse_as_utc_milliseconds() {
        assert_eq!(parse_time("1970-01-01"), Ok(0));
        assert_eq!(parse_time("2000-02-29"), Ok(951_782_400_000));
        assert_eq!(parse_time("2024-05-01T00:00:00Z"), Ok(1_714_521_600_000));
        assert_eq!(parse_time("2024-05-01T02:00+02:00"), Ok(1_714_521_600_000));
        assert_eq!(parse_time("2024-05-01T00:00:01.5Z"), Ok(1_714_521_601_500));
        assert_eq!(parse_time("1714521600000"), Ok(1_714_521_600_000));
        assert!(parse_time("May 1st").unwrap_err().contains("not a time"));
        assert!(parse_time("2024-13-01").is_err());
    }
}
