//! Durations as written in the config file ("90s", "1h30m", "2d") and back.

use std::time::Duration;

/// Units in the only order they may appear, so "30m1h" and "1h1h" are
/// rejected instead of being silently summed.
const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// Parses "90s", "30m", "1h30m", "2d" or a string of bare seconds ("3600").
/// DHCP carries whole seconds, so there is no sub-second unit.
pub fn parse(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!("{s:?} is not a duration (expected e.g. \"90s\", \"30m\", \"1h30m\", \"2d\" or seconds)")
    };
    if s.is_empty() {
        return Err(bad());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map(Duration::from_secs).map_err(|_| bad());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit = rest[digits..].chars().next().ok_or_else(bad)?;
        let pos = UNITS[next_unit..]
            .iter()
            .position(|&(c, _)| c == unit)
            .ok_or_else(bad)?;
        let scale = UNITS[next_unit + pos].1;
        next_unit += pos + 1;
        total = n
            .checked_mul(scale)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{s:?} is too long"))?;
        rest = &rest[digits + unit.len_utf8()..];
    }
    Ok(Duration::from_secs(total))
}

/// Formats whole seconds the way [`parse`] reads them, for error messages.
pub fn format(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (c, scale) in UNITS {
        if secs >= scale {
            out.push_str(&(secs / scale).to_string());
            out.push(c);
            secs %= scale;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        let cases = [
            ("90s", 90),
            ("30m", 1_800),
            ("1h", 3_600),
            ("2d", 172_800),
            ("1h30m", 5_400),
            ("52m30s", 3_150),
            ("1d2h3m4s", 93_784),
            ("3600", 3_600),
            ("0", 0),
        ];
        for (s, secs) in cases {
            assert_eq!(parse(s), Ok(Duration::from_secs(secs)), "{s}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "h",
            "1x",
            "1h1h",
            "30m1h",
            "1.5h",
            " 1h",
            "1h ",
            "-1s",
            "1H",
            "1hm",
            "99999999999999999999d",
        ] {
            assert!(parse(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["30m", "1h", "2d", "1h30m", "52m30s", "1d2h3m4s"] {
            assert_eq!(format(parse(s).unwrap()), s);
        }
        for s in ["90s", "3600", "25h", "120m"] {
            let d = parse(s).unwrap();
            assert_eq!(parse(&format(d)), Ok(d), "{s}");
        }
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::ZERO), "0s");
    }
}
