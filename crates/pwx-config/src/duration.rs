//! Durations in the two spellings: pwx's (`250ms`, `5s`, `1.5m`, `1h`) and protobuf's JSON
//! form that Envoy reads (`0.25s`: seconds, up to nine decimals, always the `s` suffix).

use std::time::Duration;

/// Parses pwx's spelling: a non-negative number and a unit (`ms`, `s`, `m`, `h`), or `0`.
pub(crate) fn parse_pwx(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration `{text}`: write a number and a unit (ms, s, m or h), e.g. 250ms, 5s, 1m"
        )
    };
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (number, unit) = t.split_at(split);
    let seconds_per_unit = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(bad());
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|_| bad())
}

/// Parses protobuf's JSON spelling of `google.protobuf.Duration`, which is what Envoy accepts
/// in YAML: `[0-9]+(\.[0-9]{1,9})?s`. Negative durations are refused (Envoy's validation
/// refuses them for every field pwx reads).
pub(crate) fn parse_proto(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("invalid duration `{text}`: {why}");
    let body = text.strip_suffix('s').filter(|_| !text.ends_with("ms"));
    let Some(body) = body else {
        return Err(bad(
            "Envoy durations are seconds with an `s` suffix, e.g. `0.25s` for 250 ms",
        ));
    };
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(
            "expected seconds as a non-negative decimal number with an `s` suffix, e.g. `5s`",
        ));
    }
    if body.contains('.') && (fraction.is_empty() || fraction.len() > 9) {
        return Err(bad("at most nine decimals after the point"));
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("expected digits after the point"));
    }
    let seconds: u64 = whole
        .parse()
        .map_err(|_| bad("the number of seconds is too large"))?;
    let nanos: u32 = format!("{fraction:0<9}")
        .parse()
        .map_err(|_| bad("expected digits after the point"))?;
    Ok(Duration::new(seconds, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pwx_durations() {
        assert_eq!(parse_pwx("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_pwx("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_pwx("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_pwx("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_pwx("0"), Ok(Duration::ZERO));
        for bad in ["5", "s", "-1s", "5 sec", "1.s", "", "5d"] {
            assert!(parse_pwx(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn proto_durations() {
        assert_eq!(parse_proto("0.25s"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_proto("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_proto("0.000000001s"), Ok(Duration::from_nanos(1)));
        assert!(parse_proto("250ms").is_err());
        assert!(parse_proto("-1s").is_err());
        assert!(parse_proto("1.0000000001s").is_err());
        assert!(parse_proto("5").is_err());
    }
}
